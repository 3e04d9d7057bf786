"""Peak memory and throughput of data.pipeline.make_dataset, files vs TFRecord shards.

    python benchmarks/bench_pipeline_memory.py [--sizes 1000,10000] [--batch 32]
        [--pool 300] [--size 128] [--shard-mb 150] [--tmp DIR]

For each N, one temporary dataset of N training galaxies is made (SDSS and HSC JPEGs
only, the pair read here). Its JPEGs are copies drawn from a pool of ``--pool``
distinct, randomly generated, galaxy-like 128x128 quality-90 JPEGs (generating N
distinct images would dominate the run; decoding cost does not depend on which image it
is). The same set is then packed with ``data.shard.write_shards``.

Each (layout, N) case runs in a fresh Python process: import TensorFlow, note the
resident memory (VmRSS), build ``make_dataset(..., training=True, seed=0,
validate=False)`` (shuffle + augmentation, the training path; validation is skipped so
only streaming is measured), iterate full epochs, and read the peak resident memory
(VmHWM). "growth" = peak - RSS before building the dataset, read after epoch 1 and after
equal work: every case runs ceil(2 max(N) / N) epochs, so all cases process the same
number of pairs. That second figure is the fair one: tf.data's autotuner enlarges its
prefetch buffers (one 32-pair float32 batch is 12.6 MB) the longer a pipeline runs, so
one epoch of a small set ends before they have grown. If the pipeline streams, growth
does not scale with N (ratio near 1, far below N's ratio). pairs/s: epoch 1 includes
tracing and start-up; "steady" averages the later epochs. A measurement, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from benchmarks.benchlib import closing, int_list, status_mb

from common.cli import Parser, add_verbose, positive_int

SURVEYS = ("sdss", "hsc")


def _pool(n: int, size: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct galaxy-like JPEGs (off-centre Gaussian blob + sky noise)."""
    import io

    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.03, 0.15) * size
        blob = rng.uniform(80, 220) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)
        img = (30 + blob)[..., None] * rng.uniform(0.6, 1.0, 3)
        img = np.clip(img + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def make_set(root: Path, n: int, pool: list[bytes], shard_mb: float) -> float:
    """Write an N-galaxy train split (files) and pack it; returns packing seconds."""
    import pandas as pd

    from data import shard
    from data.layout import image_path
    ids = [f"b{k:07d}" for k in range(n)]
    root.mkdir(parents=True)
    pd.DataFrame({"id": ids, "ra": 150.0, "dec": 2.0, "split": "train"}).to_csv(
        root / "manifest.csv", index=False)
    rng = np.random.default_rng(n)
    for s in SURVEYS:
        (root / "train" / s).mkdir(parents=True)
        for gid, k in zip(ids, rng.integers(0, len(pool), n)):
            image_path(root, "train", s, gid).write_bytes(pool[k])
    t = time.perf_counter()
    shard.write_shards(root, shard_mb=shard_mb, surveys=SURVEYS, splits=["train"],
                       progress=False)
    return time.perf_counter() - t


def run_case(layout: str, root: str, batch: int, size: int, epochs: int) -> dict:
    """Inside the child process: ``epochs`` epochs, memory and rates (module
    docstring)."""
    import tensorflow as tf

    from data import pipeline
    before = status_mb("VmRSS")
    ds = pipeline.make_dataset(root, "train", *SURVEYS, batch, training=True, seed=0,
                               validate=False, image_size=size, layout=layout,
                               progress=False)
    secs, peak1 = [], None
    for _ in range(epochs):
        t, n = time.perf_counter(), 0
        for x, _ in ds:
            n += int(x.shape[0])
        secs.append(time.perf_counter() - t)
        peak1 = peak1 or status_mb("VmHWM")
    peak = status_mb("VmHWM")
    return {"layout": layout, "pairs": n, "epochs": epochs, "rss_before": before,
            "growth1": peak1 - before, "peak": peak, "growth": peak - before,
            "rate1": n / secs[0], "rate2": n * (epochs - 1) / sum(secs[1:]),
            "tf": tf.__version__}


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/bench_pipeline_memory.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated N")
    ap.add_argument("--batch", type=positive_int, default=32, help="batch size")
    ap.add_argument("--pool", type=positive_int, default=300, help="distinct JPEGs")
    ap.add_argument("--size", type=positive_int, default=128, help="image side in px")
    ap.add_argument("--shard-mb", type=float, default=150.0, help="target shard size, MB")
    ap.add_argument("--tmp", type=Path, default=None,
                    help="scratch folder (default: the system's temporary folder)")
    ap.add_argument("--case", nargs=5, help=argparse.SUPPRESS)  # internal: LAYOUT ROOT
    add_verbose(ap)                                             # BATCH SIZE EPOCHS
    a = ap.parse_args(argv)
    if a.case:  # internal: one case, in a fresh process; its last line is the result
        print(json.dumps(run_case(a.case[0], a.case[1], *map(int, a.case[2:]))))
        return 0
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


def run(a) -> None:
    sizes = int_list(a.sizes, "--sizes", at_least=2 * a.batch)
    if len(sizes) < 2:
        raise ValueError(f"--sizes {a.sizes!r}: needs two or more N >= {2 * a.batch}")
    if not a.shard_mb > 0:
        raise ValueError(f"--shard-mb must be > 0, got {a.shard_mb}")
    if a.tmp is not None and not a.tmp.is_dir():
        raise FileNotFoundError(f"--tmp {a.tmp}: no such folder")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    mem = next((ln.split(":")[1].strip() for ln in Path("/proc/meminfo").read_text()
                .splitlines() if ln.startswith("MemTotal")), "?") \
        if Path("/proc/meminfo").exists() else "?"
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} CPUs, {mem} RAM, load avg {load}")
    print(f"python {platform.python_version()}, numpy {np.__version__}; batch {a.batch}, "
          f"{a.size}px, pool of {a.pool} distinct JPEGs, shards of {a.shard_mb} MB")
    pool = _pool(a.pool, a.size)
    print(f"mean JPEG size {np.mean([len(p) for p in pool]) / 1e3:.1f} kB")
    rows = []
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        for n in sizes:
            root = Path(tmp) / f"n{n}"
            secs = make_set(root, n, pool, a.shard_mb)
            nshards = len(list((root / "shards").glob("*.tfrecord")))
            print(f"N={n}: packed into {nshards} shard(s) in {secs:.1f} s "
                  f"({n / secs:.0f} galaxies/s, validation included)")
            for layout in ("files", "shards"):
                epochs = max(2, -(-2 * max(sizes) // n))
                cmd = [sys.executable, str(Path(__file__).resolve()), "--case", layout,
                       str(root), str(a.batch), str(a.size), str(epochs)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    raise SystemExit(f"error: case {layout} N={n} failed:\n"
                                     f"{res.stderr[-2000:]}")
                rows.append(dict(json.loads(res.stdout.strip().splitlines()[-1]), n=n))
    print(f"tensorflow {rows[0]['tf']}")
    print(f"{'layout':7} {'N':>7} {'epochs':>6} {'pairs/s ep1':>11} {'steady':>7} "
          f"{'RSS before':>10} {'growth ep1':>10} {'growth equal work':>17}  (MB)")
    for r in rows:
        print(f"{r['layout']:7} {r['n']:7d} {r['epochs']:6d} {r['rate1']:11.0f} "
              f"{r['rate2']:7.0f} {r['rss_before']:10.0f} {r['growth1']:10.0f} "
              f"{r['growth']:17.0f}")
    for layout in ("files", "shards"):
        g = {r["n"]: r for r in rows if r["layout"] == layout}
        lo, hi = min(g), max(g)
        print(f"{layout}: growth ratio N={hi} / N={lo} (N ratio {hi / lo:.0f}): "
              f"equal work {g[hi]['growth'] / max(g[lo]['growth'], 1e-9):.2f}, "
              f"one epoch {g[hi]['growth1'] / max(g[lo]['growth1'], 1e-9):.2f}")
    closing("bench_pipeline_memory", collected=False)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
