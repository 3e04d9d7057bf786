"""First numbers on a GPU: one prepared check of training and inference speed on whatever
device it finds, written to one Markdown and one JSON file.

    python benchmarks/gpu_check.py [--out results/gpu_check] [--budget 360] [--quick]

Reads nothing from the network and no dataset (inputs are seeded random tensors; speed
does not depend on the pixels). At the paper's sizes (Pix2WGANConfig defaults: width 64,
batch 32, 128^2 images, n_critic 3; NoiseGANConfig defaults for the noise GAN) it
measures, most wanted first (one that fails is recorded with its error line and the
check goes on; a spent ``--budget`` skips the tail):

1. the device's dense-matmul peak in float32, float16 and bfloat16 (a timed loop of
   large ``tf.matmul``, benchlib.matmul_peak);
2. Pix2WGAN's training step in float32, mixed_float16 and mixed_bfloat16, without XLA:
   50 steps each from the same initial weights on the same batch; the median of the last
   20 steps gives images/s, the 50 steps' losses the precision check below;
3. Pix2WGAN in mixed_float16 with XLA (``jit_compile``), the target's configuration:
   3 warm-up steps (the first compiles), then 20 timed;
4. predict images/s (generator forward + copy to the host) at batch 64 and 256 in
   float32 and mixed_float16, Pix2WGAN and the cascade; and the whole sharded
   ``predict --manifest`` path (JPEG decode, model, PNG encode, record) for Pix2WGAN;
5. one noise GAN (Lin et al.) step-1 and step-2 iteration at the paper's width and batch;
6. the cascade's step, as 2.;
7. the other XLA configurations: Pix2WGAN float32 and mixed_bfloat16, then the cascade's
   three.

Images/s counts the images a step consumes (n_critic x batch; the cascade's triplets once
per galaxy). Each step's share of the matmul peak of its dtype uses an analytic FLOP
estimate (benchlib.train_step_flops: the conv layers' forward FLOPs per image from their
shapes, times the passes of one step; normalisation, activations and optimizer updates
left out, so the share is a slight underestimate). The projected paper run is 500 epochs
of 15,000 training images at the measured rate, next to the paper's 7.3 h (Pix2WGAN) and
13.2 h (cascade) on one RTX 3090 and our target (a Pix2WGAN paper-preset epoch <= 4 s on
one H200-class GPU; predict >= 200 images/s). Peak device memory per measurement comes
from ``tf.config.experimental.get_memory_info`` (GPU only).

Precision check (fp16 finite; float32, fp16 and bf16 agree): benchmarks/gpu_measure.py.

Measurements start only while fewer than ``--budget`` seconds have passed (one started
late may run past it); those not started are recorded as skipped. Without a GPU the
paper-size check would take hours: it runs with ``--allow-cpu`` only. ``--quick`` runs
everything at tiny size (width 2, batch 2, 32^2 images, depth 2, n_critic 1; noise GAN
width 4, one band, batches of 2) as a smoke check of this script on a CPU (XLA compiled for
Pix2WGAN float32 only: one CPU compile of a step takes 15-50 s on 2 cores); its figures
are not performance figures.

Layout: this script runs the measurements in order (``check_all``); they live in
benchmarks/gpu_measure.py, the reports in benchmarks/gpu_report.py. The knobs
``AGREE_STEPS``, ``FULL`` and ``QUICK`` stay module constants here: tests/test_gpu_check.py
sets them on this module before ``main``.
"""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

from benchmarks.benchlib import cpu_model, gpus, machine_info, status_mb
from benchmarks.gpu_measure import (EPOCH_IMAGES, MATMUL_DTYPE, NO_MEMORY,
                                    NOISE_GAN_ITERATIONS, PAPER_EPOCHS, PRECISIONS,
                                    SIZE_KEYS, Check, agreement, matmul_measurement,
                                    model_config, na, noise_gan_measurement,
                                    predict_manifest_measurement, predict_model_measurement,
                                    train_measurement)
from benchmarks.gpu_report import (FLOPS_METHOD, JSON_NAME, MD_NAME, MODELS, TARGET_EPOCH_S,
                                   TARGET_PREDICT_IMG_S, jsonable, markdown, projection, say,
                                   summary_lines, train_line)

from common.cli import Parser, add_verbose, positive_int

DEFAULT_OUT = "results/gpu_check"
CONFIGS = PRECISIONS + tuple(p + "+xla" for p in PRECISIONS)
NOISE_KEYS = ("width", "batch_unpaired", "batch_paired", "sdss_size", "cfht_size", "bands")
#: Steps of each non-XLA training run: the precision check's length (gpu_measure.agreement).
AGREE_STEPS = 50

#: Sizes and step counts of the two modes.
FULL = dict(timed_steps=20, xla_warmup=3, noise_timed=5, predict_timed=10,
            predict_rows=1024, matmul_n_gpu=8192, matmul_n_cpu=1024, matmul_s=2.0)
QUICK = dict(width=2, batch_size=2, image_size=32, depth=2, n_critic=1,
             timed_steps=10, xla_warmup=1, noise_timed=2, predict_timed=3,
             predict_rows=16, matmul_n_cpu=256, matmul_s=0.3,
             noise=dict(width=4, sdss_size=8, cfht_size=24, bands=1, batch_unpaired=2,
                        batch_paired=2))
QUICK_XLA = ("pix2wgan", "float32")  # the one XLA configuration --quick compiles


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/gpu_check.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help=f"folder for {MD_NAME} and {JSON_NAME}")
    ap.add_argument("--budget", type=positive_int, default=360,
                    help="seconds after which no new measurement starts (those left are "
                         "recorded as skipped)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny networks and few steps: a smoke check of this script on a "
                         "CPU (about a minute on 2 cores), not performance figures")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run the paper-size check without a GPU (hours on a CPU)")
    add_verbose(ap)
    a = ap.parse_args(argv)
    a.t0 = time.perf_counter()  # the budget counts from here, TensorFlow's start-up included
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


def run(a) -> dict:
    """The whole check (``a``: parsed arguments); returns the JSON's content."""
    import tensorflow as tf
    level = tf.get_logger().level
    if not a.verbose:  # e.g. retracing notices: this check builds many functions on purpose
        tf.get_logger().setLevel("ERROR")
    try:
        return check_all(a)
    finally:
        tf.get_logger().setLevel(level)


def check_all(a) -> dict:
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a folder")
    import keras
    import tensorflow as tf
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if not has_gpu and not a.quick and not a.allow_cpu:
        raise ValueError("no GPU visible: the paper-size check takes hours on a CPU; "
                         "pass --quick for the tiny smoke check, or --allow-cpu to run it "
                         "anyway")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    check = Check(a.budget, has_gpu, getattr(a, "t0", None))
    mode = QUICK if a.quick else FULL
    res = header(a, has_gpu, mode)
    sizes = {k: res["settings"][k] for k in SIZE_KEYS}
    print(f"gpu_check ({res['mode']}): {res['device']['kind']} {res['device']['name']}; "
          f"TensorFlow {res['machine']['tensorflow']}; {sizes['image_size']}px, batch "
          f"{sizes['batch_size']}, width {sizes['width']}, n_critic {sizes['n_critic']}; "
          f"budget {a.budget} s", flush=True)

    n_mm = mode["matmul_n_gpu"] if has_gpu else mode["matmul_n_cpu"]
    peaks = res["matmul_peak"] = {}
    for p in PRECISIONS:
        dt = MATMUL_DTYPE[p]
        peaks[dt] = check.measure(f"matmul {dt}", lambda: matmul_measurement(
            dt, n_mm, mode["matmul_s"]))
        say(f"matmul peak {dt}", peaks[dt], lambda r: f"{r['tflop_s']:.3f} TFLOP/s "
                                                       f"({r['n']}^2)")

    train = res["train"] = {k: {"configs": {}} for k in MODELS}
    starts = {k: {} for k in MODELS}  # each model's float32 start, shared by its precisions

    def train_runs(kind, xla, precisions):
        for p in precisions:
            key = p + ("+xla" if xla else "")
            skip = None
            if xla and a.quick and (kind, p) != QUICK_XLA:
                skip = ("--quick compiles XLA for Pix2WGAN float32 only (a CPU compile of "
                        "the step takes 15-50 s on 2 cores); the full run compiles all six")
            cfg = model_config(kind, sizes, p, xla)
            steps = (mode["xla_warmup"] + mode["timed_steps"]) if xla else AGREE_STEPS
            rec = check.measure(f"{kind} {key}", lambda: train_measurement(
                kind, cfg, steps, mode["timed_steps"], peaks,
                None if xla else starts[kind], check.reset_memory), skip)
            train[kind]["configs"][key] = rec
            say(f"{kind} {key}", rec, train_line)

    # Most wanted first: a spent --budget skips the tail (XLA beyond the target config).
    train_runs("pix2wgan", False, PRECISIONS)
    train_runs("pix2wgan", True, ("fp16",))  # the paper-preset target's configuration
    res["predict"] = predict_runs(check, sizes, mode)
    res["noise_gan"] = noise_gan_runs(check, mode)
    train_runs("cascade", False, PRECISIONS)
    train_runs("pix2wgan", True, ("float32", "bf16"))
    train_runs("cascade", True, ("fp16", "float32", "bf16"))

    for kind in MODELS:
        cfgs = train[kind]["configs"] = {k: train[kind]["configs"][k] for k in CONFIGS}
        ag = train[kind]["precision_agreement"] = agreement(cfgs)
        for rec in cfgs.values():
            rec.pop("history", None)  # kept in precision_agreement.losses_per_step
        say(f"{kind} precision check", ag, lambda r: (
            f"fp16 finite: {r['fp16_finite']} (non-finite steps {r['fp16_nonfinite_steps']}"
            f"); float32/fp16/bf16 agree after {r['steps']} steps: {r['agree']}"))
    res["projection"] = projection(res, has_gpu, a.quick)
    res["peak_device_memory"] = (
        {"available": True, "bytes": max(check.memory.values()),
         "gb": max(check.memory.values()) / 1e9,
         "measurement": max(check.memory, key=check.memory.get)}
        if check.memory else na(NO_MEMORY if not has_gpu else "no measurement recorded it"))
    res["host_peak_rss_mb"] = status_mb("VmHWM")
    res["errors"] = check.errors
    res["wall_s"] = check.elapsed()
    md, js = out / MD_NAME, out / JSON_NAME
    from common.io import atomic_write_text
    atomic_write_text(js, json.dumps(jsonable(res), indent=1, allow_nan=False) + "\n")
    atomic_write_text(md, markdown(res))
    for line in summary_lines(res):
        print(line)
    print(f"gpu_check: wrote {md} and {js}")
    return res


def header(a, has_gpu: bool, mode: dict) -> dict:
    """The JSON's description of the run: machine, device, sizes, the paper's figures
    and our targets."""
    import tensorflow as tf

    from common.paper import TRAIN_HOURS
    from common.training import cpu_has_bf16
    from noise_gan.config import NoiseGANConfig
    from pix2wgan.config import Pix2WGANConfig
    paper_cfg = Pix2WGANConfig()
    sizes = {k: mode.get(k, getattr(paper_cfg, k)) for k in SIZE_KEYS}
    ncfg = NoiseGANConfig(**mode.get("noise", {}))
    return {
        "tool": "benchmarks/gpu_check.py", "schema": 1,
        "mode": "quick" if a.quick else "full",
        "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "device": {"kind": "GPU" if has_gpu else "CPU",
                   "name": gpus()[0] if has_gpu else cpu_model(),
                   "cpu_bf16_units": cpu_has_bf16(),
                   "tf32": ({"available": True, "enabled": bool(
                       tf.config.experimental.tensor_float_32_execution_enabled())}
                       if has_gpu else na("TF32 is a GPU (Ampere and later) mode"))},
        "settings": {**sizes, "paper_sizes": not a.quick, "agreement_steps": AGREE_STEPS,
                     "timed_steps": mode["timed_steps"],
                     "xla_warmup_steps": mode["xla_warmup"], "budget_s": a.budget,
                     "seed": 0, "noise_gan": {k: getattr(ncfg, k) for k in NOISE_KEYS}},
        "paper": {"source": "Luo et al. §4.2-4.3 (common.paper.TRAIN_HOURS): one RTX 3090",
                  "epoch_images": EPOCH_IMAGES, "epochs": PAPER_EPOCHS,
                  **{f"{k}_500_epochs_h": h for k, h in TRAIN_HOURS.items()},
                  **{f"{k}_img_s": PAPER_EPOCHS * EPOCH_IMAGES / (h * 3600)
                     for k, h in TRAIN_HOURS.items()}},
        "targets": {"source": "ours (issue 7), for one H200-class GPU",
                    "pix2wgan_epoch_s": TARGET_EPOCH_S,
                    "pix2wgan_img_s": EPOCH_IMAGES / TARGET_EPOCH_S,
                    "predict_img_s": TARGET_PREDICT_IMG_S},
        "flops_method": FLOPS_METHOD,
    }


def predict_runs(check: Check, sizes: dict, mode: dict) -> dict:
    pred = {"model": {k: {} for k in MODELS}, "manifest": {}}
    for kind in MODELS:
        for p in ("float32", "fp16"):
            for b in (64, 256):
                key = f"{p}_b{b}"
                rec = check.measure(f"predict {kind} {key}", lambda: predict_model_measurement(
                    kind, sizes["width"], sizes["depth"], sizes["image_size"], b, p,
                    mode["predict_timed"]))
                pred["model"][kind][key] = rec
                say(f"predict {kind} {key}", rec, lambda r: f"{r['img_s']:.1f} img/s")
    for b in (64, 256):
        key = f"float32_b{b}"
        rec = check.measure(f"predict --manifest {key}", lambda: predict_manifest_measurement(
            sizes["width"], sizes["depth"], sizes["image_size"], b, mode["predict_rows"]))
        pred["manifest"][key] = rec
        say(f"predict --manifest pix2wgan {key}", rec,
             lambda r: f"{r['img_s']:.1f} img/s over {r['rows']} rows")
    return pred


def noise_gan_runs(check: Check, mode: dict) -> dict:
    out = {}
    for step in ("1", "2"):
        rec = check.measure(f"noise_gan step {step}", lambda: noise_gan_measurement(
            step, mode.get("noise", {}), mode["noise_timed"]))
        out[f"step{step}"] = rec
        say(f"noise_gan step {step}", rec, lambda r: (
            f"{r['iteration_s']:.3f} s/iteration ({r['images_per_iteration']} images), "
            f"{NOISE_GAN_ITERATIONS} iterations = {r['projected_paper_step_h']:.2f} h"))
    return out



if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
