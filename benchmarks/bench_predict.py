"""Sharded-inference throughput and memory of ``pix2wgan.predict --manifest``.

    python benchmarks/bench_predict.py [--model pix2wgan|cascade] [--n 256]
        [--width 64] [--rows 1000,20000] [--quick]

1. Throughput: ``predict_manifest`` over ``--n`` catalogue rows of 128 px JPEGs with an
   untrained paper-size generator (``--width`` 64; speed does not depend on the
   weights), model built and traced beforehand; images/s end to end (decode, model,
   PNG encode, atomic writes, shard record).
2. Memory: for each catalogue length in ``--rows``, a fresh Python process runs one
   shard over the whole catalogue with a tiny generator (width 2, depth 2, 32 px
   cutouts; rows cycle over 64 distinct JPEGs) and reports its peak resident memory
   (VmHWM) minus the memory before the run. Flat memory: the growth ratio stays near 1
   while the catalogue grows 20x.
The GPU target (>= 200 img/s) is only judged on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.benchlib import NO_GPU, closing, emit, int_list, print_machine, status_mb
from benchmarks.setups import build_predict_model, write_catalogue

from common.cli import Parser, add_verbose, positive_int

REPO = Path(__file__).resolve().parent.parent


def memory_worker(rows: int, tmp: str, model: str) -> None:
    from pix2wgan.survey import predict_manifest
    cat = write_catalogue(Path(tmp) / "cat", rows, 32)
    fn, mult = build_predict_model(model, 2, 2)
    before = status_mb("VmRSS")
    t = time.perf_counter()
    predict_manifest(lambda: (fn, mult), cat, Path(tmp) / "out", batch_size=32,
                     progress=False)
    wall = time.perf_counter() - t
    print("MEM " + json.dumps({"rows": rows, "before_mb": before,
                               "peak_mb": status_mb("VmHWM"), "seconds": wall}))


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/bench_predict.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("pix2wgan", "cascade"), default="pix2wgan",
                    help="one generator, or the cascade's two")
    ap.add_argument("--n", type=positive_int, default=256,
                    help="rows for the throughput run")
    ap.add_argument("--width", type=positive_int, default=64, help="generator width")
    ap.add_argument("--batch", type=positive_int, default=32, help="batch size")
    ap.add_argument("--rows", default="1000,20000",
                    help="comma-separated catalogue lengths of the memory run")
    ap.add_argument("--quick", action="store_true", help="--n 64 --rows 1000,5000")
    ap.add_argument("--_memory-worker", nargs=2, metavar=("ROWS", "TMP"),
                    help=argparse.SUPPRESS)
    add_verbose(ap)
    a = ap.parse_args(argv)
    if a._memory_worker:  # internal: one memory run, in a fresh process
        memory_worker(int(a._memory_worker[0]), a._memory_worker[1], a.model)
        return 0
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


def run(a) -> None:
    if a.quick:
        a.n, a.rows = 64, "1000,5000"
    rows_list = int_list(a.rows, "--rows")
    info = print_machine()
    from pix2wgan.survey import predict_manifest
    res = {"bench": f"predict_{a.model}", "machine": info, "args": vars(a)}
    with tempfile.TemporaryDirectory() as tmp:
        cat = write_catalogue(Path(tmp) / "cat", a.n, 128)
        fn, mult = build_predict_model(a.model, a.width, 6)
        import numpy as np
        fn(np.zeros((a.batch, 128, 128, 3), np.float32))  # trace outside the timing
        t = time.perf_counter()
        predict_manifest(lambda: (fn, mult), cat, Path(tmp) / "out", batch_size=a.batch,
                         progress=False)
        rate = a.n / (time.perf_counter() - t)
    dev = "GPU" if info["gpus"] else "CPU"
    res["img_s"], res["device"] = rate, dev
    res["gpu_img_s"] = rate if info["gpus"] else NO_GPU
    print(f"{a.model} predict, 128 px, width {a.width}, batch {a.batch}, {a.n} rows on "
          f"{dev}: {rate:.1f} img/s (decode + model + PNG + record)")
    mem = []
    for rows in rows_list:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
                   "CUDA_VISIBLE_DEVICES": ""}
            out = subprocess.run([sys.executable, __file__, "--model", a.model,
                                  "--_memory-worker", str(rows), tmp], env=env,
                                 capture_output=True, text=True)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MEM ")),
                        None)
            if line is None:
                print(out.stderr[-2000:])
                raise SystemExit("memory worker failed")
            m = json.loads(line[4:])
            m["growth_mb"] = m["peak_mb"] - m["before_mb"]
            mem.append(m)
            print(f"{rows:>7} rows: RSS before {m['before_mb']:.0f} MB, peak "
                  f"{m['peak_mb']:.0f} MB, growth {m['growth_mb']:.1f} MB, "
                  f"{rows / m['seconds']:.0f} rows/s")
    res["memory"] = mem
    ratio = mem[-1]["growth_mb"] / max(mem[0]["growth_mb"], 1e-6)
    res["memory_ratio"] = ratio
    res["rows_ratio"] = mem[-1]["rows"] / mem[0]["rows"]
    print(f"growth ratio {ratio:.2f} for {res['rows_ratio']:.0f}x the rows")
    emit(res)
    closing("bench_predict")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
