"""``train(cfg, run_dir, step)``: the importable training job behind ``noise_gan.train``
(through the shared harness of :mod:`common.training` and :mod:`common.callbacks`), and
``load_translator(run_dir)`` for prediction and figures. Issue 13's noise checks:
:mod:`noise_gan.checks`; sample grids: :mod:`noise_gan.samples`.

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

import json
from pathlib import Path

import keras
import tensorflow as tf
from tqdm import tqdm

from common import callbacks, training
from common.io import atomic_write_text
from data.lin_pipeline import lin_data_errors, lin_dataset
from data.sim_lin import LinSimConfig, ensure_lin_simulated
from noise_gan import checks, cyclegan
from noise_gan import networks as nets
from noise_gan.config import ALL_BANDS, STEPS, VARIANTS, NoiseGANConfig
from noise_gan.model import NoiseStep1, NoiseStep2, OneStepGAN
from noise_gan.samples import SampleGrids, fixed_samples, sample_columns, select_bands
from noise_gan.translator import Translator

FINISHED = "finished.json"
#: Fields a resumed run (or step 2 of an existing run) may change; everything else is
#: taken from RUN_DIR/config.json.
RUN_FIELDS = ("iterations", "step2_iterations", "data")
# Issue 13's recipe: the noise reference of a step, and the autoencoder pre-training.
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
    """:func:`common.training.make_adam` for noise_gan: Adam with default betas on
    :func:`lr_schedule`, gradients clipped to global norm ``clip_norm`` (§IV-B), loss
    scaling under fp16. ``role`` (one of ``config.LR_ROLES``): start at
    ``cfg.lr_of(role)``; ``step``: the training step it serves (its rate drops by
    ``cfg.lr_drop_of(step)``)."""
    lr = cfg.lr if role is None else cfg.lr_of(role)
    return training.make_adam(lr_schedule(cfg, lr, step), precision=cfg.precision,
                              clipnorm=cfg.clip_norm)


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
    training.seed_everything(cfg.seed + (0 if step == "1" else 1))
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


def plan_steps(cfg: NoiseGANConfig, run_dir: Path, step: str, resume: bool):
    """Check the run folder against the request with the harness's rules
    (:func:`common.training.resume_config`: an existing ``config.json`` fixes the
    architecture, only ``RUN_FIELDS`` come from ``cfg``; ``resume`` needs a run; a step
    with a checkpoint needs ``resume``); returns ``(config, steps)``."""
    run_dir = Path(run_dir)
    cfg = training.resume_config(cfg, run_dir, resume, RUN_FIELDS)
    steps = steps_of(cfg, step)
    if steps[0] == "2" and step_finished(run_dir, "1") is None:
        raise FileNotFoundError(f"step 2 needs a finished step 1 in {step_dir(run_dir, '1')}"
                                f": run --step 1 (or --step both) first")
    started = [s for s in steps if checkpoint_iteration(run_dir, s) > 0]
    training.refuse_started(run_dir, f"step {started[0]} of a run" if started else None,
                            resume)
    return cfg, steps


def resolve_data(cfg: NoiseGANConfig, progress: bool = True) -> Path:
    """The FITS root; the default simulated Lin et al. set is generated on first use
    (with a progress bar when ``progress``, as training's)."""
    return training.resolve_data(
        cfg, lambda: ensure_lin_simulated(LinSimConfig(progress=progress)))


def make_dataset(cfg: NoiseGANConfig, root: Path, seed: int, start: int = 0):
    """The training stream of ``root`` from its batch ``start`` on (a resumed step),
    restricted to ``cfg.band_set``."""
    ds = lin_dataset(root, batch_unpaired=cfg.batch_unpaired,
                     batch_paired=cfg.batch_paired, seed=seed, sdss_size=cfg.sdss_size,
                     cfht_size=cfg.cfht_size, start=start)
    if cfg.band_set == ALL_BANDS:
        return ds
    return ds.map(lambda d: {k: select_bands(cfg, v) for k, v in d.items()})


# --- recipe options (issue 13) -------------------------------------------------------------

def pretrain_autoencoders(cfg: NoiseGANConfig, model, stream, sdir: Path,
                          progress: bool = True) -> dict:
    """``cfg.auto_pretrain`` autoencoder-only updates (Lin eq. 1, sub-step (i) of step one)
    before step one's first iteration, on the first batches of the training stream (which
    step one then trains on again). Issue 13: the critic then compares noise with noise,
    not with the blur of an untrained autoencoder. With ``cfg.lr_pretrain`` set, the
    updates use an Adam of their own at that rate and step one's autoencoder optimizer
    starts fresh; otherwise that optimizer makes them (it counts them, so its rate
    schedule runs ``auto_pretrain`` iterations ahead). Not checkpointed on its own: a
    run killed before its first checkpoint pre-trains again. Writes
    ``step1/pretrain.json``; returns the last losses. ``progress``: a progress bar."""
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
        cfg, steps = plan_steps(cfg, run_dir, step, resume)
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
          f"lr {callbacks.current_lr(optimizers_of(model)[0]):.3g}")
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
    noise_checks, fresh = [], done == 0
    pretrain = fresh and cfg.auto_pretrain > 0 and isinstance(model, NoiseStep1)
    stream0 = None
    trains_noise = checks.model_trains_noise(model)
    if trains_noise or pretrain:
        stream0 = dataset if dataset is not None else make_dataset(cfg, root, seed)
    if trains_noise:
        levels = checks.noise_levels(cfg, root, stream0,
                                     estimate=fresh and cfg.noise_init == "data")
        record = {k: checks.jsonable(v) for k, v in levels.items()}
        if fresh and cfg.noise_init == "data":
            record["init_rms"] = checks.jsonable(
                checks.init_noise_from_data(model, levels["estimate"]))
        if fresh:
            atomic_write_text(sdir / REFERENCE_FILE, json.dumps(record, indent=2) + "\n")
        noise_checks.append(checks.NoiseCheck(cfg, model.ne_x, model.ne_y, levels))
    if pretrain:
        pretrain_autoencoders(cfg, model, stream0, sdir, progress)
    separate = any(getattr(cfg, f"lr_{r}") is not None for r in OPTIMIZER_ROLES.values())
    extra = [
        callbacks.LogLearningRate(optimizers_of(model)[0], {
            OPTIMIZER_ROLES[n]: getattr(model, n) for n in OPTIMIZER_NAMES
            if separate and getattr(model, n, None) is not None}),
        *noise_checks,
        SampleGrids(sample_columns(model, cfg, *samples), run_dir / "samples", step, spe,
                    cfg.sample_every, total, cfg.cfht_size),
    ]
    with lin_data_errors():
        training.fit_run(model, ds, state, sdir / training.HISTORY,
                         run_dir / "logs" / f"step{step}", done=done, total=total,
                         steps_per_epoch=spe, per_epoch=spe, unit="iteration", extra=extra,
                         verbose="auto" if progress else 0)
    atomic_write_text(sdir / FINISHED, json.dumps({"iterations": total}) + "\n")
    return model


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
