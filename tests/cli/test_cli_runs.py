"""`odin run`, `status`, `logs`, `data`, `events`, `cleanup`, `stop` through CliRunner (real engine, local executor)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

TWO_TASKS = """\
name: pair
tasks:
  - name: first
    image: busybox:1.36
    command: [sh, -c]
    args: ['echo "one from $$ODIN_TASK_NAME"; echo two; echo "{\\"n\\": 3}" > "$$ODIN_OUTPUTS"']
  - name: second
    image: busybox:1.36
    command: echo
    args: ["got {^first.outputs.n}"]
"""

FAILING = """\
name: sad
tasks:
  - name: boom
    image: busybox:1.36
    command: [sh, -c]
    args: ["echo about to fail; exit 4"]
  - name: never
    image: busybox:1.36
    command: echo
    depends: boom
"""

INVALID = """\
tasks:
  - name: a
    image: busybox:1.36
    command: echo
    args: ["$WORKPATH"]
"""


def test_run_prints_progress_lines_and_a_summary(odin, make_job) -> None:
    result = odin("run", str(make_job(TWO_TASKS)))
    out = result.stdout
    assert re.search(r"^\d\d:\d\d:\d\d task first RUNNING \(attempt 1\)$", out, re.M), out
    assert re.search(r"^\d\d:\d\d:\d\d task second SUCCEEDED \(attempt 1\)$", out, re.M), out
    assert "note: local executor: images are recorded, not pulled (busybox:1.36)" in out
    assert re.search(r"^run pair-[a-z0-9]{8} DONE in \d+\.\ds$", out, re.M), out


def test_run_json_prints_the_final_record_on_stdout(odin, make_job) -> None:
    result = odin("run", str(make_job(TWO_TASKS)), "-o", "json")
    record = json.loads(result.stdout)
    assert record["status"] == "DONE"
    tasks = {t["name"]: t for t in record["tasks"]}
    assert tasks["first"]["outputs"] == {"n": 3}
    assert tasks["second"]["args"] == ["got 3"]
    assert "DONE in" in result.stderr  # progress and summary went to stderr


def test_run_yaml_output(odin, make_job) -> None:
    record = yaml.safe_load(odin("run", str(make_job(TWO_TASKS)), "--no-watch", "-o", "yaml").stdout)
    assert record["status"] == "DONE"


def test_run_no_watch_prints_only_the_id_and_the_summary(odin, make_job) -> None:
    lines = odin("run", str(make_job(TWO_TASKS)), "--no-watch", "--run-id", "pair-quiet").stdout.splitlines()
    assert lines[0] == "pair-quiet"
    assert lines[1].startswith("run pair-quiet DONE in ")
    # then what the run produced: the outputs of its last task that has any (`second` has none)
    assert lines[2:] == ["outputs of first (odin data pair-quiet--first):", "  n  3"]


def test_run_with_a_known_run_id_follows_the_same_run(odin, make_job) -> None:
    job = str(make_job(TWO_TASKS))
    odin("run", job, "--run-id", "pair-once")
    again = odin("run", job, "--run-id", "pair-once", "--no-watch")
    assert "run pair-once DONE" in again.stdout
    assert len(odin.json("status")) == 1


def test_run_of_a_failing_pipeline_exits_1_with_a_hint(odin, make_job) -> None:
    result = odin("run", str(make_job(FAILING)), "--run-id", "sad-1", code=1)
    assert "run sad-1 TERMINATED" in result.stdout
    assert "task 'boom' failed: exit code 4: about to fail" in result.stdout
    assert "odin logs sad-1--boom" in result.stdout
    tasks = {t["name"]: t["status"] for t in odin.json("status", "sad-1")[0]["tasks"]}
    assert tasks == {"boom": "FAILED", "never": "SKIPPED"}


NEVER_STARTED = """\
name: unstarted
on_failure: continue
tasks:
  - name: first
    image: busybox:1.36
    command: echo
  - name: no-ref
    image: busybox:1.36
    command: echo
    args: ["{^first.outputs.missing}"]
  - name: no-cmd
    image: busybox:1.36
    command: odin-test-no-such-command
"""


def test_a_task_that_never_started_gets_its_message_not_its_empty_log(odin, make_job) -> None:
    out = odin("run", str(make_job(NEVER_STARTED)), "--run-id", "unstarted-1", "--no-watch", code=1).stdout
    assert "see its log" not in out, out
    first, *rest = out.splitlines()[1:]  # after the run id: the summary, then a line for the other failed task
    assert first.startswith("run unstarted-1 TERMINATED after ")
    assert "(and 1 more failed)" in first
    assert len(rest) == 1 and rest[0].startswith("  task "), out  # the failure the run's message does not name
    assert "first.outputs has no key 'missing'" in out and "cannot run 'odin-test-no-such-command'" in out
    assert odin("logs", "unstarted-1--no-ref").stdout == ""  # the log it is not pointed to is empty indeed


def test_run_of_an_invalid_pipeline_exits_2_listing_problems(odin, make_job) -> None:
    job = make_job(INVALID)
    result = odin("run", str(job), code=2)
    assert re.search(
        rf"^{re.escape(str(job))}/main\.yml:5:\d+: tasks\[0\]\.args\[0\]: unknown variable '\$WORKPATH'",
        result.stderr,
        re.M,
    )
    assert "WORK_PATH" in result.stderr  # the hint
    assert "Traceback" not in result.output
    assert odin.json("status") == []


def test_status_tasks_shows_a_legacy_header_and_a_task_table(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-st", "--no-watch")
    out = odin("status", "--tasks").stdout
    lines = out.splitlines()
    assert lines[0] == "pair-st --> DONE"
    assert lines[1].startswith("job: ") and "submitted: " in lines[1] and "duration: " in lines[1]
    assert lines[2].split() == ["TASK", "STATUS", "ATTEMPT", "RESOURCE", "STARTED", "DURATION", "MESSAGE"]
    assert re.match(r"first +SUCCEEDED +1 +pid:\d+ +\d\d:\d\d:\d\d +\d+\.\ds$", lines[3]), lines[3]


def test_status_json_lists_runs_newest_first(odin, make_job) -> None:
    job = str(make_job(TWO_TASKS))
    odin("run", job, "--run-id", "pair-a", "--no-watch")
    odin("run", job, "--run-id", "pair-b", "--no-watch")
    data = odin.json("status")
    assert [d["run"]["run_id"] for d in data] == ["pair-b", "pair-a"]
    assert [t["name"] for t in data[0]["tasks"]] == ["first", "second"]
    assert [d["run"]["run_id"] for d in odin.json("status", "*-a")] == ["pair-a"]


def test_status_without_runs(odin) -> None:
    assert "no runs yet" in odin("status").stdout
    assert "no run matches 'zzz'" in odin("status", "zzz").stdout


def test_logs_of_a_task_and_of_a_whole_run(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-logs", "--no-watch")
    assert odin("logs", "pair-logs--first").stdout == "one from first\ntwo\n"
    assert odin("logs", "pair-logs--first", "--lines", "1").stdout == "two\n"
    assert odin("logs", "pair-logs--first", "-f").stdout == "one from first\ntwo\n"  # ended: -f returns
    assert odin("logs", "pair-logs").stdout.splitlines() == [
        "first  | one from first",
        "first  | two",
        "second | got 3",
    ]
    assert sorted(odin("logs", "pair-logs", "--follow").stdout.splitlines())[0] == "first  | one from first"


def test_data_of_a_run_and_of_a_task(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-data", "--no-watch")
    run = yaml.safe_load(odin("data", "pair-data").stdout)
    assert run["run_id"] == "pair-data" and run["status"] == "DONE" and len(run["tasks"]) == 2
    task = odin.json("data", "pair-data--first")
    assert task["task_id"] == "pair-data--first" and task["outputs"] == {"n": 3}


def test_events_table_and_json(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-ev", "--no-watch")
    lines = odin("events", "pair-ev").stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "KIND", "TASK", "STATUS", "MESSAGE"]
    assert re.match(r"1 +\d\d:\d\d:\d\d +run +- +BUILDING +submitted ", lines[1]), lines[1]
    events = odin.json("events", "pair-ev")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["kind"] == "run" and events[-1]["status"] == "DONE"
    only_second = odin.json("events", "pair-ev--second")
    assert {e["task"] for e in only_second} == {"second"}


def test_cleanup_db_and_fs_removes_the_run(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-clean", "--no-watch")
    run_dir = odin.home / "data" / "pair-clean"
    assert run_dir.is_dir()
    lines = odin("cleanup", "pair-clean", "--db", "--fs").stdout.splitlines()
    assert lines[0].split() == ["TASK", "ID", "CLEANED", "FROM", "K8S", "PURGED", "FROM", "DB", "REMOVED", "FROM", "FS"]
    assert lines[1].split() == ["pair-clean--first", "no", "yes", "yes"]
    assert not run_dir.exists()
    assert odin.json("status") == []


def test_cleanup_json_without_flags_keeps_the_records(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-keep", "--no-watch")
    results = odin.json("cleanup", "pair-keep")
    assert results[0] == {
        "task_id": "pair-keep--first",
        "cleaned_from_k8s": False,
        "purged_from_db": False,
        "removed_from_fs": False,
    }
    assert len(odin.json("status")) == 1


def test_stop_of_a_finished_run_says_so(odin, make_job) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-stop", "--no-watch")
    assert "run pair-stop has already ended DONE" in odin("stop", "pair-stop").stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["status", "nope"], id="status-unknown-is-empty"),
        pytest.param(["data", "nope-123"], id="data"),
        pytest.param(["events", "nope-123"], id="events"),
        pytest.param(["logs", "nope-123--task"], id="logs"),
        pytest.param(["logs", "nope-123"], id="logs-run"),
        pytest.param(["cleanup", "nope-123"], id="cleanup"),
        pytest.param(["stop", "nope-123"], id="stop"),
    ],
)
def test_unknown_ids_give_a_readable_error(odin, args) -> None:
    if args[0] == "status":
        odin(*args)
        return
    result = odin(*args, code=1)
    assert "error: no run 'nope-123'; `odin status` lists the runs" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["logs", "data", "events"])
def test_unknown_task_names_the_tasks_of_the_run(odin, make_job, command) -> None:
    odin("run", str(make_job(TWO_TASKS)), "--run-id", "pair-unk", "--no-watch")
    result = odin(command, "pair-unk--third", code=1)
    assert "run 'pair-unk' has no task 'third'; it has: first, second" in result.stderr
    assert result.stdout == ""  # no empty table


def test_home_option_overrides_the_environment(odin, make_job, tmp_path) -> None:
    other = tmp_path / "other-home"
    odin("--home", str(other), "run", str(make_job(TWO_TASKS)), "--run-id", "pair-home", "--no-watch")
    assert (other / "odin.db").is_file()
    assert odin.json("status") == []
    assert [d["run"]["run_id"] for d in odin.json("--home", str(other), "status")] == ["pair-home"]
