"""docs/tutorial-microk8s.md: every command block says whether the tests run it, and the ones marked for this file
run here, as written, in a copy of the repository (the images with ODIN_IMAGE_BASE=local, since the test machines
have no registry). The blocks marked for test_k8s.py run there (its pipeline is this page's gpu-hello)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from deploy_support import REPO, tutorial_block, tutorial_blocks
from manifests import kustomize

HERE = "runs in tests/deploy/test_tutorial.py"
MARKS = (HERE, "runs in tests/deploy/test_k8s.py", "not run here: ", "file: ")


def test_every_block_says_whether_the_tests_run_it() -> None:
    text = (REPO / "docs" / "tutorial-microk8s.md").read_text()
    blocks = tutorial_blocks()
    assert text.count("```") == 2 * len(blocks), "a code block of the tutorial has no mark"
    for mark, lang, _text in blocks:
        assert mark.startswith(MARKS), f"unknown mark {mark!r}"
        assert lang in ("bash", "yaml"), lang
    k8s_test = (REPO / "tests" / "deploy" / "test_k8s.py").read_text()
    for mark, _lang, _text in blocks:
        if mark.startswith("runs in tests/deploy/test_k8s.py"):
            assert "tutorial_block(" in k8s_test


def _copy_of_the_repository(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(source.read_bytes())
            (dest / rel).chmod(source.stat().st_mode & 0o777)
    return dest


def test_the_blocks_for_this_file_run_as_written(podman, images, tmp_path: Path) -> None:
    repo = _copy_of_the_repository(tmp_path / "odin")
    script = "\n".join(text for mark, lang, text in tutorial_blocks() if mark.startswith(HERE))
    env = {
        **os.environ,
        **podman.engine.env,
        "ODIN_IMAGE_BASE": "local",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    overlay = kustomize(repo / "k8s" / "overlays" / "microk8s")
    wanted = {
        c["image"]
        for o in overlay
        if o["kind"] in ("Deployment", "DaemonSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    tagged = set()
    for archive in (repo / "dist").glob("*.tar"):
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        tagged |= {t for entry in manifest for t in entry["RepoTags"]}
    assert wanted <= tagged, f"the overlay names {sorted(wanted - tagged)}, which `make images SAVE=dist` did not save"
    secrets = repo / "k8s" / "overlays" / "microk8s" / "secrets"
    assert (secrets / "root_password").read_text() and (secrets.stat().st_mode & 0o777) == 0o700
    assert tutorial_block("file: gpu-hello/main.yml").startswith("name: gpu-hello")
