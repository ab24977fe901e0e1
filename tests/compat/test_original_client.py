"""The original client's console scripts (odin-api 0.7.6) against our core over WebSocket, unchanged.

Each script must succeed and print what the first Odin's server would have made it print: the shapes its
code builds from the replies (``Row(**task_status)``, ``Pipeline(**pipeline_status)``, ``Event(**event)``,
``Cleaned(**entry)``) must fit exactly, and the text it prints must carry the same information.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from legacy_support import Endpoint, LegacyCli

RUN_ID = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"


async def start(legacy_cli: LegacyCli, ep: Endpoint, job: str) -> tuple[str, Any]:
    """``odin-run job``: the run id it reports first, and the result."""
    result = await legacy_cli("odin-run", job, endpoint=ep)
    assert result.code == 0, result
    first = result.logged[0]
    assert re.fullmatch(RUN_ID, first), result.stderr
    return first, result


async def test_ping(legacy_cli: LegacyCli, ws_endpoint: Endpoint) -> None:
    result = await legacy_cli("odin-ping", endpoint=ws_endpoint)
    assert result.code == 0, result
    assert re.fullmatch(r"PONG \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\n", result.stdout), result


async def test_run_streams_progress_until_the_run_ends(legacy_cli, ws_endpoint, odin) -> None:
    run_id, result = await start(legacy_cli, ws_endpoint, "hello")
    logged = result.logged
    task = f"{run_id}--greet"
    assert logged.index(f"Submitting {task}") < logged.index(f"Done running {task}")
    assert logged[-1] == f"Pipeline {run_id} DONE"
    assert "Traceback" not in result.stderr
    assert (await odin.store.get_run(run_id)).status.value == "DONE"


async def test_run_of_an_invalid_pipeline_logs_the_error(legacy_cli, ws_endpoint, odin) -> None:
    result = await legacy_cli("odin-run", "team/bad", endpoint=ws_endpoint)
    assert result.code == 0 and "Traceback" not in result.stderr  # the original client logs ERROR replies
    assert '"status": "ERROR"' in result.stderr and "pipeline is invalid" in result.stderr
    assert "team/bad/main.yml:4:" in result.stderr  # the file as the client named it
    assert await odin.status("bad") == []


async def test_status_prints_the_header_and_the_task_table(legacy_cli, ws_endpoint) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "pair")
    result = await legacy_cli("odin-status", run_id, endpoint=ws_endpoint)
    assert result.code == 0 and result.stderr == "", result
    lines = result.out.splitlines()
    assert lines[0] == f"{run_id} --> TERMINATED"
    assert re.fullmatch(r"Started +--> \d{4}-\d\d-\d\dT[\d:.]+\+00:00", lines[1]), lines
    assert re.fullmatch(r"Finished +--> \d{4}-\d\d-\d\dT[\d:.]+\+00:00", lines[2]), lines
    header = [c.strip() for c in lines[4].split("|")]
    assert header == ["task", "status", "command", "resource_id", "submitted"]  # the original's default columns
    rows = {r.split("|")[0].strip(): [c.strip() for c in r.split("|")] for r in lines[6:]}
    assert rows[f"{run_id}--first"][1] == "executed"
    assert rows[f"{run_id}--second"][1] == "terminated"
    assert rows[f"{run_id}--second"][2] == "['sh', '-c', 'echo two; exit 4']"


async def test_status_all_columns_and_one_task_as_key_value(legacy_cli, ws_endpoint) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "hello")
    result = await legacy_cli("odin-status", run_id, "--all", endpoint=ws_endpoint)
    assert result.code == 0 and result.stderr == "", result
    fields = dict(re.findall(r"^ *(\w+) = (.*)$", result.out, re.M))
    assert fields["task"] == f"{run_id}--greet" and fields["status"] == "executed"
    assert (fields["name"], fields["image"], fields["resource_type"]) == ("greet", "busybox", "Pod")
    assert fields["command"] == "['sh']" and fields["completed"].endswith("+00:00")


async def test_status_finds_runs_by_the_pipeline_name_as_written(legacy_cli, ws_endpoint, odin) -> None:
    """The original pipeline is named ``bert.ner`` (its directory ``ner-original``); run ids are DNS labels
    (``bert-ner-…``), and ``odin-status bert.ner`` still finds its runs, as it did with the first Odin."""
    run_id, result = await start(legacy_cli, ws_endpoint, "ner-original")
    assert run_id.startswith("bert-ner-")
    assert result.logged[-1] == f"Pipeline {run_id} DONE", result.stderr  # it runs unchanged, locally
    found = await legacy_cli("odin-status", "bert.ner", endpoint=ws_endpoint)
    assert found.out.splitlines()[0] == f"{run_id} --> DONE", found
    assert found.out.count("executed") == 3
    none = await legacy_cli("odin-status", "no-such-pipeline", endpoint=ws_endpoint)
    assert none.code == 0 and none.out == "" and none.stderr == ""
    train = (await odin.task(f"{run_id}--train")).outputs
    assert train["model"].endswith(f"/{run_id}/{run_id}--train/model.pt")


async def test_logs_and_logs_follow(legacy_cli, ws_endpoint) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "hello")
    for extra in ((), ("-f",), ("--lines", "1")):
        result = await legacy_cli("odin-logs", f"{run_id}--greet", *extra, endpoint=ws_endpoint)
        assert result.code == 0, result
        assert result.logged == [f"hello from {run_id}--greet"], (extra, result.stderr)


async def test_data_of_a_run_and_of_a_task(legacy_cli, ws_endpoint) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "pair")
    result = await legacy_cli("odin-data", run_id, endpoint=ws_endpoint)
    assert result.code == 0, result
    reply = json.loads(result.stdout)
    run = reply["jobs"]
    assert reply["success"] is True and run["label"] == run_id and run["status"] == "TERMINATED"
    assert run["executed"] == [f"{run_id}--first"] and run["executing"] == [f"{run_id}--second"]
    assert run["waiting"] == [] and run["submit_time"] and run["completion_time"]
    task = json.loads((await legacy_cli("odin-data", f"{run_id}--second", endpoint=ws_endpoint)).stdout)["jobs"]
    assert (task["label"], task["parent"], task["name"], task["exit_code"]) == (
        f"{run_id}--second",
        run_id,
        "second",
        4,
    )
    missing = await legacy_cli("odin-data", "nope-12345678", endpoint=ws_endpoint)
    assert missing.code == 0 and '"status": "ERROR"' in missing.stderr and "no run" in missing.stderr


async def test_events_print_as_a_table(legacy_cli, ws_endpoint) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "pair")
    result = await legacy_cli("odin-events", run_id, endpoint=ws_endpoint)
    assert result.code == 0 and result.stderr == "", result
    lines = result.out.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["type", "reason", "source", "message", "timestamp"]
    rows = [[c.strip() for c in line.split("|")] for line in lines[2:]]
    assert rows[-2][:3] == ["Warning", "Failed", "odin"] and "task second" in rows[-2][3]
    assert rows[-1][:3] == ["Warning", "Terminated", "odin"]
    task = await legacy_cli("odin-events", f"{run_id}--first", endpoint=ws_endpoint)
    assert task.code == 0 and "Succeeded" in task.out and "task second" not in task.out


async def test_show_logs_every_file_of_the_job(legacy_cli, ws_endpoint) -> None:
    result = await legacy_cli("odin-show", "ner-original", endpoint=ws_endpoint)
    assert result.code == 0, result
    assert "main.yml\n" in result.stderr and "=" * 100 in result.stderr
    assert "name: bert.ner" in result.stderr and "ephem_volume:" in result.stderr


async def test_cleanup_prints_what_it_removed(legacy_cli, ws_endpoint, odin) -> None:
    run_id, _ = await start(legacy_cli, ws_endpoint, "hello")
    run_dir = odin.settings.data / run_id
    assert run_dir.is_dir()
    result = await legacy_cli("odin-cleanup", run_id, "--db", "--fs", endpoint=ws_endpoint)
    assert result.code == 0 and result.stderr == "", result
    lines = result.out.splitlines()
    assert lines[0] == "Results of this request:"
    fields = dict(re.findall(r"^ *(\w+) = (.*)$", result.out, re.M))  # one task: the key = value form
    assert fields == {
        "task_id": f"{run_id}--greet",
        "cleaned_from_k8s": "False",
        "purged_from_db": "True",
        "removed_from_fs": "True",
    }
    assert not run_dir.exists()
    after = await legacy_cli("odin-status", run_id, endpoint=ws_endpoint)
    assert after.out == ""


@pytest.mark.parametrize("script", ["odin-data", "odin-events", "odin-logs", "odin-cleanup"])
async def test_hostile_ids_get_an_error_not_a_crash(legacy_cli, ws_endpoint, script) -> None:
    args = ["../../victim"] if script != "odin-cleanup" else ["../../victim", "--db", "--fs"]
    result = await legacy_cli(script, *args, endpoint=ws_endpoint)
    assert result.code == 0 and "Traceback" not in result.stderr, result
    assert "invalid_request" in result.stderr and "invalid run id" in result.stderr
