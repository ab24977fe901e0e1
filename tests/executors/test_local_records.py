"""The supervisor's records are JSON that the core reads back exactly (it writes them without ``json``)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from odin_core.executors.local_supervisor import to_json

values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()


@given(st.dictionaries(st.text(), values, max_size=6))
def test_records_round_trip_through_json(record: dict[str, object]) -> None:
    assert json.loads(to_json(record)) == record


def test_hostile_outputs_text_survives() -> None:
    text = '{"a": "quote \\" and \\\\ and \\n"}\x00\x1f\u2028 \U0001f600 \ufffd'
    assert json.loads(to_json({"outputs": text, "exit_code": -9})) == {"outputs": text, "exit_code": -9}
