"""A core in a process of its own, for tests that kill it: a LocalExecutor that submits and then waits.

Reads ``{"data": DATA_PATH, "launches": [launch, ...]}`` (see ``conftest.launch_to_dict``) on stdin, binds a
report callback that prints every AttemptUpdate as a JSON line, prints ``{"submitted": [run, task, attempt],
"resource_id": ...}`` (or ``"error"``) for each launch, then waits until it is killed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from odin_core.errors import OdinError
from odin_core.executors.base import Launch
from odin_core.executors.local import LocalExecutor
from odin_core.settings import LocalSettings
from odin_core.spec.model import TaskSpec


def say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main() -> None:
    job = json.loads(sys.stdin.read())
    executor = LocalExecutor(Path(job["data"]), LocalSettings(kill_grace_s=job.get("grace_s", 5.0)))
    executor.bind(lambda u: say({"update": {**dataclasses.asdict(u), "status": u.status.value}}))
    for d in job["launches"]:
        task = TaskSpec(d["name"], "python:3.12-slim", tuple(d["command"]))
        launch = Launch(d["run_id"], task, d["attempt"], d["work_path"], d["run_path"], d["env"])
        key = [d["run_id"], d["name"], d["attempt"]]
        try:
            say({"submitted": key, "resource_id": await executor.submit(launch)})
        except OdinError as e:
            say({"submitted": key, "error": str(e)})
    await asyncio.Event().wait()


asyncio.run(main())
