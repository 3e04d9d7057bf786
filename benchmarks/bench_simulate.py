"""Throughput of data.simulate: galaxies per second with 1 and with N worker processes.

    python benchmarks/bench_simulate.py [--n 40] [--workers N] [--size 128]

Each run writes a fresh temporary dataset (3 JPEGs per galaxy + truth for the test
split) and is timed end to end, process start-up and manifest included.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import galsim  # noqa: E402
import numpy as np  # noqa: E402

from data.simulate import SimConfig, simulate  # noqa: E402


def rate(n: int, workers: int, size: int) -> float:
    """Galaxies per second of one ``simulate`` run of ``n`` galaxies (half test)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimConfig(out=Path(tmp) / "bench", n_train=n - n // 2, n_test=n // 2,
                        seed=0, workers=workers, size=size, progress=False)
        t = time.perf_counter()
        simulate(cfg)
        return n / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="galaxies per run")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args(argv)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load avg {load}")
    print(f"python {platform.python_version()}, galsim {galsim.__version__}, "
          f"numpy {np.__version__}")
    one = rate(a.n, 1, a.size)
    print(f"1 worker : {one:.2f} galaxies/s")
    many = rate(a.n, a.workers, a.size)
    print(f"{a.workers} workers: {many:.2f} galaxies/s  (speed-up x{many / one:.2f})")
    # The line benchmarks/run.py collects.
    print("BENCH_JSON " + json.dumps({"bench": "simulate", "args": vars(a),
                                      "one_worker": one, "workers": many}))


if __name__ == "__main__":
    main()
