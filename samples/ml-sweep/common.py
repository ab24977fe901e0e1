"""Helpers shared by the sweep's scripts: publishing task outputs the Odin way."""

from __future__ import annotations

import json
import os
from typing import Any


def publish(outputs: dict[str, Any]) -> None:
    """Write this task's outputs (a JSON object, at most 4096 bytes) where Odin reads them."""
    path = os.environ.get("ODIN_OUTPUTS")
    text = json.dumps(outputs)
    if path:
        with open(path, "w") as f:
            f.write(text)
    print(f"outputs: {text}")
