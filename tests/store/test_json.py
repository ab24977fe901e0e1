"""The stores' JSON: what every commit writes reads back as the standard library's encoding of it would."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest
from odin_core.store.common import dumps


@dataclasses.dataclass
class Point:
    x: int


def stdlib(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize(
    "value",
    [
        {"status": "DONE", "exit_code": 0, "started": 1764677400.123456, "message": "ok"},
        {"message": "ünïcode ✓ and \u2028 and emoji 🚀", "data": {"nested": [1, 2.5, None, True]}},
        {"big": 2**70, "small": -(2**63), "list": [2**65]},
        {1: "an int key", 2.5: "a float key", None: "a None key"},
        {"when": datetime.datetime(2026, 12, 2, 12, 0, 0), "point": Point(3)},
        {"tuple": (1, 2), "empty": {}, "empty list": []},
    ],
)
def test_dumps_reads_back_as_the_standard_encoder_would(value: object) -> None:
    text = dumps(value)
    assert json.loads(text) == stdlib(value)
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def test_nul_characters_become_the_replacement_character_in_keys_and_values() -> None:
    text = dumps({"a\x00b": ["c\x00", {"d": "\x00"}]})
    assert "\\u0000" not in text
    assert json.loads(text) == {"a\ufffdb": ["c\ufffd", {"d": "\ufffd"}]}


def test_nan_and_infinity_are_written_as_null_which_every_store_accepts() -> None:
    text = dumps({"loss": float("nan"), "best": float("inf")})
    assert json.loads(text) == {"loss": None, "best": None}
