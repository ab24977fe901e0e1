"""Run once on a machine with a real NVIDIA GPU: does the real agent report a real value for every field the board
supports?

It starts ``python -m midgard`` (the real agent, its HTTP server on a free loopback port), optionally with a CUDA
context held by a helper process (through the driver's own ``libcuda.so.1``, no CUDA toolkit needed) so the
process readings are exercised too, takes the report and the metrics, stops the agent, and checks:

- NVML is available and at least one GPU is listed;
- every GPU field is a real value, or NVML said "not supported" for it (``notSupported``); nothing in ``errors``;
- with ``--cuda``: the helper's pid is on the GPU with a name and its memory use;
- ``/metrics`` has DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_POWER_USAGE for
  every GPU whose board supports them.

It prints a table of every reading and exits 1 on any problem. With ``--out DIR`` it writes report.json,
metrics.txt and table.txt there. Usage: ``bash midgard/tools/gpu_check.sh`` (see docs/midgard.md).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from midgard import check

HOLD_CUDA = r"""
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
assert cuda.cuInit(0) == 0, "cuInit failed"
dev, ctx = ctypes.c_int(), ctypes.c_void_p()
assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0, "cuDeviceGet failed"
assert cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev) == 0, "cuCtxCreate failed"
print("context", flush=True)
sys.stdin.read()
"""

DCGM_REQUIRED = {
    "DCGM_FI_DEV_GPU_UTIL": "utilization.gpuUtil",
    "DCGM_FI_DEV_FB_USED": "fbMemoryUsage.used",
    "DCGM_FI_DEV_GPU_TEMP": "temperature.gpuTemp",
    "DCGM_FI_DEV_POWER_USAGE": "powerReadings.powerDraw",
}


def start_agent() -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "MIDGARD_PORT": "0", "MIDGARD_LISTEN_HOST": "127.0.0.1", "MIDGARD_INTERVAL_S": "1",
           "MIDGARD_NODE_NAME": os.environ.get("MIDGARD_NODE_NAME", "gpu-check")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "midgard"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("midgard listening on"):
        proc.kill()
        raise SystemExit(f"the agent did not start (exit {proc.wait()}); its log is above")
    return proc, int(line.rsplit(":", 1)[1])


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read()


def take(port: int, min_seq: int, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:  # the agent reads once a second; the check polls its public endpoint like a user would
        rep = json.loads(get(port, "/v1/report"))
        if rep["seq"] >= min_seq or time.monotonic() > deadline:
            return rep
        time.sleep(0.5)


def hold_cuda() -> subprocess.Popen[str] | None:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        print("--cuda: libcuda.so.1 not found, no process check", file=sys.stderr)
        return None
    proc = subprocess.Popen([sys.executable, "-c", HOLD_CUDA], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "context":
        proc.kill()
        raise SystemExit("--cuda: could not create a CUDA context")
    return proc


def process_problems(report: dict[str, Any], pid: int) -> list[str]:
    for gpu in report["gpus"]:
        for entry in [gpu, *(gpu.get("migDevices") or [])]:
            for p in entry.get("processes") or []:
                if p["pid"] == pid:
                    bad = [k for k in ("process_name", "used_memory") if not p.get(k)]
                    return [f"process {pid} on GPU {gpu['index']} has no {k}" for k in bad]
    return [f"process {pid} (holding a CUDA context) is on no GPU of the report"]


def metric_problems(report: dict[str, Any], text: str) -> list[str]:
    out = []
    for gpu in report["gpus"]:
        for metric, path in DCGM_REQUIRED.items():
            if path in (gpu.get("notSupported") or []):
                continue
            if f'{metric}{{gpu="{gpu["index"]}"' not in text:
                out.append(f"/metrics has no {metric} for GPU {gpu['index']}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda", action="store_true", help="also hold a CUDA context and check the process readings")
    parser.add_argument("--out", type=Path, default=None, help="write report.json, metrics.txt, table.txt here")
    args = parser.parse_args()
    holder = hold_cuda() if args.cuda else None
    agent, port = start_agent()
    try:
        report = take(port, min_seq=3)
        metrics_text = get(port, "/metrics").decode()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent_rc = agent.wait(timeout=30)
        if holder is not None:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
    problems = check.report_problems(report) + metric_problems(report, metrics_text)
    if holder is not None:
        problems += process_problems(report, holder.pid)
    if agent_rc != 0:
        problems.append(f"the agent exited {agent_rc} on SIGTERM")
    table = check.table(report)
    print(f"driver {report['nvml'].get('driverVersion')}, {len(report['gpus'])} GPU(s) on {report['node']}")
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        (args.out / "metrics.txt").write_text(metrics_text)
        (args.out / "table.txt").write_text(table + "\n\nproblems:\n" + "\n".join(problems) + "\n")
    for p in problems:
        print(f"PROBLEM: {p}")
    print("GPU check: " + ("FAILED" if problems else "every supported field carries a real value"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
