"""Training-step throughput of Pix2WGAN (or the cascade) against a plain keras-io-style
reference (benchmarks/reference_wgan.py), achieved FLOP/s against the machine's
dense-matmul peak, our step in mixed_bfloat16 against float32, and the data pipeline
against what training consumes.

    python benchmarks/bench_train.py [--model pix2wgan|cascade] [--batch 32]
        [--width 64] [--size 128] [--steps 3] [--quick] [--no-xla] [--no-bf16]
        [--data DIR]

All figures come from one process, so ratios (ours / reference, achieved / peak, data /
training) are measured under the same conditions even on a busy machine; absolute
numbers on a shared machine are noisy. Each network pair (ours, reference) has the same
architecture and the same initial weights; timings are interleaved (ours, reference,
ours, ...) and the median is reported. Images/s counts the images one step consumes
(``n_critic x batch``, x3 surveys for the cascade counted once per galaxy).

FLOPs of our step: counted by the TF1 profiler over the traced graph (convolutions,
their backprops, element-wise ops), and analytically from the conv shapes (printed):
per critic batch of B, ``B (F_G + 12 F_D)`` for a critic update (G forward; D forward +
backward on real and fake = 3 + 3; gradient penalty = forward, input gradient, and their
differentiation = 6) and ``B (2 F_G + 2 F_D)`` for the generator update (G backward; D
forward + input gradient), the last critic batch's G forward shared with it (ours) —
i.e. ``B (5 F_G + 38 F_D)`` per Pix2WGAN step with n_critic = 3, where F_G, F_D are
forward FLOPs per image.

GPU figure: the paper preset (batch 32, fp16 mixed precision) epoch of 15,000 images on
this machine's GPU; printed as "not measured" without a GPU (never estimated).
"""
from __future__ import annotations

import statistics
import time

from benchmarks.benchlib import (NO_GPU, closing, emit, existing_dir, graph_flops,
                                 matmul_peak, print_machine)
from benchmarks.setups import train_setup

from common.cli import Parser, add_verbose, positive_int

EPOCH_IMAGES = 15_000


def _fmt_s(value) -> str:
    return value if isinstance(value, str) else f"{value:.1f} s"


def time_pair(ours, ref, data, steps):
    """Trace both, then ``steps`` interleaved timings each; medians in seconds."""
    def run_ours():
        out = ours(data)
        float(next(iter(out.values())))  # waits for the step

    def run_ref():
        d, g = ref(*data)
        float(g)
    t = time.perf_counter()
    run_ours()
    trace_ours = time.perf_counter() - t
    t = time.perf_counter()
    run_ref()
    trace_ref = time.perf_counter() - t
    a, b = [], []
    for _ in range(steps):
        t = time.perf_counter()
        run_ours()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_ref()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b), trace_ours, trace_ref


def time_precisions(kind, cfg, steps, precision="bf16"):
    """Median seconds per step of our step in float32 and in ``precision``, the two
    interleaved in one process (same shapes, same data): ``(t_float32, t_other)``."""
    import dataclasses

    import keras
    try:
        runs = [train_setup(kind, dataclasses.replace(cfg, precision=p))[0:3:2]
                for p in ("float32", precision)]  # (step, data) each
    finally:
        keras.mixed_precision.set_global_policy("float32")
    times = [[], []]
    for i in range(steps + 1):  # the first call of each traces
        for k, (step, data) in enumerate(runs):
            t = time.perf_counter()
            float(next(iter(step(data).values())))
            if i:
                times[k].append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def pipeline_rate(kind, cfg, root, seconds):
    """Training-pipeline images/s (pairs, or triplets for the cascade) over ~seconds,
    after its first batch (start-up, validation stamp) is excluded."""
    from data import pipeline
    n = cfg.n_critic * cfg.batch_size
    if kind == "pix2wgan":
        ds = pipeline.make_dataset(root, "train", cfg.source, cfg.target, n,
                                   training=True, seed=0, image_size=cfg.image_size,
                                   progress=False)
    else:
        from cascade.data import make_triplets
        ds, _ = make_triplets(root, "train", cfg.source, cfg.bridge, cfg.target, n,
                              training=True, seed=0, image_size=cfg.image_size,
                              progress=False)
    ds = ds.repeat()
    it = iter(ds)
    next(it)
    count, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        next(it)
        count += n
    return count / (time.perf_counter() - t)


def gpu_epoch(kind, cfg, steps):
    """Seconds per 15,000-image epoch at the paper preset with fp16 on the GPU, or the
    NO_GPU string."""
    import dataclasses

    import keras
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        return NO_GPU
    paper = dataclasses.replace(cfg, width=64, batch_size=32, image_size=128,
                                precision="fp16", jit_compile=True)
    try:
        ours, _, data, n, *_ = train_setup(kind, paper)
        ours(data)
        t = time.perf_counter()
        for _ in range(steps):
            out = ours(data)
        float(next(iter(out.values())))
        return EPOCH_IMAGES / (n * steps / (time.perf_counter() - t))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/bench_train.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("pix2wgan", "cascade"), default="pix2wgan",
                    help="the model whose training step is timed")
    ap.add_argument("--batch", type=positive_int, default=32, help="batch size")
    ap.add_argument("--width", type=positive_int, default=64, help="generator width")
    ap.add_argument("--size", type=positive_int, default=128, help="image side in px")
    ap.add_argument("--n-critic", type=positive_int, default=3,
                    help="critic batches per step")
    ap.add_argument("--steps", type=positive_int, default=3, help="timed steps")
    ap.add_argument("--no-xla", action="store_true", help="skip the XLA variant")
    ap.add_argument("--no-bf16", action="store_true",
                    help="skip the mixed_bfloat16 / float32 step ratio")
    ap.add_argument("--data", default=None, help="dataset for the pipeline figure "
                                                 "(default: the simulated default set)")
    ap.add_argument("--data-seconds", type=float, default=10.0,
                    help="seconds the data pipeline is timed")
    ap.add_argument("--quick", action="store_true",
                    help="pix2wgan: width 16, batch 8; cascade: width 8, batch 4, no XLA; "
                         "2 timed steps: a short run on a CPU")
    add_verbose(ap)
    a = ap.parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


def run(a) -> None:
    if a.data:
        existing_dir(a.data)
    if not a.data_seconds > 0:
        raise ValueError(f"--data-seconds must be > 0, got {a.data_seconds}")
    if a.quick:
        a.width, a.batch, a.steps, a.data_seconds = 16, 8, 2, 5.0
        if a.model == "cascade":
            a.width, a.batch, a.no_xla = 8, 4, True
    info = print_machine()
    import dataclasses

    import tensorflow as tf
    if a.model == "pix2wgan":
        from pix2wgan.config import Pix2WGANConfig as Cfg
    else:
        from cascade.config import CascadeConfig as Cfg
    cfg = Cfg(width=a.width, batch_size=a.batch, image_size=a.size, n_critic=a.n_critic)
    print(f"{a.model}: {a.size}x{a.size}, batch {a.batch}, width {a.width}, n_critic "
          f"{a.n_critic} ({a.n_critic * a.batch} images per step), float32")

    peak = matmul_peak()
    print(f"dense matmul peak (2048^2 float32, tf.matmul loop): {peak / 1e9:.1f} GFLOP/s")
    ours, ref, data, n, f_g, f_d, _ = train_setup(a.model, cfg)
    t_ours, t_ref, tr_o, tr_r = time_pair(ours, ref, data, a.steps)
    conc = ours.get_concrete_function(data)
    counted = graph_flops(conc)
    stages = 1 if a.model == "pix2wgan" else 2
    # cascade: + the stage-2 bridge G1 forward on every critic batch
    analytic = stages * a.batch * (5 * f_g + 38 * f_d) + (
        a.n_critic * a.batch * f_g if stages == 2 else 0)
    ours_ips, ref_ips = n / t_ours, n / t_ref
    print(f"F_G = {f_g / 1e9:.3f} GFLOP, F_D = {f_d / 1e9:.3f} GFLOP forward per image "
          f"(conv shapes)")
    print(f"step FLOPs: {analytic / 1e9:.1f} G analytic, "
          f"{(counted or float('nan')) / 1e9:.1f} G counted by the TF profiler")
    print(f"ours     : {t_ours:.2f} s/step = {ours_ips:.2f} img/s (trace+first {tr_o:.1f} s)")
    print(f"reference: {t_ref:.2f} s/step = {ref_ips:.2f} img/s (trace+first {tr_r:.1f} s)")
    # The peak fraction uses the analytic conv FLOPs (the useful work; the profiler's
    # count adds element-wise and optimizer ops), so it is the conservative figure.
    achieved = analytic / t_ours
    print(f"ours / reference = {ours_ips / ref_ips:.2f}x; achieved {achieved / 1e9:.1f} "
          f"GFLOP/s (analytic) = {100 * achieved / peak:.1f} % of the matmul peak"
          + (f" ({100 * counted / t_ours / peak:.1f} % with the profiler's count)"
             if counted else ""))
    res = {"bench": f"train_{a.model}", "machine": info, "args": vars(a),
           "images_per_step": n, "ours_img_s": ours_ips, "ref_img_s": ref_ips,
           "speedup": ours_ips / ref_ips, "flops_step_counted": counted,
           "flops_step_analytic": analytic, "achieved_flops": achieved,
           "matmul_peak": peak, "peak_fraction": achieved / peak,
           "cpu_epoch_s": EPOCH_IMAGES / ours_ips}
    if not a.no_xla:
        xcfg = dataclasses.replace(cfg, jit_compile=True)
        try:
            ours_x, ref_x, data_x, *_ = train_setup(a.model, xcfg)
            t_x, t_r2, tr_x, _ = time_pair(ours_x, ref_x, data_x, a.steps)
            res["xla_img_s"], res["xla_speedup"] = n / t_x, t_r2 / t_x
            print(f"ours+XLA : {t_x:.2f} s/step = {n / t_x:.2f} img/s, "
                  f"{t_r2 / t_x:.2f}x the reference timed beside it (compile {tr_x:.1f} s)")
        except Exception as err:  # XLA support varies by build
            res["xla_img_s"] = None
            print(f"ours+XLA : failed ({type(err).__name__}: {str(err)[:200]})")
    if not a.no_bf16:
        from common.training import cpu_has_bf16
        t32, t16 = time_precisions(a.model, cfg, a.steps)
        res["bf16_speedup"], res["cpu_bf16"] = t32 / t16, cpu_has_bf16()
        print(f"ours, mixed_bfloat16: {t16:.2f} s/step vs {t32:.2f} float32 timed beside "
              f"it = {t32 / t16:.2f}x (CPU bf16 units: "
              f"{'yes' if res['cpu_bf16'] else 'no'})")
    best = max(ours_ips, res.get("xla_img_s") or 0)
    root = a.data
    if root is None:
        from data.sim_luo import ensure_simulated
        root = ensure_simulated()
    rate = pipeline_rate(a.model, cfg, root, a.data_seconds)
    res["data_img_s"], res["data_ratio"] = rate, rate / best
    print(f"data pipeline ({root}): {rate:.0f} img/s = {rate / best:.1f}x what the "
          f"fastest step consumes ({best:.2f} img/s)")
    res["gpu_epoch_s"] = gpu_epoch(a.model, cfg, max(3, a.steps))
    print(f"paper-preset epoch of {EPOCH_IMAGES} images on GPU (fp16, XLA): "
          f"{_fmt_s(res['gpu_epoch_s'])}")
    print(f"(CPU, this configuration: {res['cpu_epoch_s']:.0f} s per {EPOCH_IMAGES} images)")
    emit(res)
    closing("bench_train")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
