"""The container engine the image tooling drives: podman with the project's own settings files, or docker.

On the project's machines there is no Docker engine: podman runs with runc, cgroupfs and directories of its own under
the cache (written by tools/images/setup.sh), so nothing lands in /var/lib/containers. Where a docker CLI is present
and podman is not, docker is used as it is. Only the standard library is used (the Makefile calls this before the
virtual environment matters).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "odin" / "images"


class EngineError(RuntimeError):
    """The container engine is missing or a command of it failed; the message says what to do."""


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("ODIN_IMAGES_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class Engine:
    """One engine: its command and the environment it runs with."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        timeout_s: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args``; a failure raises EngineError with the command's last output lines."""
        argv = [self.name, *args]
        proc = subprocess.run(
            argv,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and proc.returncode != 0:
            tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-15:])
            raise EngineError(f"`{' '.join(argv[:4])} …` exited {proc.returncode}:\n{tail}")
        return proc

    def image_exists(self, ref: str) -> bool:
        return self.run(["image", "inspect", ref], check=False).returncode == 0


def podman_env(cache: Path) -> dict[str, str]:
    """The variables that point podman at the project's settings files (tools/images/setup.sh writes them)."""
    conf = cache / "conf"
    return {
        "CONTAINERS_CONF": str(conf / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(conf / "registries.conf"),
    }


NETAVARK_JUMPS = {  # table -> the built-in chains netavark hooks its own chains into
    "filter": ("FORWARD", "INPUT"),
    "nat": ("PREROUTING", "OUTPUT", "POSTROUTING"),
}
OUTSIDE_DIRS = (Path("/run/containers"), Path("/var/lib/containers/cache"))


def cleanup_host(engine: Engine) -> list[str]:
    """Remove what podman leaves outside its own folders once none of its containers is left: netavark's
    iptables chains and bridge, its /run/containers state, the blob cache in /var/lib/containers and stale
    network namespaces. Containers of a session still running elsewhere keep everything as it is. Returns what
    was removed (for the log)."""
    if not engine.is_podman or engine.run(["ps", "-aq"], check=False).stdout.strip():
        return []
    removed = [f"network {n}" for n in _prune_networks(engine)]
    removed += _drop_netavark_chains()
    if Path("/sys/class/net/podman0").exists():
        subprocess.run(["ip", "link", "delete", "podman0"], capture_output=True, check=False)
        removed.append("link podman0")
    for d in OUTSIDE_DIRS:
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    with contextlib.suppress(OSError):
        Path("/var/lib/containers").rmdir()  # only when empty
    netns = Path("/run/netns")
    for ns in netns.glob("netns-*"):
        subprocess.run(["umount", str(ns)], capture_output=True, check=False)
        ns.unlink(missing_ok=True)
        removed.append(str(ns))
    return removed


def _prune_networks(engine: Engine) -> list[str]:
    names = engine.run(["network", "ls", "--format", "{{.Name}}"], check=False).stdout.split()
    gone = [n for n in names if n != "podman"]
    if gone:
        engine.run(["network", "rm", "-f", *gone], check=False)
    return gone


def _drop_netavark_chains() -> list[str]:
    if not shutil.which("iptables"):
        return []
    removed = []
    for table, builtins in NETAVARK_JUMPS.items():
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False).stdout
        for line in rules.splitlines():
            parts = shlex.split(line)
            if parts[:2] == ["-A", parts[1]] and parts[1] in builtins and "NETAVARK" in line:
                subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True, check=False)
        chains = [ln.split()[1] for ln in rules.splitlines() if ln.startswith("-N NETAVARK")]
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=False)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True, check=False)
            removed.append(f"iptables {table} {chain}")
    return removed


def find_engine(prefer: str = "", env: Mapping[str, str] | None = None) -> Engine:
    """podman (with the project's settings, when setup.sh wrote them) if present, else docker; ``prefer`` or
    ``$ODIN_IMAGE_ENGINE`` picks one explicitly."""
    env = os.environ if env is None else env
    wanted = prefer or env.get("ODIN_IMAGE_ENGINE", "")
    for name in [wanted] if wanted else ["podman", "docker"]:
        if not shutil.which(name):
            continue
        if name != "podman":
            return Engine(name)
        cache = cache_dir(env)
        settings = podman_env(cache)
        ours = all(Path(p).is_file() for p in settings.values())
        return Engine(name, settings if ours else {})
    raise EngineError(
        f"no container engine found ({wanted or 'podman or docker'}): run `bash tools/images/setup.sh` "
        "(installs podman on Debian), or install Docker"
    )
