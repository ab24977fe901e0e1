"""Where a profile's time goes, by layer: Odin's own code, asyncio (with selectors and ssl), aiohttp, C built-ins.

Reads a cProfile file (``bench/k8s_throughput.py --only odin --profile FILE``) and sums each function's own
time (tottime) by the layer its file belongs to; C built-ins (SSL reads, socket calls, epoll, orjson and
msgspec decoding) have no file and are one layer.

    python bench/profile_layers.py odin.pstats
"""

from __future__ import annotations

import argparse
import collections
import pstats

LAYERS = (
    ("odin_core", "Odin (odin_core)"),
    ("site-packages/aiohttp", "aiohttp"),
    ("site-packages/yarl", "yarl (URLs)"),
    ("asyncio", "asyncio, selectors, ssl"),
    ("selectors.py", "asyncio, selectors, ssl"),
    ("/ssl.py", "asyncio, selectors, ssl"),
)


def layer(filename: str) -> str:
    if filename == "~":
        return "C built-ins (SSL, sockets, epoll, JSON)"
    return next((name for part, name in LAYERS if part in filename), "other Python")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    stats = pstats.Stats(ap.parse_args().profile).stats
    totals: collections.Counter[str] = collections.Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        totals[layer(filename)] += tottime
    whole = sum(totals.values())
    print(f"{whole:.2f} s of own time in the profile")
    for name, seconds in totals.most_common():
        print(f"{seconds / whole * 100:5.1f}%  {seconds:6.2f} s  {name}")


if __name__ == "__main__":
    main()
