"""The reading layer on recorded boards: the real pynvml over a fake libnvidia-ml replaying each board's table.

The expected values are the ones the boards' `nvidia-smi -q` logs print (see the tables' ``source``), so these
tests check the whole path: C struct -> pynvml -> adapter -> report, units included.
"""

from __future__ import annotations

from typing import Any

import pytest
from midgard import check, report
from midgard.nvml import NvmlReader
from midgard.report import Identity, PodFacts, ProcFacts
from midgard_support import BOARDS

IDENT = Identity("node-a", "node-a", "10.0.0.1", "agent1", 5.0, "test")


def read(facts: dict[int, ProcFacts] | None = None, pods: dict[str, PodFacts] | None = None) -> dict[str, Any]:
    reader = NvmlReader()
    try:
        raw = reader.read()
    finally:
        reader.close()
    return report.build_report(IDENT, raw, facts=facts or {}, pods=pods or {}, system={}, seq=1, now=0.0)


def at(entry: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        entry = entry[part]
    return entry


EXPECTED: dict[str, dict[str, Any]] = {
    "a100-sxm4-80gb": {
        "productName": "NVIDIA A100-SXM4-80GB", "productBrand": "NVIDIA", "id": "00000000:07:00.0",
        "pciDeviceId": "0x20B210DE", "minorNumber": 2, "performanceState": "P0", "computeMode": "Default",
        "fbMemoryUsage.total": 81920, "fbMemoryUsage.reserved": 834, "fbMemoryUsage.used": 22377,
        "fbMemoryUsage.free": 58708, "utilization.gpuUtil": 0, "temperature.gpuTemp": 28,
        "temperature.gpuTempShutdownThreshold": 92, "temperature.gpuTempSlowThreshold": 89,
        "temperature.gpuTempMaxOperating": 85, "temperature.memoryTempMaxOperating": 95,
        "powerReadings.powerDraw": 68.37, "powerReadings.powerLimit": 400.0, "powerReadings.minPowerLimit": 100.0,
        "powerReadings.maxPowerLimit": 400.0, "clocks.sm": 1155, "clocks.memory": 1593, "clocks.video": 1050,
        "applicationsClocks.graphics": 1155, "maxClocks.sm": 1410, "maxClocks.video": 1290,
        "eccMode.current": "Enabled", "migMode.current": "Disabled", "fanSpeed": None,
    },
    "h100-80gb-hbm3": {
        "productName": "NVIDIA H100 80GB HBM3", "fbMemoryUsage.total": 81559, "fbMemoryUsage.reserved": 328,
        "fbMemoryUsage.used": 2, "temperature.gpuTemp": 33, "temperature.gpuTempShutdownThreshold": None,
        "powerReadings.powerDraw": 72.02, "powerReadings.powerLimit": 700.0, "powerReadings.minPowerLimit": 200.0,
        "clocks.graphics": 345, "clocks.memory": 2619, "applicationsClocks.graphics": 1980, "maxClocks.video": 1545,
    },
    "t4": {
        "productName": "Tesla T4", "performanceState": "P8", "computeMode": "Exclusive_Process",
        "fbMemoryUsage.total": 15360, "fbMemoryUsage.reserved": 393, "fbMemoryUsage.used": 31,
        "temperature.gpuTemp": 38, "temperature.gpuTempShutdownThreshold": 96,
        "temperature.gpuTempSlowThreshold": 93, "temperature.memoryTempMaxOperating": None,
        "powerReadings.powerDraw": 14.04, "powerReadings.powerLimit": 70.0, "powerReadings.minPowerLimit": 60.0,
        "clocks.graphics": 300, "clocks.memory": 405, "clocks.video": 540, "applicationsClocks.memory": 5001,
        "maxClocks.graphics": 1590, "migMode.current": None, "fanSpeed": None,
    },
    "rtx-3050": {
        "productName": "NVIDIA GeForce RTX 3050", "productBrand": "GeForce", "serial": None,
        "utilization.gpuUtil": 9, "utilization.memoryUtil": 3, "fbMemoryUsage.used": 329,
        "powerReadings.powerDraw": None, "powerReadings.powerLimit": 115.0, "powerReadings.minPowerLimit": 50.0,
        "applicationsClocks.graphics": None, "eccMode.current": None, "fanSpeed": 0, "totalEnergyConsumption": None,
        "temperature.gpuTempMaxOperating": 92, "clocks.memory": 7000,
    },
}  # fmt: skip

NOT_SUPPORTED = {
    "a100-sxm4-80gb": {"fanSpeed"},
    "h100-80gb-hbm3": {"fanSpeed", "temperature.gpuTempShutdownThreshold", "temperature.gpuTempSlowThreshold",
                       "temperature.gpuTempMaxOperating", "temperature.memoryTempMaxOperating"},
    "t4": {"fanSpeed", "temperature.memoryTempMaxOperating", "migMode.current", "migMode.pending"},
    "rtx-3050": {"serial", "powerReadings.powerDraw", "totalEnergyConsumption", "applicationsClocks.graphics",
                 "applicationsClocks.memory", "eccMode.current", "eccMode.pending",
                 "temperature.memoryTempMaxOperating", "migMode.current", "migMode.pending"},
}  # fmt: skip


@pytest.mark.parametrize("name", BOARDS)
def test_every_call_is_recorded_and_every_field_explained(name, board, replay):
    fake = replay(board(name))
    rep = read()
    assert fake.unrecorded == []
    assert rep["nvml"]["available"] is True
    assert rep["nvml"]["driverVersion"] == board(name)["system"]["nvmlSystemGetDriverVersion"]
    assert len(rep["gpus"]) == len(board(name)["devices"])
    assert check.report_problems(rep) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values_are_the_ones_nvidia_smi_printed(name, board, replay):
    replay(board(name))
    gpu = read()["gpus"][0]
    got = {path: at(gpu, path) for path in EXPECTED[name]}
    assert got == EXPECTED[name]
    assert set(gpu["notSupported"]) == NOT_SUPPORTED[name]
    assert gpu["errors"] == {}


def test_the_original_clients_fields_are_there(board, replay):
    """odin-gpus reads id (bus id, split on ':'), productName, powerReadings, utilization and processes."""
    replay(board("a100-sxm4-80gb"))
    gpu = read(facts={280058: ProcFacts(name="/usr/bin/python3")})["gpus"][0]
    assert gpu["id"].split(":")[1] == "07"
    assert (gpu["powerReadings"]["unit"], gpu["utilization"]["unit"]) == ("W", "%")
    assert gpu["processes"] == [
        {"pid": 280058, "process_name": "/usr/bin/python3", "used_memory": 22374, "gpuInstanceId": None,
         "computeInstanceId": None, "podUid": None, "containerId": None, "namespace": None, "pod": None,
         "runId": None, "task": None, "taskId": None}
    ]  # fmt: skip


def test_mig_devices_are_read_with_their_instances_and_processes(board, replay):
    table = board("a100-sxm4-40gb-mig")
    fake = replay(table)
    pods = {"uid-1": PodFacts("uid-1", "odin", "sweep-ab12--train-1", "sweep-ab12", "train", "sweep-ab12--train")}
    rep = read(facts={41877: ProcFacts("python", "uid-1", "c0ffee")}, pods=pods)
    assert fake.unrecorded == []
    parent, plain = rep["gpus"]
    assert parent["migMode"] == {"current": "Enabled", "pending": "Enabled"}
    assert parent["utilization"]["gpuUtil"] is None and "utilization.gpuUtil" in parent["notSupported"]
    migs = parent["migDevices"]
    assert [(m["gpuInstanceId"], m["fbMemoryUsage"]["total"]) for m in migs] == [(2, 20096), (3, 9984), (9, 4864)]
    assert migs[0]["productName"].endswith("MIG 3g.20gb")
    assert [p["taskId"] for p in migs[0]["processes"]] == ["sweep-ab12--train"]
    assert migs[1]["processes"] == [] and plain["migDevices"] == []
    # the driver of this table has no v2 memory call: the adapter used v1, and the reservation is unknown
    assert fake.calls.get("nvmlDeviceGetMemoryInfo", 0) >= 5
    assert parent["fbMemoryUsage"]["reserved"] is None and "fbMemoryUsage.reserved" in parent["notSupported"]
    # which task holds which GPU: the MIG instance, with its memory
    assert rep["tasks"] == [
        {"taskId": "sweep-ab12--train", "runId": "sweep-ab12", "task": "train", "namespace": "odin",
         "pod": "sweep-ab12--train-1", "gpuUuid": migs[0]["uuid"], "gpuIndex": 0, "migIndex": 0, "pids": [41877],
         "usedMemory": 10240, "gpuUtil": None}
    ]  # fmt: skip


def test_a_failing_reading_is_an_error_of_that_field_only(board, replay):
    table = board("a100-sxm4-80gb")
    table["devices"][0]["nvmlDeviceGetPowerUsage"] = "UNKNOWN"
    table["devices"][0]["nvmlDeviceGetTemperature"] = {"0": "GPU_IS_LOST"}
    replay(table)
    gpu = read()["gpus"][0]
    assert gpu["powerReadings"]["powerDraw"] is None and gpu["temperature"]["gpuTemp"] is None
    assert set(gpu["errors"]) == {"powerReadings.powerDraw", "temperature.gpuTemp"}
    assert gpu["powerReadings"]["powerLimit"] == 400.0  # the rest is still read
    assert len(check.problems(gpu, "GPU 0")) == 2


def test_a_gpu_whose_handle_fails_is_reported_beside_the_others(board, replay):
    table = board("a100-sxm4-40gb-mig")
    table["devices"][1]["handle_error"] = "GPU_IS_LOST"
    replay(table)
    first, lost = read()["gpus"]
    assert first["productName"] == "NVIDIA A100-SXM4-40GB"
    assert lost["uuid"] is None and "lost" in lost["errors"]["device"].lower()


def test_process_list_refused_is_an_error_not_a_crash(board, replay):
    table = board("t4")
    table["devices"][0]["nvmlDeviceGetComputeRunningProcesses_v3"] = "NO_PERMISSION"
    replay(table)
    gpu = read()["gpus"][0]
    assert gpu["processes"] == [] and "processes" in gpu["errors"]


@pytest.mark.parametrize(
    ("init", "reason"),
    [
        pytest.param("DRIVER_NOT_LOADED", "driver not loaded", id="driver-not-loaded"),
        pytest.param("NO_PERMISSION", "no permission", id="no-permission"),
        pytest.param("UNKNOWN", "cannot start", id="unknown"),
    ],
)
def test_nvml_that_cannot_start_gives_zero_gpus_and_the_reason(board, replay, init, reason):
    replay({**board("t4"), "init": init})
    rep = read()
    assert rep["gpus"] == [] and rep["nvml"]["available"] is False
    assert reason in rep["nvml"]["reason"].lower()


def test_this_machine_has_no_nvml_and_says_so():
    rep = read()
    assert rep["gpus"] == [] and rep["tasks"] == []
    assert rep["nvml"]["available"] is False
    assert "libnvidia-ml.so.1 not found" in rep["nvml"]["reason"]
    assert check.report_problems(rep, expect_gpus=False) == []
