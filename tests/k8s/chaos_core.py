"""``odin-core serve`` with the Kubernetes executor, for the chaos harness (tests/chaos/harness.py).

On kwok nodes no code runs, so this core plays the chaos pipeline's ``step.py`` through kwok's
``odin.ml/simulate-*`` annotations (the executor's ``decorate`` hook): the same outputs from the
same resolved arguments, ``right`` failing on its first attempt, ``broken`` always failing, each pod
lasting the task's ``STEP_S``. Everything else is the real server: the store, the engine, leases,
adoption after a SIGKILL, the executor against the real control plane.

    python tests/k8s/chaos_core.py --root-path R --home H --port 0 --kubeconfig K --namespace N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from odin_core.api import Odin
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.service import ServiceSettings, serve_odin
from odin_core.settings import Settings


def play(launch: Launch) -> dict[str, dict[str, str]]:
    """What step.py would do, as kwok annotations."""
    name, attempt = launch.task.name, launch.attempt
    values = [int(a) for a in launch.task.args[1:]]
    annotations = {"odin.ml/simulate-duration": f"{float(launch.task.env.get('STEP_S', '0.5')):g}s"}
    outputs: dict[str, int] = {}
    if name == "prepare":
        outputs = {"n": 3}
    elif name == "left":
        outputs = {"v": values[0] * 2}
    elif name == "right":
        if attempt == 1:
            return {"annotations": {**annotations, "odin.ml/simulate-exit-code": "3"}}
        outputs = {"v": values[0] + 1}
    elif name == "join":
        outputs = {"sum": values[0] + values[1]}
    elif name == "broken":
        return {"annotations": {**annotations, "odin.ml/simulate-exit-code": "7"}}
    return {"annotations": {**annotations, "odin.ml/simulate-outputs": json.dumps(outputs)}}


async def serve(args: argparse.Namespace) -> None:
    env = {
        **os.environ,
        "ODIN_HOME": str(args.home),
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBECONFIG": args.kubeconfig,
        "ODIN_NAMESPACE": args.namespace,
    }
    if args.store:
        env["ODIN_STORE"] = args.store
    settings = Settings.from_env(env)
    executor = KubernetesExecutor(settings.data, settings.kubernetes, decorate=play)
    service = ServiceSettings(host="127.0.0.1", port=args.port, root_path=args.root_path.resolve())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    odin = await Odin.open(settings, executor=executor, root=service.root_path)
    async with odin, serve_odin(odin, service) as server:
        print(f"chaos core serving {server.url}", flush=True)
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root-path", type=Path, required=True)
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--store", default="")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
