"""docs/midgard.md says what the code does: settings tables, metric names, endpoints."""

from __future__ import annotations

from pathlib import Path

from midgard import metrics
from midgard.settings import reference_markdown
from odin_http.settings import describe

DOC = (Path(__file__).resolve().parents[2] / "docs" / "midgard.md").read_text(encoding="utf-8")


def test_the_agent_settings_table_is_the_generated_one():
    assert reference_markdown() in DOC


def test_every_gateway_node_setting_is_named():
    envs = [d.env for d in describe() if d.section == "nodes"]
    assert len(envs) == 11
    for env in envs:
        assert f"`{env}`" in DOC, env


def test_every_dcgm_metric_is_documented():
    for name, *_ in metrics.GPU_METRICS:
        assert f"`{name}`" in DOC, name
