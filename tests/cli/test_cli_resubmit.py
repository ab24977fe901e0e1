"""`odin resubmit ID`: an ended run runs again in place, its succeeded tasks kept (not executed again)."""

from __future__ import annotations

import json
import re
from pathlib import Path

GATED = """\
name: gated
tasks:
  - name: prep
    image: busybox:1.36
    command: [sh, -c]
    args: ['echo ran >> {count}; echo "{{\\"rows\\": 7}}" > "$$ODIN_OUTPUTS"']
  - name: gate
    image: busybox:1.36
    command: [sh, -c]
    args: ['test -e {fixed} || {{ echo "not fixed yet"; exit 3; }}; echo "got {{^prep.outputs.rows}}"']
"""


def gated(make_job, tmp_path: Path) -> tuple[Path, Path, Path]:
    count, fixed = tmp_path / "prep-count", tmp_path / "fixed"
    return make_job(GATED.format(count=count, fixed=fixed), name="gated"), count, fixed


def test_resubmit_reuses_what_succeeded_and_reruns_the_rest(odin, make_job, tmp_path) -> None:
    job, count, fixed = gated(make_job, tmp_path)
    odin("run", str(job), "--run-id", "gated-1", "--no-watch", code=1)
    fixed.write_text("")  # the cause is fixed: the failed task can succeed now
    result = odin("resubmit", "gated-1")
    out = result.stdout
    assert "resubmitted run gated-1: reusing 1 succeeded task(s), running 1 again (gate)" in out
    assert re.search(r"^\d\d:\d\d:\d\d task gate SUCCEEDED \(attempt 2\)$", out, re.M), out
    assert "task prep" not in out  # its events are not shown again, it does not run again
    assert re.search(r"^run gated-1 DONE in ", out, re.M), out
    assert count.read_text() == "ran\n"  # prep ran once, in the first run
    record = odin.json("data", "gated-1")
    assert [t["status"] for t in record["tasks"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert odin("logs", "gated-1--gate").stdout.splitlines()[-1] == "got 7"


def test_resubmit_json_and_exit_code_of_a_run_that_fails_again(odin, make_job, tmp_path) -> None:
    job, _, _ = gated(make_job, tmp_path)
    odin("run", str(job), "--run-id", "gated-2", "--no-watch", code=1)
    result = odin("resubmit", "gated-2", "-o", "json", code=1)
    record = json.loads(result.stdout)
    assert record["status"] == "TERMINATED" and "not fixed yet" in record["message"]
    assert "resubmitted run gated-2" in result.stderr  # words on stderr, the record on stdout


def test_resubmit_refusals_are_one_line(odin, make_job, tmp_path) -> None:
    job, _, fixed = gated(make_job, tmp_path)
    fixed.write_text("")
    odin("run", str(job), "--run-id", "gated-ok", "--no-watch")
    result = odin("resubmit", "gated-ok", code=1)
    assert result.stderr.strip() == "error: every task of run 'gated-ok' succeeded: nothing to resubmit"
    result = odin("resubmit", "nope-123", code=1)
    assert result.stderr.strip() == "error: no run 'nope-123'; `odin status` lists the runs"
