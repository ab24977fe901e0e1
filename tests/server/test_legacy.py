"""Every legacy command, as clients written for the first Odin use them: one request per connection."""

from __future__ import annotations

import re

from server_support import check, legacy


async def test_start_streams_progress_then_end(server):
    replies = await legacy(server.url, "START", "hello", corr="c-1")
    statuses = [r["status"] for r in replies]
    assert statuses[-1] == "END" and set(statuses[:-1]) == {"OK"}
    run_id = replies[0]["response"]
    assert re.fullmatch(r"hello-[a-z0-9]{8}", run_id) and replies[-1]["response"] == run_id
    lines = [r["response"] for r in replies[1:-1]]
    task = f"{run_id}--greet"
    assert lines.index(f"Submitting {task}") < lines.index(f"Done running {task}")
    assert lines[-1] == f"Pipeline {run_id} DONE"


async def test_status_data_events_logs_show_cleanup(server):
    run_id = (await legacy(server.url, "START", "hello"))[0]["response"]
    (status,) = await legacy(server.url, "STATUS", run_id, tag=7)
    assert status["tag"] == 7
    (entry,) = status["response"]
    check(entry, "status_entry.json")
    assert entry["pipeline_status"]["status"] == "DONE"
    assert entry["task_statuses"][0]["status"] == "executed"
    assert set(entry) == {"pipeline_status", "task_statuses"}  # exactly the first Odin's shape

    (data,) = await legacy(server.url, "DATA", {"resource": f"{run_id}--greet"})
    check(data["response"], "data.json")
    assert data["response"]["jobs"]["exit_code"] == 0

    (events,) = await legacy(server.url, "EVENTS", {"resource": run_id, "namespace": "default"})
    for e in events["response"]:
        check(e, "legacy_event.json")
    assert [e["reason"] for e in events["response"]][-1] == "Done"

    logs = await legacy(server.url, "LOGS", {"resource": f"{run_id}--greet", "namespace": "default"})
    assert [r["status"] for r in logs] == ["OK", "END"]
    assert logs[0]["response"] == f"hello from {run_id}--greet"
    followed = await legacy(server.url, "LOGS", {"resource": f"{run_id}--greet", "follow": True})
    assert [r["response"] for r in followed[:-1]] == [f"hello from {run_id}--greet"]

    (show,) = await legacy(server.url, "SHOW", "hello")
    assert list(show["response"]) == ["main.yml"] and "greet" in show["response"]["main.yml"]

    (cleaned,) = await legacy(server.url, "CLEANUP", {"work": run_id, "purge_db": True, "purge_fs": True})
    for c in cleaned["response"]:
        check(c, "cleanup_entry.json")
    assert cleaned["response"][0]["purged_from_db"] is True
    (after,) = await legacy(server.url, "STATUS", run_id)
    assert after["response"] == []


async def test_ping_unknown_command_and_unknown_ids(server):
    assert (await legacy(server.url, "PING", "hi"))[0]["response"] == "PONG hi"
    (unknown,) = await legacy(server.url, "FROBNICATE", None, id=3)
    assert (unknown["status"], unknown["response"], unknown["id"]) == ("ERROR", "FROBNICATE not found.", 3)
    (missing,) = await legacy(server.url, "DATA", {"resource": "nope-12345678"})
    assert missing["error"]["code"] == "not_found"


async def test_job_names_cannot_leave_the_root(server):
    for job in ("../hello", "/etc", "team/../../x"):
        (reply,) = await legacy(server.url, "SHOW", job)
        assert reply["error"]["code"] == "invalid_request", job
    (nested,) = await legacy(server.url, "SHOW", "team__bad")  # `__` spells `/` as over HTTP
    assert "main.yml" in nested["response"]


async def test_an_invalid_pipeline_reports_every_problem(server):
    (reply,) = await legacy(server.url, "START", "team/bad")
    assert reply["error"]["code"] == "invalid_pipeline"
    fields = {p["field"] for p in reply["error"]["details"]["problems"]}
    assert {"tasks[0].name", "tasks[0].command"} <= fields
    (valid,) = await legacy(server.url, "VALIDATE", "team/bad")
    check(valid["response"], "validate.json")
    assert valid["response"]["valid"] is False and valid["response"]["problems"][0]["line"] == 4


async def test_status_finds_runs_by_the_pipeline_name_as_written(server):
    """Run ids are DNS labels (``bert-ner-…``); the name ``bert.ner`` as written still finds them."""
    run_id = (await legacy(server.url, "START", "ner"))[-1]["response"]
    assert re.fullmatch(r"bert-ner-[a-z0-9]{8}", run_id)
    for pattern in ("bert.ner", "bert.n", "bert.*", "ner", run_id):
        (status,) = await legacy(server.url, "STATUS", pattern)
        assert [e["pipeline_status"]["label"] for e in status["response"]] == [run_id], pattern
    (none,) = await legacy(server.url, "STATUS", "bert_ner")
    assert none["response"] == []
