"""The gateway's node registry without I/O: validation, latest and history, staleness, timelines, idle warnings."""

from __future__ import annotations

import json

import pytest
from midgard_support import report_for
from odin_http.nodes_model import NodeLimits, NodeRegistry, ReportError, validate

LIMITS = NodeLimits(stale_after_s=30, history_s=100, history_points=50, idle_after_s=60, idle_util_percent=5)


def listing(reg: NodeRegistry, now: float) -> dict:
    return json.loads(reg.listing(now))


def test_latest_wins_by_time_not_arrival_and_duplicates_are_ignored():
    reg = NodeRegistry(LIMITS)
    assert reg.ingest([report_for("n1", ts=1010, seq=2, util=80)], now=1010) == 1
    assert reg.ingest([report_for("n1", ts=1000, seq=1, util=10)], now=1011) == 1  # a buffered, older one
    assert reg.ingest([report_for("n1", ts=1010, seq=2, util=80)], now=1012) == 0  # sent twice
    (node,) = listing(reg, 1012)["nodes"]
    assert node["gpus"][0]["utilization"]["gpuUtil"] == 80 and node["seq"] == 2
    assert [s.timestamp for s in reg.nodes["n1"].history] == [1000, 1010]
    assert reg.duplicates == 1


def test_listing_has_the_original_shape_and_marks_stale_nodes():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000, seq=1)], now=1000)
    reg.ingest([report_for("n2", ts=1000, seq=1)], now=1025)
    nodes = {n["name"]: n for n in listing(reg, 1040)["nodes"]}
    assert nodes["n1"]["stale"] is True and nodes["n1"]["ageS"] == 40.0
    assert nodes["n2"]["stale"] is False
    assert nodes["n1"]["host"] == "n1" and nodes["n1"]["internalIp"] == "10.0.0.9"
    assert nodes["n1"]["capacity"] == {"nvidia.com/gpu": "1", "cpu": "16", "memory": f"{64 * 2**20}Ki"}
    assert nodes["n1"]["gpus"][0]["productName"] == "Tesla T4"  # a stale node keeps its last GPUs


def test_kubernetes_capacity_replaces_the_agents_and_lists_nodes_without_agent():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000, seq=1)], now=1000)
    reg.set_capacity({"n1": {"cpu": "32", "nvidia.com/gpu": "8"}, "cpu-only": {"cpu": "4"}})
    nodes = {n["name"]: n for n in listing(reg, 1001)["nodes"]}
    assert nodes["n1"]["capacity"] == {"cpu": "32", "nvidia.com/gpu": "8"}
    assert nodes["n1"]["capacitySource"] == "kubernetes"
    assert nodes["cpu-only"]["gpus"] == [] and "no report" in nodes["cpu-only"]["agent"]


def test_samples_without_a_task_are_not_kept_in_the_history():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000 + i, seq=i, task_id=None) for i in range(10)], now=1010)
    assert len(reg.nodes["n1"].history) == 0 and reg.accepted == 10
    assert listing(reg, 1010)["nodes"][0]["seq"] == 9


def test_history_is_bounded_by_points_and_age():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000 + i, seq=i) for i in range(120)], now=1120)
    history = reg.nodes["n1"].history
    assert len(history) == 50 and history[0].timestamp == 1070
    reg.ingest([report_for("n1", ts=1300, seq=500)], now=1300)
    assert [s.timestamp for s in reg.nodes["n1"].history] == [1300]


def test_timeline_of_a_run_and_of_a_task():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000 + i, seq=i, util=10 * i, task_id="sweep-ab12--train") for i in range(3)], 1003)
    reg.ingest([report_for("n2", ts=1001, seq=1, util=99, task_id="sweep-ab12--eval")], 1003)
    reg.ingest([report_for("n3", ts=1001, seq=1, util=99, task_id="other-x--train")], 1003)
    run = reg.timeline("sweep-ab12")
    assert [(p["timestamp"], p["taskId"], p["gpuUtil"]) for p in run] == [
        (1000, "sweep-ab12--train", 0.0), (1001, "sweep-ab12--eval", 99.0), (1001, "sweep-ab12--train", 10.0),
        (1002, "sweep-ab12--train", 20.0)]  # fmt: skip
    assert {p["node"] for p in reg.timeline("sweep-ab12--eval")} == {"n2"}
    assert reg.timeline("nothing-here") == []


def test_idle_warning_after_the_setting_and_not_before():
    reg = NodeRegistry(LIMITS)
    busy = [report_for("n1", ts=1000, seq=0, util=90)]
    idle = [report_for("n1", ts=1000 + i, seq=i, util=2) for i in range(1, 62)]
    reg.ingest(busy + idle[:30], now=1030)
    assert reg.warnings(1030) == []
    reg.ingest(idle[30:], now=1061)
    (w,) = reg.warnings(1061)
    assert (w["code"], w["taskId"], w["node"], w["gpuIndex"], w["idleS"]) == ("gpu_idle", "sweep-ab12--train", "n1",
                                                                              0, 61.0)  # fmt: skip
    assert "holds GPU 0 on n1" in w["message"]
    reg.ingest([report_for("n1", ts=1062, seq=62, util=50)], now=1062)  # used again: the warning goes
    assert reg.warnings(1062) == []
    assert listing(reg, 1062)["warnings"] == []


def test_unknown_utilisation_never_warns_and_stale_nodes_do_not_warn():
    reg = NodeRegistry(LIMITS)
    reg.ingest([report_for("n1", ts=1000 + i, seq=i, util=None) for i in range(100)], now=1099)
    assert reg.warnings(1099) == []
    reg.ingest([report_for("n2", ts=1000 + i, seq=i, util=0) for i in range(100)], now=1099)
    assert len(reg.warnings(1099)) == 1 and reg.warnings(1200) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"version": 2}, "version", id="version"),
        pytest.param({"node": "Bad_Name"}, "node", id="node-name"),
        pytest.param({"node": "a" * 300}, "node", id="node-too-long"),
        pytest.param({"agentId": ""}, "agentId", id="agent-id"),
        pytest.param({"seq": -1}, "seq", id="seq"),
        pytest.param({"seq": True}, "seq", id="seq-bool"),
        pytest.param({"timestamp": "yesterday"}, "timestamp", id="timestamp"),
        pytest.param({"timestamp": float("nan")}, "timestamp", id="timestamp-nan"),
        pytest.param({"gpus": "all"}, "gpus", id="gpus-type"),
        pytest.param({"gpus": [{}] * 65}, "gpus", id="gpus-too-many"),
        pytest.param({"gpus": [1]}, "GPU", id="gpu-not-object"),
        pytest.param({"tasks": [[]]}, "task", id="task-not-object"),
        pytest.param({"host": 7}, "host", id="host-type"),
        pytest.param({"system": []}, "system", id="system-type"),
    ],
)
def test_invalid_reports_are_refused_with_the_field(change, message):
    with pytest.raises(ReportError, match=message):
        validate({**report_for("n1", ts=1, seq=1), **change})
    with pytest.raises(ReportError):
        validate([report_for("n1", ts=1, seq=1)])


def test_the_legacy_listing_never_hands_the_original_client_an_unknown_number():
    lost = {"index": 3, "id": None, "uuid": None, "errors": {"device": "GPU is lost"}}
    no_power = {**report_for("n1", ts=1, seq=1)["gpus"][0], "powerReadings": {"powerDraw": None, "powerLimit": 115.0,
                                                                             "unit": "W"},
                "processes": [{"pid": 7, "process_name": "x", "used_memory": None}]}  # fmt: skip
    reg = NodeRegistry(LIMITS)
    rep = {**report_for("n1", ts=1, seq=1), "gpus": [no_power, lost]}
    reg.ingest([validate(rep)], now=1)
    first, second = listing(reg, 1)["nodes"][0]["gpus"]
    for gpu in (first, second):  # what the original odin-gpus computes on
        assert isinstance(gpu["id"].split(":")[1], str) and isinstance(gpu["productName"].replace("x", ""), str)
        assert int(gpu["powerReadings"]["powerDraw"]) >= 0 and int(gpu["powerReadings"]["powerLimit"]) >= 0
        assert all(int(p["used_memory"]) >= 0 for p in gpu["processes"])
    assert first["legacyZeroed"] == ["powerReadings.powerDraw", "processes[7].used_memory"]
    assert second["id"] == "unknown:3" and second["errors"] == {"device": "GPU is lost"}
    gpus = reg.gpus(1)  # /v1/gpus keeps the truth
    assert gpus[0]["powerReadings"]["powerDraw"] is None and gpus[1]["id"] is None
