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

Precision check: the three precisions start from the same weights and seeds on the same
batch; fp16 is "finite" when none of the last 10 of the 50 steps has a non-finite loss
(dynamic loss scaling starts at 2^15 and skips the first steps whose scaled gradients
overflow, halving the scale: that is by design); the precisions "agree" when, for every
logged loss term, the mean over the last 10 steps differs from float32's by at most
``max(2 % of |float32 mean|, 3 x float32's step-to-step standard deviation)``
(RTOL, K_STD; why these: TOLERANCE_WHY, printed in the report).

Measurements start only while fewer than ``--budget`` seconds have passed (one started
late may run past it); those not started are recorded as skipped. Without a GPU the
paper-size check would take hours: it runs with ``--allow-cpu`` only. ``--quick`` runs
everything at tiny size (width 2, batch 2, 32^2 images, depth 2, n_critic 1; noise GAN
width 4, one band, batches of 2) as a smoke check of this script on a CPU (XLA compiled for
Pix2WGAN float32 only: one CPU compile of a step takes 15-50 s on 2 cores); its figures
are not performance figures.

Why one file: it is the one prepared script a device session runs, and its measurement
knobs (``AGREE_STEPS``, ``FULL``, ``QUICK``) are module constants that
tests/test_gpu_check.py sets on this module before ``main``; split along measurements
(Check .. noise_gan_measurement) and reports (``markdown``) those knobs would have to
travel as arguments first.
"""
from __future__ import annotations

import datetime
import gc
import json
import math
import statistics
import time
from pathlib import Path

from benchmarks.benchlib import cpu_model, gpus, machine_info, status_mb

from common.cli import Parser, add_verbose, positive_int

DEFAULT_OUT = "results/gpu_check"
MD_NAME, JSON_NAME = "gpu_check.md", "gpu_check.json"
EPOCH_IMAGES, PAPER_EPOCHS = 15_000, 500  # Luo et al. §2.4, §4.2
TARGET_EPOCH_S = 4.0        # ours (issue 7): Pix2WGAN paper-preset epoch, one H200-class GPU
TARGET_PREDICT_IMG_S = 200  # ours (issue 7): predict on one GPU
NOISE_GAN_ITERATIONS = 60_000  # Lin et al. §IV-B, per step
PRECISIONS = ("float32", "fp16", "bf16")
POLICY = {"float32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
MATMUL_DTYPE = {"float32": "float32", "fp16": "float16", "bf16": "bfloat16"}
MODELS = ("pix2wgan", "cascade")
CONFIGS = PRECISIONS + tuple(p + "+xla" for p in PRECISIONS)
SIZE_KEYS = ("width", "batch_size", "image_size", "depth", "n_critic")
NOISE_KEYS = ("width", "batch_unpaired", "batch_paired", "sdss_size", "cfht_size", "bands")
LABEL = {"pix2wgan": "Pix2WGAN", "cascade": "Cascade Pix2WGAN"}

#: The precision check (module docstring). The window is the last WINDOW of AGREE_STEPS
#: steps. RTOL: bf16 rounds to 2^-8 (0.4 %) and fp16 to 2^-11 per value; means over
#: thousands of pixels and 10 steps average that out, so a term 2 % off float32's is not
#: rounding. K_STD: the adversarial terms (critic scores, their difference, the penalty)
#: move by more from step to step than rounding moves them, and the runs drift apart
#: (dropout masks are drawn in the compute dtype; fp16 skips its first, overflowing
#: steps, so it is one to a few updates behind); a difference within 3 of float32's own
#: step-to-step standard deviations is indistinguishable from it at this length. Measured
#: on CPU: width 2, 32 px, n_critic 1 (--quick): every term within 2.5 standard deviations
#: (the largest: fp16's adversarial term, two skipped steps behind); width 8, 64 px,
#: n_critic 3, batch 4: within 0.35.
AGREE_STEPS, WINDOW, RTOL, K_STD = 50, 10, 0.02, 3.0

#: Sizes and step counts of the two modes.
FULL = dict(timed_steps=20, xla_warmup=3, noise_timed=5, predict_timed=10,
            predict_rows=1024, matmul_n_gpu=8192, matmul_n_cpu=1024, matmul_s=2.0)
QUICK = dict(width=2, batch_size=2, image_size=32, depth=2, n_critic=1,
             timed_steps=10, xla_warmup=1, noise_timed=2, predict_timed=3,
             predict_rows=16, matmul_n_cpu=256, matmul_s=0.3,
             noise=dict(width=4, sdss_size=8, cfht_size=24, bands=1, batch_unpaired=2,
                        batch_paired=2))
QUICK_XLA = ("pix2wgan", "float32")  # the one XLA configuration --quick compiles


def na(why: str) -> dict:
    """A figure that could not be measured in this run, and why."""
    return {"available": False, "why": why}


def error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _finite(values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _jsonable(obj):
    """Non-finite floats as strings ("nan", "inf"): the JSON stays strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# --- running measurements ----------------------------------------------------------------

class Check:
    """Runs measurements one by one within the time budget; records GPU peak memory of
    each and every failure as one line."""

    def __init__(self, budget_s: float, has_gpu: bool, t0: float | None = None):
        self.t0 = time.perf_counter() if t0 is None else t0
        self.budget, self.gpu = budget_s, has_gpu
        self.errors: list[str] = []
        self.memory: dict[str, int] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def measure(self, name: str, fn, skip: str | None = None) -> dict:
        """``fn()`` -> dict (its ``available`` set to True), or ``na`` with the reason:
        ``skip``, the spent budget, or the error ``fn`` raised."""
        import keras
        if skip:
            return na(skip)
        if self.elapsed() > self.budget:
            return na(f"skipped: the --budget of {self.budget:.0f} s was spent before "
                      f"this measurement started")
        self.reset_memory()
        t = time.perf_counter()
        try:
            out = {"available": True, **fn()}
        except Exception as err:  # one failing configuration is recorded, not fatal
            line = error_line(err)
            self.errors.append(f"{name}: {line}")
            print(f"{name}: failed ({line})", flush=True)
            return na(f"error: {line}")
        finally:
            keras.mixed_precision.set_global_policy("float32")
            gc.collect()
        out["peak_device_memory"] = self.peak_memory(name)
        out["wall_s"] = time.perf_counter() - t
        return out

    def reset_memory(self) -> None:
        if self.gpu:
            import tensorflow as tf
            try:
                tf.config.experimental.reset_memory_stats("GPU:0")
            except Exception:  # noqa: S110 (older drivers: then the peak is cumulative)
                pass

    def peak_memory(self, name: str) -> dict:
        if not self.gpu:
            return na(NO_MEMORY)
        import tensorflow as tf
        try:
            peak = int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        except Exception as err:
            return na(f"error: {error_line(err)}")
        self.memory[name] = peak
        return {"available": True, "bytes": peak, "gb": peak / 1e9}


NO_MEMORY = ("not available on CPU (tf.config.experimental.get_memory_info reports GPU "
             "memory only)")


def time_steps(step, data, steps: int, timed: int, before=None) -> dict:
    """Call ``step(data)`` ``steps`` times, each call waiting for its outputs (a dict of
    scalars, or a tensor); ``before()`` runs before each call, outside the timing. Returns
    the first call's seconds (trace/compile + run), the median of the last ``timed``
    calls, and each call's outputs as floats (dict outputs only)."""
    times, history = [], []
    for _ in range(steps):
        if before is not None:
            before()
        t = time.perf_counter()
        out = step(data)
        if isinstance(out, dict):
            history.append({k: float(v) for k, v in out.items()})
        else:
            out.numpy()
        times.append(time.perf_counter() - t)
    return {"first_call_s": times[0], "step_s": statistics.median(times[-timed:]),
            "timed_step_s": times[-timed:], "history": history}


# --- training steps ----------------------------------------------------------------------

def model_config(kind: str, sizes: dict, precision: str, xla: bool):
    if kind == "pix2wgan":
        from pix2wgan.config import Pix2WGANConfig as Cfg
    else:
        from cascade.config import CascadeConfig as Cfg
    return Cfg(**{k: sizes[k] for k in SIZE_KEYS}, precision=precision,
               jit_compile=xla, seed=0)


def train_measurement(kind, cfg, steps, timed, peaks, start_weights=None,
                      reset_memory=None):
    """One configuration's step (bench_train.setup builds it: networks, optimizers, the
    seeded batch, the conv FLOPs). ``start_weights`` (non-XLA runs): a dict that the
    float32 run fills with its initial weights; the other precisions start from them
    (recorded: already identical through the seed, or copied). ``reset_memory``: called
    once the model is built (the GPU peak then covers the steps)."""
    import keras

    from benchmarks.bench_train import setup
    from benchmarks.benchlib import train_step_flops
    step, ref, data, n, f_g, f_d, model = setup(kind, cfg)
    del ref  # the keras-io reference twin bench_train times: not needed here
    gc.collect()
    if reset_memory is not None:
        reset_memory()
    rec = {"precision": cfg.precision, "policy": POLICY[cfg.precision],
           "xla": cfg.jit_compile, "images_per_step": n}
    if start_weights is not None:
        rec["initial_weights"] = same_start(model, cfg.precision, start_weights)
    metrics = model.metrics  # reset before each step: its outputs are that step's losses
    run = time_steps(step, data, steps, timed,
                     before=lambda: [m.reset_state() for m in metrics])
    flops = train_step_flops(f_g, f_d, cfg.batch_size, cfg.n_critic,
                             1 if kind == "pix2wgan" else 2)
    img_s = n / run["step_s"]
    last = run["history"][-1]
    rec.update(step_s=run["step_s"], img_s=img_s, first_call_s=run["first_call_s"],
               timed_steps=len(run["timed_step_s"]), timed_step_s=run["timed_step_s"],
               steps_run=steps, flops_per_step=flops, achieved_flop_s=flops / run["step_s"],
               epoch_s=EPOCH_IMAGES / img_s,
               projected_500_epochs_h=PAPER_EPOCHS * EPOCH_IMAGES / img_s / 3600,
               last_losses=last, last_losses_finite=_finite(last.values()))
    if cfg.precision == "fp16":
        rec["loss_scale"] = {name: float(opt.dynamic_scale) for name, opt in
                             optimizers(model).items() if hasattr(opt, "dynamic_scale")}
    peak = peaks.get(MATMUL_DTYPE[cfg.precision], {})
    rec["matmul_peak_share"] = (
        {"available": True, "fraction": rec["achieved_flop_s"] / peak["flop_s"],
         "of": f"{MATMUL_DTYPE[cfg.precision]} matmul peak"}
        if peak.get("available") else na(f"no {MATMUL_DTYPE[cfg.precision]} matmul peak"))
    rec["history"] = run["history"]
    del step, model, data
    keras.backend.clear_session()
    return rec


def same_start(model, precision: str, start: dict) -> str:
    """Make ``model`` start from the float32 run's weights (``start["values"]``, filled
    by the float32 run itself); returns what was done."""
    import numpy as np
    if precision == "float32":
        start["values"] = [v.numpy() for v in model.weights]
        return "the common start (float32 model, seed 0)"
    if "values" not in start:
        return "own seeded start (the float32 run did not build)"
    values = start["values"]
    if len(values) != len(model.weights) or any(
            tuple(v.shape) != a.shape for v, a in zip(model.weights, values)):
        raise ValueError("the float32 model's weights do not match this model's")
    if all(np.array_equal(v.numpy(), a) for v, a in zip(model.weights, values)):
        return "identical to the float32 model's (same seed)"
    for v, a in zip(model.weights, values):
        v.assign(a)
    return "copied from the float32 model"


def optimizers(model) -> dict:
    """``{name: optimizer}`` of a Pix2WGAN (g, d) or cascade (g1, d1, g2, d2) model."""
    if hasattr(model, "stage1"):
        return {f"{n}{i}": getattr(stage, f"{n}_optimizer")
                for i, stage in ((1, model.stage1), (2, model.stage2)) for n in "gd"}
    return {n: getattr(model, f"{n}_optimizer") for n in "gd"}


def agreement(runs: dict) -> dict:
    """The precision check over the three precisions' non-XLA runs (module docstring)."""
    import numpy as np
    missing = [p for p in PRECISIONS if not runs.get(p, {}).get("available")]
    if missing:
        return na(f"{', '.join(missing)} run(s) not available")
    hist = {p: runs[p]["history"] for p in PRECISIONS}
    steps = len(hist["float32"])
    window = min(WINDOW, steps)
    rule = (f"for each loss term: |mean_p - mean_float32| <= max({RTOL} x |mean_float32|, "
            f"{K_STD:g} x std_float32), means and std over the last {window} of {steps} "
            f"steps (std: float32's step-to-step standard deviation, ddof 1)")
    terms, ok = {}, True
    for term in hist["float32"][-1]:
        ref = np.array([h[term] for h in hist["float32"][-window:]])
        m32, s32 = float(ref.mean()), float(ref.std(ddof=1)) if window > 1 else 0.0
        tol = max(RTOL * abs(m32), K_STD * s32)
        row = {"float32_mean": m32, "float32_std": s32, "tolerance": tol}
        for p in ("fp16", "bf16"):
            vals = [h[term] for h in hist[p][-window:]]
            mean = float(np.mean(vals)) if _finite(vals) else float("nan")
            diff = mean - m32
            row[f"{p}_mean"], row[f"{p}_diff"] = mean, diff
            row[f"{p}_agrees"] = bool(math.isfinite(diff) and abs(diff) <= tol)
            ok = ok and row[f"{p}_agrees"]
        terms[term] = row
    nonfinite = [i + 1 for i, h in enumerate(hist["fp16"]) if not _finite(h.values())]
    fp16_finite = not [i for i in nonfinite if i > steps - window]
    return {"available": True, "steps": steps, "window": window, "rtol": RTOL,
            "k_std": K_STD, "rule": rule, "tolerance_why": TOLERANCE_WHY,
            "terms": terms, "agree": bool(ok), "fp16_nonfinite_steps": nonfinite,
            "fp16_finite": bool(fp16_finite),
            "fp16_finite_rule": f"no non-finite loss in the last {window} steps (earlier "
                                f"ones are loss-scale overflows, skipped by the "
                                f"optimizer, which halves the scale)",
            "fp16_loss_scale_end": runs["fp16"].get("loss_scale"),
            "initial_weights": {p: runs[p].get("initial_weights") for p in PRECISIONS},
            "losses_per_step": {p: hist[p] for p in PRECISIONS}}


TOLERANCE_WHY = (
    f"{RTOL:.0%} relative: bf16 rounds each value to 2^-8 (0.4 %), fp16 to 2^-11, and "
    f"means over thousands of pixels and {WINDOW} steps average that out, so a systematic "
    f"2 % is not rounding. {K_STD:g} standard deviations: the adversarial terms move more "
    f"from step to step than rounding moves them, and the runs drift apart (dropout masks "
    f"drawn in the compute dtype; fp16 skips its first, overflowing steps), so a difference "
    f"inside float32's own step-to-step scatter cannot be told from it. Chosen on CPU "
    f"runs at small sizes (every term within 2.5 standard deviations at width 2, within "
    f"0.35 at width 8); the first GPU run tells whether the paper size needs more.")


# --- matmul peak, predict, noise GAN -------------------------------------------------------

def matmul_measurement(dtype: str, n: int, seconds: float) -> dict:
    from benchmarks.benchlib import matmul_peak
    flop_s = matmul_peak(n, seconds, dtype)
    return {"flop_s": flop_s, "tflop_s": flop_s / 1e12, "n": n, "dtype": dtype}


def predict_model_measurement(kind, width, depth, size, batch, precision, timed):
    import tensorflow as tf

    from benchmarks.bench_predict import _build
    from common.training import set_precision
    set_precision(precision)
    fn, _ = _build(kind, width, depth)
    x = tf.random.Generator.from_seed(1).uniform((batch, size, size, 3), -1, 1)
    run = time_steps(fn, x, 2 + timed, timed)
    return {"what": "generator forward + copy to host", "precision": precision,
            "batch": batch, "img_s": batch / run["step_s"], "step_s": run["step_s"],
            "first_call_s": run["first_call_s"]}


def predict_manifest_measurement(width, depth, size, batch, rows):
    import contextlib
    import io
    import tempfile

    import tensorflow as tf

    from benchmarks.bench_predict import _build, write_catalogue
    from pix2wgan.survey import predict_manifest
    with tempfile.TemporaryDirectory() as tmp:
        cat = write_catalogue(Path(tmp) / "cat", rows, size)
        fn, mult = _build("pix2wgan", width, depth)
        import numpy as np
        fn(np.zeros((min(batch, rows), size, size, 3), np.float32))  # trace, untimed
        level = tf.get_logger().level
        tf.get_logger().setLevel("ERROR")  # the last, smaller batch retraces: no warning
        try:
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # its own closing line
                predict_manifest(lambda: (fn, mult), cat, Path(tmp) / "out",
                                 batch_size=batch, progress=False)
            wall = time.perf_counter() - t
        finally:
            tf.get_logger().setLevel(level)
    return {"what": "predict --manifest: JPEG decode + model + PNG encode + shard record",
            "precision": "float32", "batch": batch, "rows": rows, "img_s": rows / wall,
            "seconds": wall}


def noise_gan_measurement(step: str, overrides: dict, timed: int) -> dict:
    import keras
    import tensorflow as tf

    from noise_gan.config import NoiseGANConfig
    from noise_gan.trainer import build_step
    cfg = NoiseGANConfig(**overrides).validate()
    rng = tf.random.Generator.from_seed(2)

    def img(n, s):
        return rng.normal((n, s, s, cfg.bands), 0.0, 0.5)
    batch = {"sdss": img(cfg.batch_unpaired, cfg.sdss_size),
             "cfht": img(cfg.batch_unpaired, cfg.cfht_size),
             "pair_sdss": img(cfg.batch_paired, cfg.sdss_size),
             "pair_cfht": img(cfg.batch_paired, cfg.cfht_size)}
    model = build_step(cfg, step)
    fn = tf.function(model.train_step)
    run = time_steps(fn, batch, 2 + timed, timed)
    n = 2 * cfg.batch_unpaired + 2 * cfg.batch_paired
    rec = {"iteration_s": run["step_s"], "first_call_s": run["first_call_s"],
           "images_per_iteration": n, "img_s": n / run["step_s"],
           "width": cfg.width, "batch_unpaired": cfg.batch_unpaired,
           "batch_paired": cfg.batch_paired, "sdss_size": cfg.sdss_size,
           "cfht_size": cfg.cfht_size, "bands": cfg.bands, "precision": cfg.precision,
           "projected_paper_step_h": NOISE_GAN_ITERATIONS * run["step_s"] / 3600,
           "last_losses_finite": _finite(run["history"][-1].values())}
    del model, fn
    keras.backend.clear_session()
    return rec


# --- the check ---------------------------------------------------------------------------

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
        _say(f"matmul peak {dt}", peaks[dt], lambda r: f"{r['tflop_s']:.3f} TFLOP/s "
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
            _say(f"{kind} {key}", rec, _train_line)

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
        _say(f"{kind} precision check", ag, lambda r: (
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
    atomic_write_text(js, json.dumps(_jsonable(res), indent=1, allow_nan=False) + "\n")
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
                _say(f"predict {kind} {key}", rec, lambda r: f"{r['img_s']:.1f} img/s")
    for b in (64, 256):
        key = f"float32_b{b}"
        rec = check.measure(f"predict --manifest {key}", lambda: predict_manifest_measurement(
            sizes["width"], sizes["depth"], sizes["image_size"], b, mode["predict_rows"]))
        pred["manifest"][key] = rec
        _say(f"predict --manifest pix2wgan {key}", rec,
             lambda r: f"{r['img_s']:.1f} img/s over {r['rows']} rows")
    return pred


def noise_gan_runs(check: Check, mode: dict) -> dict:
    out = {}
    for step in ("1", "2"):
        rec = check.measure(f"noise_gan step {step}", lambda: noise_gan_measurement(
            step, mode.get("noise", {}), mode["noise_timed"]))
        out[f"step{step}"] = rec
        _say(f"noise_gan step {step}", rec, lambda r: (
            f"{r['iteration_s']:.3f} s/iteration ({r['images_per_iteration']} images), "
            f"{NOISE_GAN_ITERATIONS} iterations = {r['projected_paper_step_h']:.2f} h"))
    return out


FLOPS_METHOD = (
    "analytic (benchlib.train_step_flops): forward FLOPs per image of the generator's and "
    "critic's conv layers from their shapes (benchlib.conv_forward_flops; 2 per "
    "multiply-add), times the passes of one step: B((n_c+2) F_G + (12 n_c+2) F_D) per "
    "stage, + the cascade's bridge n_c B F_G; normalisation, activations and optimizer "
    "updates left out, so the share of peak is a slight underestimate")


def _say(name: str, rec: dict, fmt) -> None:
    print(f"{name}: " + (fmt(rec) if rec.get("available") else f"not measured "
                                                                 f"({rec['why']})"),
          flush=True)


def _train_line(r: dict) -> str:
    share = r["matmul_peak_share"]
    mem = r.get("peak_device_memory", {})
    return (f"{r['img_s']:.1f} img/s ({r['step_s'] * 1e3:.1f} ms/step, first call "
            f"{r['first_call_s']:.1f} s); epoch {r['epoch_s']:.1f} s; "
            + (f"{100 * share['fraction']:.1f} % of the {share['of']}; "
               if share.get("available") else "")
            + (f"peak GPU memory {mem['gb']:.2f} GB; " if mem.get("available") else "")
            + f"losses finite: {r['last_losses_finite']}")


def projection(res: dict, has_gpu: bool, quick: bool) -> dict:
    """The projected 500-epoch run of each model at its fastest measured configuration,
    next to the paper's hours and (Pix2WGAN) our epoch target."""
    out = {}
    for kind in MODELS:
        cfgs = {k: v for k, v in res["train"][kind]["configs"].items() if v.get("available")}
        paper_h = res["paper"][f"{kind}_500_epochs_h"]
        if not cfgs:
            out[kind] = na("no training configuration was measured")
            continue
        best = max(cfgs, key=lambda k: cfgs[k]["img_s"])
        r = cfgs[best]
        rec = {"available": True, "best_config": best, "img_s": r["img_s"],
               "epoch_s": r["epoch_s"], "hours_500_epochs": r["projected_500_epochs_h"],
               "paper_hours_500_epochs": paper_h,
               "paper_img_s": res["paper"][f"{kind}_img_s"],
               "speedup_vs_paper": (na("--quick measures tiny networks: not comparable "
                                       "with the paper") if quick else
                                    paper_h / r["projected_500_epochs_h"])}
        if kind != "pix2wgan":
            rec["target"] = na("no target for the cascade")
        elif quick or not has_gpu:
            rec["target"] = na("the target is for the paper preset on an H200-class GPU; "
                               + ("--quick measures tiny networks" if quick else
                                  "this run had no GPU"))
        else:
            rec["target"] = {"available": True, "epoch_s": TARGET_EPOCH_S,
                             "met": bool(r["epoch_s"] <= TARGET_EPOCH_S)}
        out[kind] = rec
    if quick or not has_gpu:
        out["predict_target"] = na("the target is for one GPU at the paper width; "
                                   + ("--quick measures tiny networks" if quick else
                                      "this run had no GPU"))
    else:
        rec = {"available": True, "img_s": TARGET_PREDICT_IMG_S}
        for what, recs in (("model", res["predict"]["model"]["pix2wgan"]),
                           ("manifest", res["predict"]["manifest"])):
            got = [v["img_s"] for v in recs.values() if v.get("available")]
            rec[f"{what}_best_img_s"] = max(got) if got else None
            rec[f"{what}_met"] = bool(got) and max(got) >= TARGET_PREDICT_IMG_S
        out["predict_target"] = rec
    return out


# --- reports -----------------------------------------------------------------------------

def _f(value, digits=1, unit="") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return f"{value:,.{digits}f}{unit}"


def _cell(rec: dict, fmt) -> str:
    return fmt(rec) if rec.get("available") else f"not measured: {rec['why']}"


def _predict_verdict(res: dict) -> str:
    """One line: Pix2WGAN's best measured predict rates against our target."""
    t = res["projection"]["predict_target"]
    best = {what: max((v["img_s"] for v in recs.values() if v.get("available")), default=None)
            for what, recs in (("forward", res["predict"]["model"]["pix2wgan"]),
                               ("--manifest", res["predict"]["manifest"]))}
    got = ", ".join(f"{what} {_f(v)} img/s" for what, v in best.items() if v is not None)
    if not t.get("available"):
        verdict = f"not judged ({t['why']})"
    else:
        verdict = (f"forward {'met' if t['model_met'] else 'NOT met'}, --manifest "
                   f"{'met' if t['manifest_met'] else 'NOT met'}")
    return (f"Pix2WGAN predict: measured best {got or 'nothing'} | target >= "
            f"{TARGET_PREDICT_IMG_S} img/s: {verdict}")


def _mem_cell(mem: dict) -> str:
    """A table cell for a peak-memory record (the CPU's reason in full is in the JSON
    and under "Memory")."""
    if mem.get("available"):
        return f"{mem['gb']:.2f} GB"
    return "n/a (CPU)" if mem.get("why") == NO_MEMORY else mem.get("why", "")


def summary_lines(res: dict) -> list[str]:
    lines = ["", "=== measured (this run) vs paper (reported) vs target (ours)"]
    if res["mode"] == "quick":
        lines.append("--quick: tiny networks; a smoke check of the script, NOT performance "
                     "figures")
    for kind in MODELS:
        p = res["projection"][kind]
        if not p.get("available"):
            lines.append(f"{LABEL[kind]}: not measured ({p['why']})")
            continue
        t = p["target"]
        tiny = " (tiny networks, --quick)" if res["mode"] == "quick" else ""
        lines.append(
            f"{LABEL[kind]}{tiny}: measured {p['img_s']:.1f} img/s ({p['best_config']}), epoch "
            f"{p['epoch_s']:.1f} s, 500 epochs {p['hours_500_epochs']:.2f} h | paper "
            f"(RTX 3090): {p['paper_hours_500_epochs']} h = {p['paper_img_s']:.0f} img/s"
            + (f" | target: epoch <= {TARGET_EPOCH_S:g} s: "
               + ("met" if t["met"] else "NOT met") if t.get("available") else
               (f" | target epoch <= {TARGET_EPOCH_S:g} s: not judged ({t['why']})"
                if kind == "pix2wgan" else "")))
    lines.append(_predict_verdict(res))
    for kind in MODELS:
        ag = res["train"][kind]["precision_agreement"]
        lines.append(f"{LABEL[kind]} precision check: " + _cell(ag, lambda r: (
            f"fp16 finite {r['fp16_finite']}, agree {r['agree']} (rtol {r['rtol']}, "
            f"{r['k_std']:g} std, last {r['window']} of {r['steps']} steps)")))
    if res["errors"]:
        lines.append(f"{len(res['errors'])} measurement(s) failed: "
                     + "; ".join(res["errors"]))
    lines.append(f"total {res['wall_s']:.0f} s")
    return lines


def markdown(res: dict) -> str:
    dev = res["device"]
    s = res["settings"]
    L = [f"# GPU check: {dev['kind']} {dev['name']}", ""]
    if res["mode"] == "quick":
        L += ["**`--quick`: tiny networks (width {width}, batch {batch_size}, {image_size} px, "
              "depth {depth}, n_critic {n_critic}) — a smoke check of the script, not "
              "performance figures.**".format(**s), ""]
    m = res["machine"]
    L += [f"`python benchmarks/gpu_check.py{' --quick' if res['mode'] == 'quick' else ''}`, "
          f"{res['started_utc']} UTC, {res['wall_s']:.0f} s; TensorFlow {m['tensorflow']}, "
          f"{m['cpus']} CPUs ({m['cpu']}), load average at start {m['load_avg']}; "
          f"budget {s['budget_s']} s; seed {s['seed']}; float32 matmuls and convolutions "
          f"in TF32: " + (str(dev["tf32"]["enabled"]) if dev["tf32"].get("available")
                          else "n/a (CPU)") + ".", "",
          "Labels: **measured** = this run; **paper** = Luo et al.'s reported figure; "
          "**target** = ours (issue 7).", ""]
    L += ["## Projected paper run (500 epochs of 15,000 images)", "",
          "| model | measured: fastest config | measured img/s | measured epoch | measured "
          "500 epochs | paper (RTX 3090) | target |", "|---|---|---|---|---|---|---|"]
    for kind in MODELS:
        p = res["projection"][kind]
        if not p.get("available"):
            L.append(f"| {LABEL[kind]} | not measured: {p['why']} | | | | | |")
            continue
        t = p["target"]
        tgt = (f"epoch <= {t['epoch_s']:g} s: {'met' if t['met'] else 'NOT met'}"
               if t.get("available") else f"not judged: {t['why']}")
        tiny = " (tiny, --quick)" if res["mode"] == "quick" else ""
        L.append(f"| {LABEL[kind]}{tiny} | {p['best_config']} | {_f(p['img_s'])} | "
                 f"{_f(p['epoch_s'])} s | {_f(p['hours_500_epochs'], 2)} h | "
                 f"{p['paper_hours_500_epochs']} h ({_f(p['paper_img_s'], 0)} img/s) | "
                 f"{tgt} |")
    L += ["", "## Training step (measured)", "",
          f"{s['n_critic']} x batch {s['batch_size']} images per step; non-XLA rows: "
          f"median of the last {s['timed_steps']} of {s['agreement_steps']} steps; XLA rows: "
          f"{s['xla_warmup_steps']} warm-up steps, then {s['timed_steps']} timed. Share of "
          f"peak: {res['flops_method']}.", "",
          "| model | precision | XLA | img/s | ms/step | first call s | epoch s | 500 epochs "
          "h | GFLOP/step | share of matmul peak | peak device memory | losses finite |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in MODELS:
        for key, r in res["train"][kind]["configs"].items():
            prec, xla = key.split("+")[0], "yes" if key.endswith("+xla") else "no"
            if not r.get("available"):
                L.append(f"| {LABEL[kind]} | {POLICY[prec]} | {xla} | not measured: "
                         f"{r['why']} | | | | | | | | |")
                continue
            share = r["matmul_peak_share"]
            mem = r["peak_device_memory"]
            L.append(
                f"| {LABEL[kind]} | {r['policy']} | {xla} | {_f(r['img_s'])} | "
                f"{_f(r['step_s'] * 1e3)} | {_f(r['first_call_s'])} | {_f(r['epoch_s'])} | "
                f"{_f(r['projected_500_epochs_h'], 2)} | {_f(r['flops_per_step'] / 1e9, 2)} | "
                + (f"{100 * share['fraction']:.1f} % of {share['of']}" if share.get(
                    "available") else f"n/a: {share['why']}") + " | "
                + _mem_cell(mem) + " | "
                f"{r['last_losses_finite']} |")
    L += ["", "## Matmul peak (measured)", "", "| dtype | TFLOP/s | n |", "|---|---|---|"]
    for dt, r in res["matmul_peak"].items():
        L.append(f"| {dt} | " + _cell(r, lambda r: f"{r['tflop_s']:.3f} | {r['n']}") + " |")
    L += ["", "## Precision check (measured)", ""]
    for kind in MODELS:
        ag = res["train"][kind]["precision_agreement"]
        if not ag.get("available"):
            L += [f"{LABEL[kind]}: not measured: {ag['why']}", ""]
            continue
        L += [f"**{LABEL[kind]}**: fp16 losses finite: **{ag['fp16_finite']}** "
              f"({ag['fp16_finite_rule']}; non-finite steps: "
              f"{ag['fp16_nonfinite_steps'] or 'none'}; loss scale at the end "
              f"{ag['fp16_loss_scale_end']}); float32, mixed_float16 and mixed_bfloat16 "
              f"agree after {ag['steps']} steps: **{ag['agree']}**. Rule: {ag['rule']}. "
              f"Initial weights: {ag['initial_weights']}.", "",
              "| loss term | float32 mean (std) | tolerance | fp16 mean (diff) | bf16 mean "
              "(diff) | agree |", "|---|---|---|---|---|---|"]
        for term, t in ag["terms"].items():
            L.append(f"| {term} | {t['float32_mean']:.4g} ({t['float32_std']:.2g}) | "
                     f"{t['tolerance']:.2g} | {t['fp16_mean']:.4g} ({t['fp16_diff']:+.2g}) "
                     f"| {t['bf16_mean']:.4g} ({t['bf16_diff']:+.2g}) | "
                     f"{t['fp16_agrees'] and t['bf16_agrees']} |")
        L.append("")
    L += [f"Why these tolerances: {TOLERANCE_WHY}", ""]
    L += ["## Predict (measured)", "", f"Target (ours): >= {TARGET_PREDICT_IMG_S} img/s "
          f"on one GPU at the paper width. {_predict_verdict(res)}.", "",
          "| model | what | precision | batch | "
          "img/s | peak device memory |", "|---|---|---|---|---|---|"]
    rows = [(LABEL[k], "generator forward + copy to host", key, r)
            for k in MODELS for key, r in res["predict"]["model"][k].items()]
    rows += [(LABEL["pix2wgan"], "predict --manifest (JPEG, model, PNG, record)", key, r)
             for key, r in res["predict"]["manifest"].items()]
    for label, what, key, r in rows:
        prec, b = key.split("_b")
        mem = r.get("peak_device_memory", {})
        L.append(f"| {label} | {what} | {POLICY[prec]} | {b} | "
                 + _cell(r, lambda r: f"{_f(r['img_s'])}") + " | " + _mem_cell(mem) + " |")
    ng = res["settings"]["noise_gan"]
    L += ["", "## Noise GAN, Lin et al. (measured)", "",
          f"Width {ng['width']}, {ng['batch_unpaired']} unpaired SDSS + "
          f"{ng['batch_unpaired']} unpaired CFHT + {ng['batch_paired']} pairs, "
          f"{ng['sdss_size']}/{ng['cfht_size']} px, {ng['bands']} bands, float32; the paper "
          f"trains {NOISE_GAN_ITERATIONS:,} iterations per step.", "",
          "| step | s/iteration | img/s | first call s | projected 60,000 iterations |",
          "|---|---|---|---|---|"]
    for step, r in res["noise_gan"].items():
        L.append(f"| {step[-1]} | " + _cell(r, lambda r: (
            f"{r['iteration_s']:.4f} | {_f(r['img_s'])} | {_f(r['first_call_s'])} | "
            f"{_f(r['projected_paper_step_h'], 2)} h")) + " |")
    pm = res["peak_device_memory"]
    L += ["", "## Memory (measured)", "",
          "Peak device memory: " + (f"{pm['gb']:.2f} GB ({pm['measurement']})"
                                    if pm.get("available") else pm["why"])
          + f". Host peak RSS: {res['host_peak_rss_mb']:.0f} MB.", ""]
    if res["errors"]:
        L += ["## Failed measurements", ""] + [f"- {e}" for e in res["errors"]] + [""]
    L += [f"JSON with every figure: `{JSON_NAME}` (not measurable fields are "
          "`{\"available\": false, \"why\": ...}`).", ""]
    return "\n".join(L)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
