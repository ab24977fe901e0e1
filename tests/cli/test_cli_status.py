"""`odin status`: the most recent runs one line each, --limit / --all / --active / --tasks, and -o json."""

from __future__ import annotations

import re

QUICK = """\
name: quick
tasks:
  - {name: a, image: busybox:1.36, command: "true"}
  - {name: b, image: busybox:1.36, command: "true", depends: a}
"""

SAD = """\
name: sad
tasks:
  - {name: ok, image: busybox:1.36, command: "true"}
  - {name: boom, image: busybox:1.36, command: [sh, -c], args: ["exit 4"], depends: ok}
  - {name: never, image: busybox:1.36, command: "true", depends: boom}
"""


def test_one_line_a_run_newest_first(odin, make_job) -> None:
    odin("run", str(make_job(QUICK)), "--run-id", "quick-1", "--no-watch")
    odin("run", str(make_job(SAD, name="sad")), "--run-id", "sad-1", "--no-watch", code=1)
    lines = odin("status").stdout.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "TASKS", "AGE", "DURATION", "MESSAGE"]
    assert re.match(r"sad-1 +TERMINATED +1/3 +\d+s ago +\d+\.\ds +task 'boom' failed: exit code 4", lines[1]), lines[1]
    assert re.match(r"quick-1 +DONE +2/2 +\d+s ago +\d+\.\ds$", lines[2]), lines[2]
    assert len(lines) == 3  # no task tables, no footer: every run is shown


def test_limit_all_and_the_footer(odin, make_job) -> None:
    job = str(make_job(QUICK))
    ids = [f"quick-{i:02d}" for i in range(23)]
    for run_id in ids:
        odin("run", job, "--run-id", run_id, "--no-watch")
    lines = odin("status").stdout.splitlines()
    shown = [line.split()[0] for line in lines[1:-1]]
    assert shown == ids[::-1][:20]  # the default limit: the 20 newest
    assert "20 newest" in lines[-1] and "--all" in lines[-1]
    assert [line.split()[0] for line in odin("status", "--limit", "2").stdout.splitlines()[1:3]] == ids[:-3:-1]
    every = odin("status", "--all").stdout.splitlines()
    assert len(every) == 1 + 23 and "newest" not in every[-1]
    assert [r["run"]["run_id"] for r in odin.json("status", "-n", "3")] == ids[:-4:-1]  # json honours the limit
    assert len(odin.json("status", "--all")) == 23
    assert [r["run"]["run_id"] for r in odin.json("status", "quick-0*")] == ids[9::-1]  # a glob pattern
    assert "no run matches 'zzz'" in odin("status", "zzz").stdout


def test_active_only(odin, make_job) -> None:
    odin("run", str(make_job(QUICK)), "--run-id", "quick-done", "--no-watch")
    assert "no active runs" in odin("status", "--active").stdout
    assert odin.json("status", "--active") == []


def test_tasks_adds_each_runs_task_table(odin, make_job) -> None:
    odin("run", str(make_job(SAD, name="sad")), "--run-id", "sad-t", "--no-watch", code=1)
    lines = odin("status", "--tasks").stdout.splitlines()
    assert lines[0] == "sad-t --> TERMINATED"
    assert lines[2].split()[:2] == ["TASK", "STATUS"]
    assert [line.split()[:2] for line in lines[3:6]] == [["ok", "SUCCEEDED"], ["boom", "FAILED"], ["never", "SKIPPED"]]
