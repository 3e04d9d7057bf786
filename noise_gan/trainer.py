"""``train(cfg, run_dir, step)``: the importable training job behind ``noise_gan.train``,
and ``load_translator(run_dir)`` for prediction and figures.

Run layout::

    RUN_DIR/config.json              the run's configuration (resumed runs and step 2 take
                                     their architecture from here)
    RUN_DIR/step1/checkpoints/       networks + optimizers + seed state + iteration
                                     (ckpt-<iteration>), every ``checkpoint_every``
    RUN_DIR/step1/history.csv        one row of losses (and lr) per checkpoint
    RUN_DIR/step1/finished.json      written when the step has run all its iterations
    RUN_DIR/step2/...                the same for step two (variant "ours" only)
    RUN_DIR/logs/step1, logs/step2   TensorBoard scalars (x axis: checkpoints)
    RUN_DIR/samples/stepN_<iter>.png sample grids of fixed paired test galaxies

One-step variants (a)-(h) have only ``step1/``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import training
from common.io import atomic_write_text
from noise_gan import cyclegan
from noise_gan import networks as nets
from noise_gan.config import ALL_BANDS, STEPS, VARIANTS, NoiseGANConfig
from noise_gan.model import NoiseStep1, NoiseStep2, OneStepGAN

FINISHED = "finished.json"
#: Fields a resumed run (or step 2 of an existing run) may change; everything else is
#: taken from RUN_DIR/config.json.
RUN_FIELDS = ("iterations", "step2_iterations", "data")
#: Display order of the sample grids' RGB: (R, G, B) = (i, r, g) for ugriz.
RGB_BANDS = (3, 2, 1)
# Issue 13's noise checks and recipe.
#: Unpaired images per domain behind the robust noise estimate: the first batches of the
#: training stream (at most ``ESTIMATE_BATCHES`` of them).
ESTIMATE_IMAGES = 256
ESTIMATE_BATCHES = 32
#: Test pairs behind the truth reference of a simulated set (observed - noise-free truth).
TRUTH_PAIRS = 64
#: Emulator draws per domain behind each logged ratio, and their stateless seed.
CHECK_DRAWS = 16
CHECK_SEED = 1
REFERENCE_FILE = "noise_reference.json"
PRETRAIN_FILE = "pretrain.json"


# --- optimizers -------------------------------------------------------------------------

def lr_schedule(cfg: NoiseGANConfig, lr: float | None = None, step: str = "1"):
    """§IV-B: ``lr / lr_drop ** floor(iteration / lr_drop_every)``, evaluated on the
    optimizer's own (checkpointed) iteration count, so a resumed run keeps its place.
    ``lr``: the initial rate (default ``cfg.lr``; issue 13's per-network rates);
    ``step``: the training step, whose drop it takes (``cfg.lr_drop_of``)."""
    drop, every = cfg.lr_drop_of(step)
    return keras.optimizers.schedules.ExponentialDecay(
        cfg.lr if lr is None else lr, decay_steps=every, decay_rate=1.0 / drop,
        staircase=True)


def make_optimizer(cfg: NoiseGANConfig, role: str | None = None, step: str = "1"):
    """Adam with default betas, gradients clipped to global norm ``clip_norm`` (§IV-B),
    wrapped in dynamic loss scaling under fp16 (as ``common.training.make_adam``).
    ``role`` (one of ``config.LR_ROLES``): start at ``cfg.lr_of(role)``; ``step``:
    the training step it serves (its rate drops by ``cfg.lr_drop_of(step)``)."""
    lr = cfg.lr if role is None else cfg.lr_of(role)
    opt = keras.optimizers.Adam(learning_rate=lr_schedule(cfg, lr, step),
                                global_clipnorm=cfg.clip_norm)
    if cfg.precision == "fp16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def current_lr(optimizer) -> float:
    """The rate the optimizer's next update will use."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(inner.learning_rate.numpy() if hasattr(inner.learning_rate, "numpy")
                 else inner.learning_rate)


# --- networks and models ------------------------------------------------------------------

def build_networks(cfg: NoiseGANConfig, names) -> dict:
    """The named networks of ``cfg`` (``a_x, a_y, ne_x, ne_y, d_x, d_y, g_x2y, g_y2x``;
    X = SDSS, Y = CFHT; for (g)/(h) ``noise_gan.cyclegan``'s, on the SDSS grid, with
    (h)'s ``e_x, e_y, dz_x, dz_y``), built under the current dtype policy."""
    s, c, b, w = cfg.sdss_size, cfg.cfht_size, cfg.bands, cfg.width
    if cfg.regridded:
        return cyclegan.build_networks(cfg.variant, names, size=s, bands=b, width=w)
    gen = dict(bands=b, width=w, upsample=cfg.upsample, sdss_size=s, cfht_size=c)
    makers = {
        "a_x": lambda: nets.build_autoencoder(s, bands=b, width=w, name="A_sdss"),
        "a_y": lambda: nets.build_autoencoder(c, bands=b, width=w, name="A_cfht"),
        "ne_x": lambda: nets.build_noise_emulator(s, bands=b, hidden=cfg.noise_hidden,
                                                  name="NE_sdss"),
        "ne_y": lambda: nets.build_noise_emulator(c, bands=b, hidden=cfg.noise_hidden,
                                                  name="NE_cfht"),
        "d_x": lambda: nets.build_discriminator(s, bands=b, width=w, name="D_sdss"),
        "d_y": lambda: nets.build_discriminator(c, bands=b, width=w, name="D_cfht"),
        "g_x2y": lambda: nets.build_generator("sdss_to_cfht", name="G_sdss_to_cfht", **gen),
        "g_y2x": lambda: nets.build_generator("cfht_to_sdss", name="G_cfht_to_sdss", **gen),
    }
    return {n: makers[n]() for n in names}


def _common(cfg):
    return dict(sdss_size=cfg.sdss_size, cfht_size=cfg.cfht_size, bands=cfg.bands,
                adv_reduction=cfg.adv_reduction, seed=cfg.seed)


def build_step(cfg: NoiseGANConfig, step: str = "1"):
    """Networks + compiled model of one training step (sets the precision policy first).

    ``"ours"``: step "1" -> :class:`NoiseStep1`, step "2" -> :class:`NoiseStep2`; (a)-(f)
    -> :class:`OneStepGAN`, (g)/(h) -> :class:`noise_gan.cyclegan.CycleGANBenchmark`
    (step "1" only).
    """
    training.set_precision(cfg.precision)
    keras.utils.set_random_seed(cfg.seed + (0 if step == "1" else 1))
    kw = dict(jit_compile=cfg.jit_compile, run_eagerly=cfg.eager)
    if cfg.two_step and step == "1":
        n = build_networks(cfg, ("a_x", "a_y", "ne_x", "ne_y", "d_x", "d_y"))
        model = NoiseStep1(**n, **_common(cfg), name="noise_step1")
        model.compile(make_optimizer(cfg, "auto"), make_optimizer(cfg, "disc"),
                      make_optimizer(cfg, "noise"), **kw)
    elif cfg.two_step:
        n = build_networks(cfg, ("g_x2y", "g_y2x", "ne_x", "ne_y"))
        model = NoiseStep2(**n, **_common(cfg), weight_sdss=cfg.step2_weight_sdss,
                           weight_cfht=cfg.step2_weight_cfht, name="noise_step2")
        model.compile(make_optimizer(cfg, "gen", step="2"), **kw)
    else:
        if step != "1":
            raise ValueError(f"variant {cfg.variant} trains in one step: use --step 1 or "
                             f"both, not {step}")
        if cfg.regridded:
            n = build_networks(cfg, cyclegan.NETWORKS[cfg.variant])
            model = cyclegan.CycleGANBenchmark(cfg.variant, **n, **_common(cfg),
                                               name=f"variant_{cfg.variant}")
            model.compile(make_optimizer(cfg, "gen"), make_optimizer(cfg, "disc"), **kw)
            return model
        names = ("g_x2y", "g_y2x", "d_x", "d_y") + (("ne_x", "ne_y") if cfg.has_noise else ())
        n = build_networks(cfg, names)
        model = OneStepGAN(cfg.variant, **n, content_weight=cfg.content_weight,
                           **_common(cfg), name=f"variant_{cfg.variant}")
        model.compile(make_optimizer(cfg, "gen"), make_optimizer(cfg, "disc"),
                      make_optimizer(cfg, "noise") if cfg.has_noise else None, **kw)
    return model


NETWORK_NAMES = ("a_x", "a_y", "ne_x", "ne_y", "d_x", "d_y", "g_x2y", "g_y2x",
                 "e_x", "e_y", "dz_x", "dz_y")  # the last four: (h)'s encoders, latent critics
OPTIMIZER_NAMES = ("auto_optimizer", "disc_optimizer", "noise_optimizer", "gen_optimizer")
#: Optimizer attribute -> its role in ``NoiseGANConfig.lr_of``.
OPTIMIZER_ROLES = dict(zip(OPTIMIZER_NAMES, ("auto", "disc", "noise", "gen")))


def trackables(model) -> dict:
    """Everything of ``model`` a checkpoint holds: networks, optimizers, seed state."""
    out = {n: getattr(model, n) for n in NETWORK_NAMES + OPTIMIZER_NAMES
           if getattr(model, n, None) is not None}
    out["seed"] = model.seed_generator.state
    return out


def optimizers_of(model) -> list:
    return [getattr(model, n) for n in OPTIMIZER_NAMES if getattr(model, n, None) is not None]


def step_dir(run_dir: Path, step: str) -> Path:
    return Path(run_dir) / f"step{step}"


def run_state(model, run_dir: Path, step: str) -> training.RunState:
    """Checkpoints of one step in ``RUN_DIR/stepN/checkpoints``; the state's counter is the
    number of iterations done."""
    return training.RunState(step_dir(run_dir, step), **trackables(model))


def checkpoint_iteration(run_dir: Path, step: str) -> int:
    """Iterations done by the newest checkpoint of ``step`` (0 if there is none)."""
    latest = tf.train.latest_checkpoint(str(step_dir(run_dir, step) / training.CHECKPOINTS))
    if latest is None:
        return 0
    return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def step_finished(run_dir: Path, step: str) -> int | None:
    """Iterations of the finished ``step`` (from ``finished.json``), or None."""
    path = step_dir(run_dir, step) / FINISHED
    if not path.is_file():
        return None
    return int(json.loads(path.read_text())["iterations"])


def restore_networks(path: str, **networks) -> None:
    """Restore only ``networks`` (e.g. ``ne_x=..., ne_y=...``) from the checkpoint at
    ``path``; raises if one of them is not in it."""
    status = tf.train.Checkpoint(**networks).restore(path)
    status.assert_existing_objects_matched()
    status.expect_partial()


# --- run folder ---------------------------------------------------------------------------

def steps_of(cfg: NoiseGANConfig, step: str) -> list[str]:
    """The steps ``--step`` asks for: ["1"], ["2"] or ["1", "2"] (one-step variants: ["1"])."""
    if step not in STEPS:
        raise ValueError(f"--step must be one of {', '.join(STEPS)}, got {step!r}")
    if not cfg.two_step:
        if step == "2":
            raise ValueError(f"variant {cfg.variant} trains in one step: use --step 1 or "
                             f"both, not 2")
        return ["1"]
    return ["1", "2"] if step == "both" else [step]


def prepare_run(cfg: NoiseGANConfig, run_dir: Path, step: str, resume: bool):
    """Check the run folder against the request; returns ``(config, steps)``.

    An existing ``config.json`` fixes the architecture (only ``RUN_FIELDS`` come from
    ``cfg``; other differing non-default values are reported as ignored). A step with a
    checkpoint needs ``resume``; ``resume`` needs a run.
    """
    run_dir = Path(run_dir)
    cfg.validate()
    if (run_dir / training.CONFIG_FILE).is_file():
        saved = training.load_config(NoiseGANConfig, run_dir)
        defaults = NoiseGANConfig()
        for f in dataclasses.fields(cfg):
            mine, theirs = getattr(cfg, f.name), getattr(saved, f.name)
            if (f.name not in RUN_FIELDS and mine != theirs
                    and mine != getattr(defaults, f.name)):
                print(f"note: {f.name}={mine!r} ignored: {run_dir / training.CONFIG_FILE} "
                      f"says {theirs!r}")
        cfg = dataclasses.replace(saved, iterations=cfg.iterations,
                                  step2_iterations=cfg.step2_iterations,
                                  data=cfg.data or saved.data).validate()
    elif resume:
        raise FileNotFoundError(f"--resume: {run_dir} holds no run (no config.json)")
    steps = steps_of(cfg, step)
    if steps[0] == "2" and step_finished(run_dir, "1") is None:
        raise FileNotFoundError(f"step 2 needs a finished step 1 in {step_dir(run_dir, '1')}"
                                f": run --step 1 (or --step both) first")
    started = [s for s in steps if checkpoint_iteration(run_dir, s) > 0]
    if started and not resume:
        raise FileExistsError(f"{run_dir} already holds step {started[0]} of a run: pass "
                              f"--resume to continue it, or choose another --run-dir")
    return cfg, steps


def resolve_data(cfg: NoiseGANConfig, progress: bool = True) -> Path:
    """The FITS root; the default simulated Lin et al. set is generated on first use
    (with a progress bar when ``progress``, as training's)."""
    if cfg.data:
        return Path(cfg.data)
    from data.simulate import LinSimConfig, ensure_lin_simulated
    return Path(ensure_lin_simulated(LinSimConfig(progress=progress)))


def select_bands(cfg: NoiseGANConfig, images):
    """``[..., 5]`` ugriz images -> ``[..., len(band_set)]`` (issue 13's band set); the
    tensor itself for ugriz."""
    if cfg.band_set == ALL_BANDS:
        return images
    return tf.gather(images, cfg.band_indices, axis=-1)


def make_dataset(cfg: NoiseGANConfig, root: Path, seed: int, start: int = 0):
    """The training stream of ``root`` from its batch ``start`` on (a resumed step),
    restricted to ``cfg.band_set``."""
    from data.lin_pipeline import lin_dataset
    ds = lin_dataset(root, batch_unpaired=cfg.batch_unpaired,
                     batch_paired=cfg.batch_paired, seed=seed, sdss_size=cfg.sdss_size,
                     cfht_size=cfg.cfht_size, start=start)
    if cfg.band_set == ALL_BANDS:
        return ds
    return ds.map(lambda d: {k: select_bands(cfg, v) for k, v in d.items()})


def fixed_samples(cfg: NoiseGANConfig, root: Path | None, dataset=None):
    """``(sdss [n, s, s, b], cfht [n, c, c, b])`` paired galaxies for the sample grids: the
    first test pairs of ``root``, or the pairs of the first element of ``dataset``."""
    if dataset is not None:
        first = next(iter(dataset))
        return first["pair_sdss"][:cfg.n_samples], first["pair_cfht"][:cfg.n_samples]
    from data.lin_pipeline import paired_test_dataset
    from data.lin_pipeline import iterate_checked
    first = next(iterate_checked(paired_test_dataset(
        root, cfg.n_samples, sdss_size=cfg.sdss_size, cfht_size=cfg.cfht_size)))
    return (select_bands(cfg, first["sdss"][:cfg.n_samples]),
            select_bands(cfg, first["cfht"][:cfg.n_samples]))


# --- sample grids -------------------------------------------------------------------------

def display_rgb(panels, size: int) -> list[np.ndarray]:
    """Stretched-domain panels (``[n, h, w, b]`` each, any h) of one figure -> lists of
    ``[size, size, 3]`` uint8 images, one per galaxy and panel, rows kept together.

    RGB = (i, r, g) for five bands (grey r band for fewer than four bands); every row (one
    galaxy across all panels) shares one linear scale per colour from its 1st to 99.5th
    percentile, so translated and target images are comparable. Panels are resized to
    ``size`` (nearest neighbour) so SDSS and CFHT sit side by side.
    """
    bands = panels[0].shape[-1]
    chans = list(RGB_BANDS) if bands >= 4 else [min(2, bands - 1)] * 3
    resized = [tf.image.resize(tf.gather(tf.cast(p, tf.float32), chans, axis=-1),
                               [size, size], method="nearest").numpy() for p in panels]
    rows = []
    for i in range(resized[0].shape[0]):
        row = np.stack([r[i] for r in resized])              # [panels, size, size, 3]
        lo = np.percentile(row, 1.0, axis=(0, 1, 2))
        hi = np.percentile(row, 99.5, axis=(0, 1, 2))
        scaled = (row - lo) / np.maximum(hi - lo, 1e-6)
        rows.append(list((np.clip(scaled, 0, 1) * 255).astype(np.uint8)))
    return rows


class SampleGrids(keras.callbacks.Callback):
    """At the checkpoints where ``iteration % every == 0`` (and at the step's end), write
    ``samples/step<N>_<iteration>.png`` from ``columns_fn() -> list of [n, h, w, b]``."""

    def __init__(self, columns_fn, out_dir: Path, step: str, steps_per_epoch: int,
                 every: int, last: int, size: int):
        super().__init__()
        self.columns_fn, self.out_dir, self.step = columns_fn, Path(out_dir), step
        self.spe, self.every, self.last, self.size = steps_per_epoch, every, last, size

    def on_epoch_end(self, epoch, logs=None):
        it = (epoch + 1) * self.spe
        if it % self.every and it != self.last:
            return
        rows = display_rgb(self.columns_fn(), self.size)
        training.write_grid(rows, self.out_dir / f"step{self.step}_{it:07d}.png")


def sample_columns(model, cfg: NoiseGANConfig, sdss, cfht):
    """Sample-grid columns of ``model``: step one ``x | A^X(x) | F^X(x) | y | A^Y(y) |
    F^Y(y)``; translators ``x | F^{X->Y}(x) | y | y | F^{Y->X}(y) | x`` (input |
    translated | target, both directions; noise added where the variant has it)."""
    def fn():
        if isinstance(model, NoiseStep1):
            # Seeded noise, not the model's training seed state: drawing a grid must
            # not change the noise that training draws next (nor what a resume draws).
            tr = Translator(cfg, None, None, model.ne_x, model.ne_y)
            ax, ay = (tf.cast(a, tf.float32) for a in (model.a_x(sdss), model.a_y(cfht)))
            return [sdss, ax, ax + tr.noise_sdss(sdss.shape[0], seed=0),
                    cfht, ay, ay + tr.noise_cfht(cfht.shape[0], seed=0)]
        tr = Translator(cfg, model.g_x2y, model.g_y2x, getattr(model, "ne_x", None),
                        getattr(model, "ne_y", None))
        return [sdss, tr.sdss_to_cfht(sdss, seed=0), cfht,
                cfht, tr.cfht_to_sdss(cfht, seed=0), sdss]
    return fn


# --- callbacks ------------------------------------------------------------------------------

class LogLearningRate(keras.callbacks.Callback):
    """Put the rate of the first optimizer into the epoch logs as ``lr`` (all follow one
    schedule by default); ``each`` (``{role: optimizer}``, issue 13's separate rates)
    adds one ``lr_<role>`` column per optimizer."""

    def __init__(self, optimizer, each: dict | None = None):
        super().__init__()
        self.optimizer, self.each = optimizer, dict(each or {})

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = current_lr(self.optimizer)
            for role, opt in self.each.items():
                logs[f"lr_{role}"] = current_lr(opt)


class NoiseCheck(keras.callbacks.Callback):
    """What the critic sees (issue 13): at each checkpoint, the emulators' noise rms
    against the data's, per band, in total and after the Fig. 2(g) high-pass filter.

    Logs ``noise_ratio_{x,y}_<band>`` and ``noise_ratio_hp_{x,y}_<band>`` (x = SDSS,
    y = CFHT; emulator / data, 1 = matched) from ``draws`` emulator samples per domain
    drawn from fixed stateless seeds (the same seeds at every checkpoint, and training's
    seed state is not touched). ``reference``: ``{"sdss": ..., "cfht": ...}`` as
    ``noise_gan.evaluate.reference_sigmas`` returns them. Judge a run with
    ``noise_gan.evaluate.history_convergence(step1/history.csv)``.
    """

    def __init__(self, cfg: NoiseGANConfig, ne_x, ne_y, reference: dict,
                 draws: int = CHECK_DRAWS):
        super().__init__()
        self.cfg, self.reference, self.draws = cfg, reference, draws
        self.translator = Translator(cfg, None, None, ne_x, ne_y)

    def ratios(self) -> dict:
        """``{column: ratio}`` for the emulators as they are now."""
        from noise_gan.evaluate import noise_sigmas, sigma_ratios
        out = {}
        for dom, key, draw in (("x", "sdss", self.translator.noise_sdss),
                               ("y", "cfht", self.translator.noise_cfht)):
            r = sigma_ratios(noise_sigmas(draw(self.draws, seed=CHECK_SEED).numpy()),
                             self.reference[key])
            for i, band in enumerate(band_names(self.cfg)):
                out[f"noise_ratio_{dom}_{band}"] = float(r["total"][i])
                out[f"noise_ratio_hp_{dom}_{band}"] = float(r["hp"][i])
        return out

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.ratios())


class CheckpointIterations(keras.callbacks.Callback):
    """Save the run state at each epoch end, numbered by iterations done."""

    def __init__(self, state: training.RunState, steps_per_epoch: int):
        super().__init__()
        self.state, self.spe = state, steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.state.save((epoch + 1) * self.spe)


# --- noise levels and recipe options (issue 13) -------------------------------------------

def training_images(stream, n: int = ESTIMATE_IMAGES, batches: int = ESTIMATE_BATCHES):
    """``(sdss [m, s, s, b], cfht [m, c, c, b])`` float32 numpy: the first ``m <= n``
    unpaired images of each domain of a training stream (at most ``batches`` batches)."""
    from data.lin_pipeline import lin_data_errors
    xs, ys = [], []
    with lin_data_errors():
        for d in stream.take(batches):
            xs.append(np.asarray(d["sdss"], np.float32))
            ys.append(np.asarray(d["cfht"], np.float32))
            if sum(len(x) for x in xs) >= n:
                break
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def truth_noise(cfg: NoiseGANConfig, root: Path | None, n: int = TRUTH_PAIRS):
    """``(sdss, cfht)`` noise maps ``[m, size, size, b]`` (stretched observed - stretched
    noise-free truth) of the first ``m <= n`` test pairs of a simulated set, or None when
    ``root`` has no truth folders (real data, or an injected dataset)."""
    from data.lin_pipeline import (PAIRED_TEST, TRUTH_PREFIX, iterate_checked,
                                   paired_test_dataset)
    if root is None or not all((Path(root) / PAIRED_TEST / f"{TRUTH_PREFIX}{s}").is_dir()
                               for s in ("sdss", "cfht")):
        return None
    first = next(iterate_checked(paired_test_dataset(
        root, n, truth=True, sdss_size=cfg.sdss_size, cfht_size=cfg.cfht_size)))
    return tuple(np.asarray(select_bands(cfg, first[s] - first[f"{TRUTH_PREFIX}{s}"]))
                 for s in ("sdss", "cfht"))


def _jsonable(ref: dict) -> dict:
    """``ref`` with its numpy arrays as lists (for noise_reference.json)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ref.items()}


def noise_levels(cfg: NoiseGANConfig, root: Path | None, stream, estimate: bool) -> dict:
    """The data's noise per domain: ``{"sdss": ref, "cfht": ref}``, each as
    ``noise_gan.evaluate.reference_sigmas`` returns it (the simulated truth where there
    is one, else the robust estimate), plus ``"estimate"``: the robust estimate per domain
    (``[b]``, stretched units) when ``estimate`` or when it is the reference."""
    from noise_gan.evaluate import reference_sigmas, robust_noise_sigma
    truth = truth_noise(cfg, root)
    images = training_images(stream) if (estimate or truth is None) else None
    out = {}
    for k, key in enumerate(("sdss", "cfht")):
        out[key] = reference_sigmas(None if images is None else images[k],
                                    None if truth is None else truth[k])
    if images is not None:
        out["estimate"] = {key: robust_noise_sigma(images[k])
                           for k, key in enumerate(("sdss", "cfht"))}
    return out


def init_noise_from_data(model, estimate: dict) -> dict:
    """``noise_init="data"``: each emulator's expected output rms set to the robust
    estimate of its domain (``networks.init_emulator_amplitude``); returns the achieved
    rms per domain."""
    got = {"sdss": nets.init_emulator_amplitude(model.ne_x, estimate["sdss"]),
           "cfht": nets.init_emulator_amplitude(model.ne_y, estimate["cfht"])}
    print("noise_init data: emulator rms set to the robust noise estimate of the training "
          "images: " + "; ".join(f"{k.upper()} " + " ".join(f"{v:.4g}" for v in got[k])
                                 for k in got))
    return got


def pretrain_autoencoders(cfg: NoiseGANConfig, model, stream, sdir: Path,
                          progress: bool = True) -> dict:
    """``cfg.auto_pretrain`` autoencoder-only updates (eq. 1, sub-step (i) of step one)
    before step one's first iteration, on the first batches of the training stream (which
    step one then trains on again). Issue 13: the critic then compares noise with noise,
    not with the blur of an untrained autoencoder. With ``cfg.lr_pretrain`` set, the
    updates use an Adam of their own at that rate and step one's autoencoder optimizer
    starts fresh; otherwise that optimizer makes them (it counts them, so its rate
    schedule runs ``auto_pretrain`` iterations ahead). Not checkpointed on its own: a
    run killed before its first checkpoint pre-trains again. Writes
    ``step1/pretrain.json``; returns the last losses. ``progress``: a progress bar."""
    from tqdm import tqdm
    from data.lin_pipeline import lin_data_errors
    optimizer = model.auto_optimizer
    if cfg.lr_pretrain is not None:
        optimizer = make_optimizer(cfg, "pretrain")
        optimizer.build(model.a_x.trainable_variables + model.a_y.trainable_variables)

    def step(x, y):
        return model.autoencoder_step(x, y, optimizer)
    fn = step if cfg.eager else tf.function(step, jit_compile=cfg.jit_compile)
    first = last = None
    with lin_data_errors():
        for d in tqdm(stream.take(cfg.auto_pretrain), total=cfg.auto_pretrain,
                      desc="auto_pretrain", unit="it", disable=not progress):
            last = {k: float(v) for k, v in fn(d["sdss"], d["cfht"]).items()}
            first = first or last
    print(f"auto_pretrain: {cfg.auto_pretrain} autoencoder iterations at lr "
          f"{cfg.lr_of('pretrain'):.3g}: auto_x {first['auto_x']:.4g} -> "
          f"{last['auto_x']:.4g}, auto_y {first['auto_y']:.4g} -> {last['auto_y']:.4g}")
    atomic_write_text(sdir / PRETRAIN_FILE, json.dumps(
        {"iterations": cfg.auto_pretrain, "lr": cfg.lr_of("pretrain"), "first": first,
         "last": last}, indent=2) + "\n")
    return last


# --- training -------------------------------------------------------------------------------

def train(cfg: NoiseGANConfig, run_dir: Path, step: str = "both", resume: bool = False,
          dataset=None, progress: bool = True) -> Path:
    """Train (or resume) the steps ``step`` asks for ("1", "2", "both"); returns ``run_dir``.

    ``dataset``: an infinite ``tf.data.Dataset`` of dicts ``{"sdss", "cfht", "pair_sdss",
    "pair_cfht"}`` (stretched float32) to use instead of ``data.lin_pipeline.lin_dataset``
    on ``cfg.data`` (tests); its first element's pairs then feed the sample grids.
    """
    with training.undone_if_failed(run_dir):  # a failed start leaves no files
        run_dir = Path(run_dir)
        cfg, steps = prepare_run(cfg, run_dir, step, resume)
        print(training.describe_config(cfg))
        if dataset is None and cfg.bands != len(cfg.band_set):
            raise ValueError(f"--band-set {cfg.band_set} reads {len(cfg.band_set)} band(s) "
                             f"of the cubes but the networks have bands={cfg.bands}")
        root = None if dataset is not None else resolve_data(cfg, progress)
        print(f"variant {cfg.variant}: {VARIANTS[cfg.variant]}")
        print(f"data: {root if root is not None else 'injected dataset'}; steps "
              f"{', '.join(steps)}; "
              + ", ".join(f"step {s}: {cfg.iterations_of(s)} iterations" for s in steps))
        run_dir.mkdir(parents=True, exist_ok=True)
        training.save_config(cfg, run_dir)
        samples = fixed_samples(cfg, root, dataset)
        for s in steps:
            train_step_of(cfg, run_dir, s, dataset, root, samples, progress)
        print(f"wrote {run_dir}: " + ", ".join(
            f"step{s}/ ({cfg.iterations_of(s)} iterations: {training.CHECKPOINTS}/, "
            f"{training.HISTORY})" for s in steps)
            + f", samples/, logs/; translate with python -m noise_gan.predict --run-dir "
              f"{run_dir}")
        return run_dir


def train_step_of(cfg, run_dir: Path, step: str, dataset, root, samples, progress):
    """Run (or resume, or skip if finished) one step; returns its model."""
    if step == "2":
        done1 = step_finished(run_dir, "1")
        if done1 is None:
            raise FileNotFoundError(f"step 2 needs a finished step 1 in "
                                    f"{step_dir(run_dir, '1')}: run --step 1 first")
    model = build_step(cfg, step)
    state = run_state(model, run_dir, step)
    done = state.restore() if state.latest else 0
    if step == "2" and done == 0:
        # Step two starts from the noise emulators of step one, frozen (released code:
        # a Saver over the 'noise' variables restores them from method 1's checkpoint).
        restore_networks(tf.train.latest_checkpoint(
            str(step_dir(run_dir, "1") / training.CHECKPOINTS)),
            ne_x=model.ne_x, ne_y=model.ne_y)
    total, spe = cfg.iterations_of(step), cfg.steps_per_epoch_of(step)
    if done >= total:
        print(f"step {step}: already finished ({done} iterations); skipping")
        return model
    if done % spe:
        raise ValueError(f"{step_dir(run_dir, step)}: checkpoint at iteration {done} is not "
                         f"a multiple of checkpoint_every {spe}")
    print(f"step {step}: starting at iteration {done + 1} of {total}; "
          f"lr {current_lr(optimizers_of(model)[0]):.3g}")
    # A resumed step continues the stream where the checkpoint left it (batch `done`),
    # so it trains on the batches an uninterrupted run would.
    seed = cfg.seed + 1_000_003 * (int(step) - 1)
    ds = (dataset.skip(done) if dataset is not None
          else make_dataset(cfg, root, seed, start=done))
    sdir = step_dir(run_dir, step)
    sdir.mkdir(parents=True, exist_ok=True)
    # Issue 13. Everything here reads its own pass over the stream from batch 0 (the same
    # in a resumed run) and draws no random number from training's state, so with the
    # defaults (paper init, no pre-training) training is the paper's, bit for bit.
    checks, fresh = [], done == 0
    pretrain = fresh and cfg.auto_pretrain > 0 and isinstance(model, NoiseStep1)
    stream0 = None
    if model_trains_noise(model) or pretrain:
        stream0 = dataset if dataset is not None else make_dataset(cfg, root, seed)
    if model_trains_noise(model):
        levels = noise_levels(cfg, root, stream0, estimate=fresh and cfg.noise_init == "data")
        record = {k: _jsonable(v) for k, v in levels.items()}
        if fresh and cfg.noise_init == "data":
            record["init_rms"] = _jsonable(init_noise_from_data(model, levels["estimate"]))
        if fresh:
            atomic_write_text(sdir / REFERENCE_FILE, json.dumps(record, indent=2) + "\n")
        checks.append(NoiseCheck(cfg, model.ne_x, model.ne_y, levels))
    if pretrain:
        pretrain_autoencoders(cfg, model, stream0, sdir, progress)
    separate = any(getattr(cfg, f"lr_{r}") is not None for r in OPTIMIZER_ROLES.values())
    callbacks = [
        LogLearningRate(optimizers_of(model)[0], {
            OPTIMIZER_ROLES[n]: getattr(model, n) for n in OPTIMIZER_NAMES
            if separate and getattr(model, n, None) is not None}),
        *checks,
        SampleGrids(sample_columns(model, cfg, *samples), run_dir / "samples", step, spe,
                    cfg.sample_every, total, cfg.cfht_size),
        training.HistoryCSV(sdir / training.HISTORY, done, "iteration", spe),
        keras.callbacks.TensorBoard(str(run_dir / "logs" / f"step{step}")),
        CheckpointIterations(state, spe),  # last: runs after the others have logged
    ]
    from data.lin_pipeline import lin_data_errors
    with lin_data_errors():
        model.fit(ds, epochs=total // spe, initial_epoch=done // spe,
                  steps_per_epoch=spe, callbacks=callbacks,
                  verbose=training.fit_verbose("auto" if progress else 0), shuffle=False)
    atomic_write_text(sdir / FINISHED, json.dumps({"iterations": total}) + "\n")
    return model


def band_names(cfg: NoiseGANConfig) -> list[str]:
    """Column suffix of each channel: its band letter, or its index for networks whose
    channel count is not the band set's (injected datasets in tests)."""
    if cfg.bands == len(cfg.band_set):
        return list(cfg.band_set)
    return [str(c) for c in range(cfg.bands)]


def model_trains_noise(model) -> bool:
    """Whether ``model`` trains noise emulators (step one of ours, variant f)."""
    return isinstance(model, NoiseStep1) or (isinstance(model, OneStepGAN)
                                             and model.has_noise)


# --- inference ------------------------------------------------------------------------------

class Translator:
    """Trained generators (+ noise emulators) of a run, for prediction and figures.

    Images are stretched-domain float32 tensors, batched: SDSS ``[n, 64, 64, 5]``, CFHT
    ``[n, 136, 136, 5]``. With ``noise=True`` and a variant that has noise emulators
    ("ours", "f"), freshly drawn emulator noise is added to the generator output
    (``F = G + NE``); ``seed`` (an int) makes that draw reproducible.

    Benchmarks (g)/(h) work on CFHT regridded to the SDSS grid: ``sdss_to_cfht`` returns
    ``[n, 64, 64, 5]`` regridded-CFHT images and ``cfht_to_sdss`` takes 136 px CFHT (or
    64 px regridded CFHT) and regrids it first; ``cfht_out_size`` is the side of the
    CFHT-domain images the translator returns (136, or 64 for (g)/(h)). (h) draws its
    latent code ``z ~ N(0, I)`` per image with ``noise=True`` (from the stateless seed
    ``(seed, direction)`` when ``seed`` is an int) and uses ``z = 0``, the prior's mean,
    with ``noise=False``; ``latent_dim`` is its size (0 for every other variant).
    """

    def __init__(self, cfg: NoiseGANConfig, g_x2y, g_y2x, ne_x=None, ne_y=None,
                 iteration: int = 0):
        self.cfg, self.iteration = cfg, iteration
        self.g_x2y, self.g_y2x, self.ne_x, self.ne_y = g_x2y, g_y2x, ne_x, ne_y
        self.cfht_out_size = cfg.cfht_out_size
        self.latent_dim = cyclegan.latent_dim_of(cfg.variant)

    @property
    def has_noise(self) -> bool:
        return self.ne_x is not None and self.ne_y is not None

    def _seeds(self, n, size, seed):
        s = None if seed is None else tf.constant([int(seed), size], tf.int64)
        return nets.sample_noise_inputs(int(n), size, self.cfg.bands, seed=s)

    def _noise(self, emulator, n, size, seed):
        if not self.has_noise:
            raise ValueError(f"variant {self.cfg.variant} has no noise emulators")
        return tf.cast(emulator(list(self._seeds(n, size, seed)), training=False),
                       tf.float32)

    def noise_sdss(self, n: int, seed=None) -> tf.Tensor:
        """``[n, 64, 64, bands]`` samples of ``NE^X`` (SDSS noise, stretched units)."""
        return self._noise(self.ne_x, n, self.cfg.sdss_size, seed)

    def noise_cfht(self, n: int, seed=None) -> tf.Tensor:
        """``[n, 136, 136, bands]`` samples of ``NE^Y`` (CFHT noise, stretched units)."""
        return self._noise(self.ne_y, n, self.cfg.cfht_size, seed)

    def _generate(self, generator, images, noise, seed, direction: int):
        """``generator(images)``; for (h) with a latent code (see the class docstring)."""
        images = tf.convert_to_tensor(images, tf.float32)   # numpy or tensor alike
        if not self.latent_dim:
            return tf.cast(generator(images, training=False), tf.float32)
        shape = (tf.shape(images)[0], self.latent_dim)
        if not noise:
            z = tf.zeros(shape)
        elif seed is None:
            z = tf.random.normal(shape)
        else:
            z = tf.random.stateless_normal(shape, tf.constant([int(seed), direction],
                                                              tf.int64))
        return tf.cast(generator([images, z], training=False), tf.float32)

    def sdss_to_cfht(self, x, noise: bool = True, seed=None) -> tf.Tensor:
        """``F^{X->Y}(x) = G^{X->Y}(x) [+ NE^Y(z)]``: ``[n, 64, 64, b] -> [n, 136, 136, b]``
        (``[n, 64, 64, b]`` regridded CFHT for (g)/(h): ``cfht_out_size``)."""
        out = self._generate(self.g_x2y, x, noise, seed, 1)
        if noise and self.has_noise:
            out = out + self.noise_cfht(tf.shape(out)[0], seed)
        return out

    def cfht_to_sdss(self, y, noise: bool = True, seed=None) -> tf.Tensor:
        """``F^{Y->X}(y) = G^{Y->X}(y) [+ NE^X(z)]``: ``[n, 136, 136, b] -> [n, 64, 64, b]``
        ((g)/(h): 136 px CFHT is regridded to 64 px first; 64 px input is taken as
        already regridded)."""
        if self.cfg.regridded and y.shape[1] != self.cfht_out_size:
            y = cyclegan.regrid_cfht(y, self.cfht_out_size)
        out = self._generate(self.g_y2x, y, noise, seed, 2)
        if noise and self.has_noise:
            out = out + self.noise_sdss(tf.shape(out)[0], seed)
        return out


def load_translator(run_dir: Path | str) -> Translator:
    """The translator of a run: for "ours" from step two's newest checkpoint (its noise
    emulators are step one's, frozen), for (a)-(h) from the single step's. Networks are
    built in float32 whatever the run's precision (the checkpointed variables are
    float32 either way); the global dtype policy is left as it was."""
    run_dir = Path(run_dir)
    cfg = training.load_config(NoiseGANConfig, run_dir).validate()
    step = "2" if cfg.two_step else "1"
    latest = tf.train.latest_checkpoint(str(step_dir(run_dir, step) / training.CHECKPOINTS))
    if latest is None:
        raise FileNotFoundError(f"{step_dir(run_dir, step)} has no checkpoint: train step "
                                f"{step} of {run_dir} first")
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        names = ("g_x2y", "g_y2x") + (("ne_x", "ne_y") if cfg.has_noise else ())
        n = build_networks(cfg, names)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    restore_networks(latest, **n)
    return Translator(cfg, n["g_x2y"], n["g_y2x"], n.get("ne_x"), n.get("ne_y"),
                      iteration=checkpoint_iteration(run_dir, step))
