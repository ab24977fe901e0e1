"""The configuration reference of docs/operations.md, generated from the code and files that define the settings,
so it cannot drift (tests/deploy/test_operations_doc.py fails when the page is stale):

    .venv/bin/python tools/images/config_reference.py           # print it
    .venv/bin/python tools/images/config_reference.py --write   # replace it in docs/operations.md

- the core: the flags of `odin-core serve` (its argparse parser) and every field of ``odin_core.settings.Settings``
  with the environment variable that sets it, found by building the settings from an environment that records
  what is read and checking which field each variable changes;
- the gateway: ``odin_http.settings.markdown()`` (what `odin-http settings --markdown` prints);
- midgard: ``midgard.settings.reference_markdown()``;
- the images' own variables (the ENV lines of docker/*.Dockerfile), docker-compose.yml's variables (its header
  comment, checked against every ``${VAR}`` it uses) and the ConfigMaps of k8s/base.
Needs the project's virtual environment (it imports the packages).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
BEGIN, END = "<!-- config:begin -->", "<!-- config:end -->"
PROBES = ("7", "0", "yes", "a,b", "sqlite:///probe.db", "probe")


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = values or {}
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.append(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.append(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the attribute-docstring convention of the code base)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if documented and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            docs[node.target.id] = " ".join(str(after.value.value).split())  # type: ignore[attr-defined]
    return docs


def flatten(obj: Any, prefix: str = "") -> dict[str, tuple[Any, type]]:
    """``{"engine.heartbeat_s": (value, owning class)}`` for every leaf field of nested settings dataclasses."""
    out: dict[str, tuple[Any, type]] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (value, type(obj))
    return out


def core_variables() -> dict[str, str]:
    """Environment variable -> the Settings field it sets (the first probe value that changes a field wins)."""
    from odin_core.settings import Settings

    recorder = RecordingEnv()
    Settings.from_env(recorder)
    defaults = flatten(Settings.from_env({}))
    found: dict[str, str] = {}
    for name in dict.fromkeys(recorder.asked):
        for probe in PROBES:
            try:
                changed = [k for k, (v, _) in flatten(Settings.from_env({name: probe})).items() if v != defaults[k][0]]
            except (ValueError, TypeError):
                continue
            if changed:
                found[name] = changed[0]
                break
    return found


def _show(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value).replace(str(Path.home()), "~", 1)
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`" if value else '""'
    if value is None:
        return "none"
    if value == "":
        return '""'
    if value == {}:
        return "{}"
    return f"`{value}`"


def core_settings_table() -> list[str]:
    from odin_core.settings import Settings

    variables = {field: env for env, field in core_variables().items()}
    rows = ["| setting | variable | default | meaning |", "|---|---|---|---|"]
    for path, (value, owner) in flatten(Settings()).items():
        doc = field_docs(owner).get(path.rsplit(".", 1)[-1], "")
        env = f"`{variables[path]}`" if path in variables else "— (code only)"
        rows.append(f"| `{path}` | {env} | {_show(value)} | {doc} |")
    return rows


def serve_flags_table() -> list[str]:
    from odin_core.__main__ import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if not action.option_strings or action.help in (argparse.SUPPRESS, None) or action.dest == "help":
                continue
            default = _show(action.default) if action.default is not None else ""
            rows.append(f"| `odin-core {name} {', '.join(action.option_strings)}` | {default} | {action.help} |")
    return rows


def dockerfile_env() -> list[str]:
    rows = ["| image | variable | value in the image |", "|---|---|---|"]
    for dockerfile in sorted((ROOT / "docker").glob("*.Dockerfile")):
        text = dockerfile.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            if line.startswith("ENV "):
                for name, value in re.findall(r"(\w+)=(\S+)", line):
                    if name != "PATH":
                        rows.append(f"| {dockerfile.stem} | `{name}` | `{value}` |")
    return rows


def compose_variables() -> tuple[list[str], set[str], set[str]]:
    """The table of docker-compose.yml's variables (from its header comment), the names it documents and the
    names it uses."""
    text = (ROOT / "docker-compose.yml").read_text()
    documented = dict(re.findall(r"^#\s+(ODIN_\w+)\s+(.+)$", text, flags=re.M))
    used = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", text))
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{n}` | `{used.get(n, '')}` | {m.strip()} |" for n, m in documented.items()]
    return rows, set(documented), set(used)


def configmap_tables() -> list[str]:
    import yaml

    kustomization = yaml.safe_load((ROOT / "k8s" / "base" / "kustomization.yaml").read_text())
    rows = []
    for cm in kustomization["configMapGenerator"]:
        rows += ["", f"`{cm['name']}`:", "", "| variable | value |", "|---|---|"]
        rows += [f"| `{k}` | `{v}` |" for k, _, v in (lit.partition("=") for lit in cm["literals"])]
    return rows


def reference() -> str:
    from midgard.settings import reference_markdown
    from odin_http.settings import markdown as gateway_markdown

    compose, _, _ = compose_variables()
    parts = [
        "### The core: `odin-core` flags", "", *serve_flags_table(), "",
        "### The core: settings and their environment variables", "",
        "Built once at start (`Settings.from_env`); a flag of `odin-core serve` wins over its variable. "
        "\"code only\" settings have no variable in this version.", "",
        *core_settings_table(), "",
        "### The gateway (`odin-http settings`)", "",
        gateway_markdown().replace("### [", "#### [").strip(), "",
        "### midgard", "", reference_markdown(), "",
        "### Set in the images", "", *dockerfile_env(), "",
        "### docker-compose.yml", "", *compose, "",
        "### k8s/base: the settings ConfigMaps", *configmap_tables(), "",
    ]  # fmt: skip
    return "\n".join(parts).rstrip() + "\n"


def current() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n") + "\n"


def write() -> None:
    text = DOC.read_text()
    head, tail = text[: text.index(BEGIN) + len(BEGIN)], text[text.index(END) :]
    DOC.write_text(f"{head}\n{reference()}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"replace the reference in {DOC.relative_to(ROOT)}")
    args = p.parse_args(argv)
    if args.write:
        write()
    else:
        sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    sys.exit(main())
