"""Run every benchmark of bench/ (``make bench``), one after the other, each with its default settings.

Before each one it prints the command and the machine it runs on (the benchmarks print their own figures and the
settings that shaped them); at the end, a line per benchmark with its exit status and wall time. A benchmark that
needs a cluster or a database starts it with the project's tooling itself (tools/k8s, tools/services), so this runs on
a fresh machine once ``make venv k8s-build`` has. Exit status 1 if any benchmark failed.

    .venv/bin/python bench/run.py [NAME ...] [--timeout SECONDS]    # NAME: e.g. ws_fanout (default: all)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def benchmarks(names: list[str]) -> list[Path]:
    """The benchmark scripts: every bench/*.py but helpers (``_*.py``) and this runner."""
    found = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name)
    if not names:
        return found
    by_name = {p.stem: p for p in found}
    unknown = [n for n in names if n.removesuffix(".py") not in by_name]
    if unknown:
        raise SystemExit(f"no benchmark {', '.join(unknown)}; there are: {', '.join(by_name)}")
    return [by_name[n.removesuffix(".py")] for n in names]


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}, load average {load}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="benchmarks to run (file names without .py); default: all")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds one benchmark may take")
    args = ap.parse_args()
    results: list[tuple[str, str, float]] = []
    for script in benchmarks(args.names):
        command = [sys.executable, str(script.relative_to(BENCH.parent))]
        print(f"\n== {script.name}: {' '.join(command)}\n   on {machine()}", flush=True)
        start = time.monotonic()
        try:
            code = subprocess.run(command, cwd=BENCH.parent, timeout=args.timeout, check=False).returncode
            outcome = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            outcome = f"failed (over {args.timeout:g}s)"
        results.append((script.name, outcome, time.monotonic() - start))
    print("\n== summary")
    for name, outcome, took in results:
        print(f"   {name:<28} {outcome:<24} {took:8.1f}s")
    return 0 if all(outcome == "ok" for _, outcome, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
