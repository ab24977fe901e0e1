"""/metrics text: DCGM exporter names and labels, parsed back with Prometheus' reference parser."""

from __future__ import annotations

import pytest
from midgard import metrics, report
from midgard.nvml import NvmlReader
from midgard.report import Identity, PodFacts, ProcFacts
from midgard_support import BOARDS
from prometheus_client.parser import text_string_to_metric_families


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def node_report(host: str = "gpu-node-1", **kw) -> dict:
    reader = NvmlReader()
    raw = reader.read()
    reader.close()
    ident = Identity("gpu-node-1", host, "10.0.0.7", "a1", 5.0, "test")
    system = {"cpu": {"count": 8, "percent": 12.5}, "memory": {"used": 100, "total": 200}, "load": {"1m": 0.5},
              "network": {"bytesRecv": 10, "bytesSent": 20}, "disks": [{"path": "/", "used": 7}]}  # fmt: skip
    return report.build_report(ident, raw, facts=kw.get("facts", {}), pods=kw.get("pods", {}), system=system, seq=1,
                               now=0.0)  # fmt: skip


def test_dcgm_names_labels_and_values(board, replay):
    replay(board("a100-sxm4-80gb"))
    pods = {"u1": PodFacts("u1", "odin", "sweep--train-1", "sweep", "train", "sweep--train")}
    fams = families(metrics.render(node_report(facts={280058: ProcFacts("python", "u1", "c1")}, pods=pods)))
    (util,) = fams["DCGM_FI_DEV_GPU_UTIL"]
    assert util.labels == {"gpu": "0", "UUID": "GPU-5a1c0d7e-2b8f-4c11-9e3a-7d4b6f0a1c21",
                           "pci_bus_id": "00000000:07:00.0", "device": "nvidia2", "modelName": "NVIDIA A100-SXM4-80GB",
                           "Hostname": "gpu-node-1", "namespace": "odin", "pod": "sweep--train-1"}  # fmt: skip
    values = {name: samples[0].value for name, samples in fams.items() if samples}
    assert values["DCGM_FI_DEV_FB_USED"] == 22377 and values["DCGM_FI_DEV_FB_FREE"] == 58708
    assert values["DCGM_FI_DEV_POWER_USAGE"] == 68.37 and values["DCGM_FI_DEV_POWER_MGMT_LIMIT"] == 400.0
    assert values["DCGM_FI_DEV_GPU_TEMP"] == 28 and values["DCGM_FI_DEV_SM_CLOCK"] == 1155
    assert values["DCGM_FI_DEV_COUNT"] == 1 and values["midgard_nvml_available"] == 1
    assert values["odin_gpu_task_used_memory_mib"] == 22374
    assert "DCGM_FI_DEV_FAN_SPEED" not in fams  # not supported on this board: no series, never a fake 0
    # the energy counter keeps DCGM's exact name (no _total suffix)
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in metrics.render(node_report())


@pytest.mark.parametrize("name", BOARDS)
def test_every_board_renders_parseable_text(name, board, replay):
    replay(board(name))
    text = metrics.render(node_report(), [("midgard_readings_total", "counter", "readings", 3)])
    fams = families(text)
    assert len(fams["DCGM_FI_DEV_GPU_TEMP"]) == len(board(name)["devices"])


def test_mig_instances_have_their_own_memory_series(board, replay):
    replay(board("a100-sxm4-40gb-mig"))
    used = families(metrics.render(node_report()))["DCGM_FI_DEV_FB_USED"]
    by_instance = {(s.labels["gpu"], s.labels.get("GPU_I_ID"), s.labels.get("GPU_I_PROFILE")): s.value for s in used}
    assert by_instance[("0", "2", "3g.20gb")] == 10251
    assert by_instance[("0", "9", "1g.5gb")] == 3
    assert by_instance[("0", None, None)] == 10261 and by_instance[("1", None, None)] == 3


def test_hostile_label_values_are_escaped(board, replay):
    replay(board("t4"))
    host = 'evil"host\nDCGM_FI_DEV_GPU_UTIL{gpu="9"} 100\\'
    fams = families(metrics.render(node_report(host=host)))
    (temp,) = fams["DCGM_FI_DEV_GPU_TEMP"]
    assert temp.labels["Hostname"] == host
    assert len(fams["DCGM_FI_DEV_GPU_UTIL"]) == 1  # nothing injected


def test_no_gpu_node_still_exposes_the_agent(replay):
    text = metrics.render(node_report())
    fams = families(text)
    assert fams["DCGM_FI_DEV_COUNT"][0].value == 0 and fams["midgard_nvml_available"][0].value == 0
    assert metrics.render(None, [("midgard_buffered_reports", "gauge", "b", 0)]).startswith("# HELP midgard_buffered")
