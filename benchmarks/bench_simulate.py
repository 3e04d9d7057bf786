"""Throughput of data.simulate: galaxies per second with 1 and with N worker processes.

    python benchmarks/bench_simulate.py [--n 40] [--workers N] [--size 128]

Each run writes a fresh temporary dataset (3 JPEGs per galaxy + truth for the test
split) and is timed end to end, process start-up and manifest included.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np

from common.cli import Parser, positive_int
from data.sim_luo import SimConfig, simulate


def rate(n: int, workers: int, size: int) -> float:
    """Galaxies per second of one ``simulate`` run of ``n`` galaxies (half test)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimConfig(out=Path(tmp) / "bench", n_train=n - n // 2, n_test=n // 2,
                        seed=0, workers=workers, size=size, progress=False)
        t = time.perf_counter()
        simulate(cfg)
        return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/bench_simulate.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=positive_int, default=40,
                    help="galaxies per run (half train, half test; at least 2)")
    ap.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                    help="processes of the second run")
    ap.add_argument("--size", type=positive_int, default=128, help="cutout side in px")
    a = ap.parse_args(argv)
    return run_cli(lambda: run(a))


def run(a) -> None:
    if a.n < 2:
        raise ValueError(f"--n {a.n}: at least 2 galaxies (one train, one test)")
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
    print("bench_simulate: wrote no files (each run's temporary dataset removed); the "
          "figures are the lines above, the BENCH_JSON line for benchmarks/run.py")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
