"""The measurements of benchmarks/gpu_check.py, one function each: the matmul peak, a
training step's images/s (``train_measurement``, built by benchmarks.setups.train_setup),
the float32 / fp16 / bf16 precision check (``agreement``), predict images/s (forward and
the whole ``predict --manifest`` path) and one noise GAN (Lin et al.) iteration; ``Check``
runs them one by one within a time budget. A figure that cannot be measured is
``{"available": False, "why": ...}`` (``na``).

Precision check: the three precisions start from the same weights and seeds on the same
batch; fp16 is "finite" when none of the last 10 of the 50 steps (gpu_check.AGREE_STEPS)
has a non-finite loss (dynamic loss scaling starts at 2^15 and skips the first steps whose
scaled gradients overflow, halving the scale: that is by design); the precisions "agree"
when, for every logged loss term, the mean over the last 10 steps differs from float32's
by at most ``max(2 % of |float32 mean|, 3 x float32's step-to-step standard deviation)``
(RTOL, K_STD; why these: TOLERANCE_WHY, printed in the report).
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from pathlib import Path

EPOCH_IMAGES, PAPER_EPOCHS = 15_000, 500  # Luo et al. §2.4, §4.2
NOISE_GAN_ITERATIONS = 60_000  # Lin et al. §IV-B, per step
PRECISIONS = ("float32", "fp16", "bf16")
POLICY = {"float32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
MATMUL_DTYPE = {"float32": "float32", "fp16": "float16", "bf16": "bfloat16"}
SIZE_KEYS = ("width", "batch_size", "image_size", "depth", "n_critic")

#: The precision check (module docstring). The window is the last WINDOW of the steps run
#: (gpu_check.AGREE_STEPS). RTOL: bf16 rounds to 2^-8 (0.4 %) and fp16 to 2^-11 per value;
#: means over thousands of pixels and 10 steps average that out, so a term 2 % off
#: float32's is not rounding. K_STD: the adversarial terms (critic scores, their
#: difference, the penalty) move by more from step to step than rounding moves them, and
#: the runs drift apart (dropout masks are drawn in the compute dtype; fp16 skips its
#: first, overflowing steps, so it is one to a few updates behind); a difference within 3
#: of float32's own step-to-step standard deviations is indistinguishable from it at this
#: length. Measured on CPU: width 2, 32 px, n_critic 1 (--quick): every term within 2.5
#: standard deviations (the largest: fp16's adversarial term, two skipped steps behind);
#: width 8, 64 px, n_critic 3, batch 4: within 0.35.
WINDOW, RTOL, K_STD = 10, 0.02, 3.0


def na(why: str) -> dict:
    """A figure that could not be measured in this run, and why."""
    return {"available": False, "why": why}


def error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _finite(values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)



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
    """One configuration's step (setups.train_setup builds it: networks, optimizers, the
    seeded batch, the conv FLOPs). ``start_weights`` (non-XLA runs): a dict that the
    float32 run fills with its initial weights; the other precisions start from them
    (recorded: already identical through the seed, or copied). ``reset_memory``: called
    once the model is built (the GPU peak then covers the steps)."""
    import keras

    from benchmarks.benchlib import train_step_flops
    from benchmarks.setups import train_setup
    step, ref, data, n, f_g, f_d, model = train_setup(kind, cfg)
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

    from benchmarks.setups import build_predict_model
    from common.training import set_precision
    set_precision(precision)
    fn, _ = build_predict_model(kind, width, depth)
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

    from benchmarks.setups import build_predict_model, write_catalogue
    from pix2wgan.survey import predict_manifest
    with tempfile.TemporaryDirectory() as tmp:
        cat = write_catalogue(Path(tmp) / "cat", rows, size)
        fn, mult = build_predict_model("pix2wgan", width, depth)
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
