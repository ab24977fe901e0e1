"""The GPU check's verdicts (midgard/tools/gpu_check.py), on reports read from recorded boards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from midgard import check, metrics, report
from midgard.nvml import NvmlReader
from midgard.report import Identity, ProcFacts

TOOL = Path(__file__).resolve().parents[2] / "midgard" / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("midgard_gpu_check_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(pid_name: str = "") -> dict:
    reader = NvmlReader()
    raw = reader.read()
    reader.close()
    facts = {p: ProcFacts(pid_name) for p in report.all_pids(raw)}
    return report.build_report(Identity("n", "n", "", "a", 1, "t"), raw, facts=facts, pods={}, system={}, seq=3,
                               now=0.0)  # fmt: skip


def test_a_complete_board_passes_and_the_table_lists_every_reading(tool, board, replay):
    replay(board("rtx-3050"))
    rep = read()
    assert check.report_problems(rep) == [] and tool.metric_problems(rep, metrics.render(rep)) == []
    table = check.table(rep)
    assert "powerReadings.powerDraw" in table and "not supported" in table and "MISSING" not in table


def test_a_failed_reading_and_a_missing_series_are_problems(tool, board, replay):
    table = board("t4")
    table["devices"][0]["nvmlDeviceGetUtilizationRates"] = "UNKNOWN"
    replay(table)
    rep = read()
    assert any("utilization.gpuUtil" in p for p in check.report_problems(rep))
    assert tool.metric_problems(rep, metrics.render(rep)) == ["/metrics has no DCGM_FI_DEV_GPU_UTIL for GPU 0"]
    assert "ERROR" in check.table(rep)


def test_the_cuda_helper_process_must_be_on_a_gpu_with_name_and_memory(tool, board, replay):
    replay(board("t4"))
    assert tool.process_problems(read("python3"), 25384) == []
    assert tool.process_problems(read(""), 25384) == ["process 25384 on GPU 0 has no process_name"]
    assert tool.process_problems(read("python3"), 1) == [
        "process 1 (holding a CUDA context) is on no GPU of the report"
    ]


def test_no_nvml_fails_the_check():
    rep = read()
    assert check.report_problems(rep)[0].startswith("NVML not available: no NVIDIA driver")
