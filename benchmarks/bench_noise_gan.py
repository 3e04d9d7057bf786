"""Training-step throughput of the Lin et al. noise GAN (noise_gan/, steps 1 and 2)
against its data pipeline, in one process.

    python benchmarks/bench_noise_gan.py [--steps 3] [--quick] [--data DIR]

Needs the simulated Lin set (``datasets/sim-lin``, made by the noise_gan trainer or
``python -m data.simulate``); without it nothing is measured (it is not simulated here).
Images/s counts every image of a step's batch (unpaired SDSS + CFHT, plus pairs).
No reference implementation is timed for this model (next work).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.benchlib import closing, emit, existing_dir, print_machine

from common.cli import Parser, add_verbose, positive_int


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/bench_noise_gan.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=positive_int, default=3,
                    help="timed calls of each training step")
    ap.add_argument("--data", default=None,
                    help="Lin et al. FITS root (default: the simulated datasets/sim-lin; "
                         "without it nothing is measured)")
    ap.add_argument("--quick", action="store_true", help="batches of 4, 2 timed steps")
    add_verbose(ap)
    a = ap.parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


def run(a) -> None:
    if a.data:
        existing_dir(a.data)
    info = print_machine()
    import tensorflow as tf

    from data.layout import LIN_MANIFEST
    from data.sim_lin import LinSimConfig
    from noise_gan.config import NoiseGANConfig
    from noise_gan.trainer import build_step, make_dataset
    root = Path(a.data) if a.data else LinSimConfig().out
    res = {"bench": "noise_gan", "machine": info, "args": vars(a)}
    if not (root / LIN_MANIFEST).is_file():
        print(f"not measured: no Lin dataset at {root}")
        res["skipped"] = f"no Lin dataset at {root}"
        emit(res)
        return closing("bench_noise_gan")
    kw = dict(batch_unpaired=4, batch_paired=4) if a.quick else {}
    steps = 2 if a.quick else a.steps
    cfg = NoiseGANConfig(data=str(root), **kw)
    ds = make_dataset(cfg, root, seed=0)
    it = iter(ds.repeat())
    batch = next(it)
    n = sum(int(v.shape[0]) for v in tf.nest.flatten(batch) if hasattr(v, "shape")
            and len(v.shape) == 4)
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < (3 if a.quick else 10):
        next(it)
        k += 1
    data_rate = k * n / (time.perf_counter() - t)
    print(f"data pipeline: {data_rate:.0f} img/s ({n} images per step)")
    for step in ("1", "2"):
        model = build_step(cfg, step)
        fn = tf.function(model.train_step)
        t = time.perf_counter()
        out = fn(batch)
        tf.nest.map_structure(lambda v: v.numpy(), out)
        trace = time.perf_counter() - t
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            out = fn(batch)
            tf.nest.map_structure(lambda v: v.numpy(), out)
            times.append(time.perf_counter() - t)
        rate = n / statistics.median(times)
        res[f"step{step}_img_s"] = rate
        res[f"step{step}_data_ratio"] = data_rate / rate
        print(f"step {step}: {statistics.median(times):.2f} s/step = {rate:.1f} img/s "
              f"(trace+first {trace:.1f} s); data pipeline = {data_rate / rate:.1f}x")
    res["data_img_s"] = data_rate
    emit(res)
    closing("bench_noise_gan")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
