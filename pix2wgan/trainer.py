"""``train(config, run_dir)``: the importable Pix2WGAN training job behind the CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from common import training
from common.io import atomic_path
from common.errors import DataError
from data import pipeline
from data.layout import read_manifest
from pix2wgan.config import Pix2WGANConfig
from pix2wgan.model import Pix2WGAN

GENERATOR_FILE = "generator.keras"
#: Test galaxies scored for ``val_g_l1`` after each epoch (kept small: it is a monitor,
#: not the evaluation; Table 1 is computed by experiments/table1.py on the whole split).
N_VAL = 64


def resolve_data(cfg: Pix2WGANConfig) -> Path:
    """The dataset root; the embedded simulated default is generated on first use."""
    if cfg.data:
        return Path(cfg.data)
    from data.simulate import ensure_simulated
    return ensure_simulated()


def prepare_run(cfg: Pix2WGANConfig, run_dir: Path, resume: bool,
                cls=Pix2WGANConfig) -> Pix2WGANConfig:
    """Check the run folder; on resume, take the saved architecture (a ``cls`` read
    from config.json), keep the new ``epochs``."""
    run_dir = Path(run_dir)
    has_ckpt = (run_dir / training.CHECKPOINTS / "checkpoint").is_file()
    if resume:
        if not has_ckpt:
            raise FileNotFoundError(f"--resume: {run_dir} has no checkpoint to resume")
        saved = training.load_config(cls, run_dir)
        saved.epochs = cfg.epochs
        return saved.validate()
    if has_ckpt:
        raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue "
                              f"it, or choose another --out")
    return cfg


def build(cfg: Pix2WGANConfig, strategy: tf.distribute.Strategy | None = None) -> Pix2WGAN:
    """Networks + optimizers for ``cfg`` (sets the global precision policy first), their
    variables created under ``strategy``'s scope (default: the current strategy)."""
    training.set_precision(cfg.precision)
    training.seed_everything(cfg.seed)  # the initialisers and dropout draw from it
    with (strategy or tf.distribute.get_strategy()).scope():
        model = Pix2WGAN.from_config_dataclass(cfg)
        model.compile(
            g_optimizer=training.make_adam(cfg.lr, cfg.beta_1, cfg.beta_2, cfg.precision),
            d_optimizer=training.make_adam(cfg.lr, cfg.beta_1, cfg.beta_2, cfg.precision),
            jit_compile=cfg.jit_compile)
    return model


def run_state(model: Pix2WGAN, run_dir: Path) -> training.RunState:
    return training.RunState(run_dir, generator=model.generator, critic=model.critic,
                             g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer,
                             seed=model.seed_generator.state,
                             dropout_seeds=training.layer_seeds(model.generator, model.critic))


def split_ids(cfg, root: Path) -> tuple[list[str], list[str]]:
    """Training ids (the first ``cfg.n_train`` if set) and test ids of ``root``; a
    ``DataError`` if there is not one training iteration's worth, or no test galaxy."""
    train_ids = read_manifest(root, "train")["id"].tolist()
    if cfg.n_train:
        train_ids = train_ids[:cfg.n_train]
    test_ids = read_manifest(root, "test")["id"].tolist()
    if len(train_ids) < cfg.iteration_batch:
        raise DataError(f"{root}: {len(train_ids)} training galaxies, fewer than one "
                        f"training iteration needs ({cfg.iteration_batch} = batch size x "
                        f"n_critic)")
    if not test_ids:
        raise DataError(f"{root}: the test split is empty")
    return train_ids, test_ids


def start_run(state: training.RunState, cfg, run_dir: Path, resume: bool) -> int:
    """Restore ``state`` on resume, else save the config; return the epochs already done."""
    if resume:
        return state.restore()
    training.save_config(cfg, run_dir)
    return 0


def describe_strategy(strategy: tf.distribute.Strategy, cfg) -> str:
    """One line: strategy, replicas and the per-replica / global batch sizes."""
    r = training.replicas(strategy)
    return (f"strategy {type(strategy).__name__}: {r} replica(s); batch {cfg.batch_size} "
            f"per replica x {r} = {cfg.batch_size * r} global per critic/generator "
            f"update; {cfg.iteration_batch * r} images per training step")


def val_batch(cfg, n_val: int, n_replicas: int) -> tuple[int, bool]:
    """``(batch, drop_remainder)`` of the validation stream: one per-replica batch per
    replica; on several replicas a last partial batch is dropped when at least one full
    batch remains (a replica must not receive an empty batch)."""
    batch = cfg.batch_size * n_replicas
    return batch, n_replicas > 1 and n_val >= batch


@dataclass
class RunSetup:
    """What :func:`setup_run` prepared: the effective config, data, split, strategy,
    model (under the strategy's scope), checkpoint state and epochs already done."""
    cfg: object
    root: Path
    train_ids: list[str]
    test_ids: list[str]
    strategy: tf.distribute.Strategy
    model: keras.Model
    state: training.RunState
    first_epoch: int


def setup_run(cfg, run_dir: Path, resume: bool, strategy: str, gpus: int, build_fn,
              state_fn) -> RunSetup:
    """The start shared by the Pix2WGAN and cascade trainers: check the run folder (on
    resume, take the saved architecture), print the config, split the ids, make the
    strategy, refuse a set smaller than one distributed step, build the model and
    restore (or start) its checkpoint state."""
    cfg = prepare_run(cfg.validate(), run_dir, resume, cls=type(cfg))
    root = resolve_data(cfg)
    print(training.describe_config(cfg))
    train_ids, test_ids = split_ids(cfg, root)
    dist = training.make_strategy(strategy, gpus)
    step = cfg.iteration_batch * training.replicas(dist)
    if len(train_ids) < step:
        raise DataError(f"{root}: {len(train_ids)} training galaxies, fewer than one "
                        f"distributed step needs ({step})")
    model = build_fn(cfg, dist)
    state = state_fn(model, run_dir)
    first_epoch = start_run(state, cfg, run_dir, resume)
    print(describe_strategy(dist, cfg))
    return RunSetup(cfg, root, train_ids, test_ids, dist, model, state, first_epoch)


def train(cfg: Pix2WGANConfig, run_dir: Path, resume: bool = False,
          verbose: int | str = "auto", strategy: str = "default",
          gpus: int = 0) -> Pix2WGAN:
    """Train (or resume) a run; returns the model. Everything lands in ``run_dir``.

    ``strategy``/``gpus``: see :func:`common.training.make_strategy` (a hardware choice,
    so not part of the saved config: a run may be resumed on another machine).
    ``cfg.batch_size`` is per replica; the global batch is that times the replicas.
    """
    with training.undone_if_failed(run_dir):  # a failed start leaves no files
        run = setup_run(cfg, run_dir, resume, strategy, gpus, build, run_state)
        cfg, root, train_ids, test_ids = run.cfg, run.root, run.train_ids, run.test_ids
        dist, model, first_epoch = run.strategy, run.model, run.first_epoch
        n_rep = training.replicas(dist)
        print(f"data {root}: {len(train_ids)} train / {len(test_ids)} test galaxies; "
              f"{cfg.source} -> {cfg.target}; starting at epoch {first_epoch + 1} of "
              f"{cfg.epochs}")

        # The epochs still to run; each epoch's order depends on (seed, epoch) alone, so
        # a resumed run gets the batches of an uninterrupted one. Keras splits each
        # global batch along axis 0 into one slice per replica, and each replica splits
        # its slice into n_critic critic batches (model.train_step).
        train_ds = pipeline.make_dataset(root, "train", cfg.source, cfg.target,
                                         cfg.iteration_batch * n_rep, training=True,
                                         seed=cfg.seed, epochs=(first_epoch, cfg.epochs),
                                         ids=train_ids, image_size=cfg.image_size)
        vb, vdrop = val_batch(cfg, min(len(test_ids), N_VAL), n_rep)
        val_ds = pipeline.make_dataset(root, "test", cfg.source, cfg.target, vb,
                                       training=False, ids=test_ids[:N_VAL],
                                       image_size=cfg.image_size, drop_remainder=vdrop)
        x_low, x_high = next(iter(pipeline.make_dataset(
            root, "test", cfg.source, cfg.target, cfg.n_samples, training=False,
            ids=test_ids[:cfg.n_samples], image_size=cfg.image_size)))

        fit_epochs(run, run_dir, train_ds, val_ds, train_ds,
                   [model.g_optimizer, model.d_optimizer],
                   lambda: (x_low, model.generator(x_low, training=False), x_high), verbose)
        save_generator(model.generator, Path(run_dir) / GENERATOR_FILE)
        say_wrote(run_dir, [GENERATOR_FILE], cfg.epochs, "pix2wgan.predict")
        return model


def fit_epochs(run: RunSetup, run_dir: Path, train_ds, val_ds, checked, optimizers,
               columns, verbose) -> None:
    """The epochs of the Pix2WGAN and cascade trainers, from ``run.first_epoch`` to
    ``run.cfg.epochs``: the lr of ``optimizers`` divided by ``lr_decay`` each epoch (Luo
    §4.2), a sample grid of ``columns()``, history.csv, TensorBoard and a checkpoint each
    epoch; an unreadable image behind ``checked`` (a dataset of :mod:`data.pipeline`)
    becomes one ``DataError`` naming it. ``train_ds`` holds the remaining epochs back to
    back (``make_dataset(epochs=...)``), one global batch per iteration."""
    cfg, model, run_dir = run.cfg, run.model, Path(run_dir)
    callbacks = [
        training.EpochLRDecay(optimizers, cfg.lr, cfg.lr_decay),
        training.SampleGrid(columns, run_dir / "samples"),
        training.HistoryCSV(run_dir / training.HISTORY, run.first_epoch),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        training.CheckpointEachEpoch(run.state),  # last: runs after the others have logged
    ]
    if run.first_epoch < cfg.epochs:
        with pipeline.data_errors(checked):
            steps = pipeline.batches_per_epoch(
                len(run.train_ids), cfg.iteration_batch * training.replicas(run.strategy))
            model.fit(train_ds, epochs=cfg.epochs, initial_epoch=run.first_epoch,
                      steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks,
                      verbose=training.fit_verbose(verbose),
                      shuffle=False)  # the pipeline shuffles


def say_wrote(run_dir: Path, models: list[str], epochs: int, predict: str) -> None:
    """The closing line of a training run: what it wrote where, and how to use it."""
    print(f"wrote {run_dir}: {', '.join(models)} (epoch {epochs}), {training.CHECKPOINTS}/, "
          f"{training.HISTORY}, samples/, logs/; convert images with python -m {predict} "
          f"--model {run_dir}")


def save_generator(generator: keras.Model, path: Path) -> Path:
    """Save the generator as a ``.keras`` archive, atomically."""
    with atomic_path(path) as tmp:
        generator.save(tmp)
    return path


@dataclass
class Saved:
    """Where trained networks are read from.

    ``files``: every file read, in a fixed order (what a model hash covers): the finished
    ``.keras`` archives or, for a run killed before its end, its config.json and newest
    checkpoint (``checkpoint``: its prefix ``RUN/checkpoints/ckpt-N``, ``epoch`` = N
    epochs done). ``config``: the run's config.json as a dict (``{}``: none beside the
    archive), e.g. ``config.get("image_size")``, the training cutout side.
    """
    files: list[Path]
    run_dir: Path | None = None
    config: dict = field(default_factory=dict)
    checkpoint: str | None = None
    epoch: int | None = None

    @property
    def warning(self) -> str:
        """One line for an unfinished run, else ``""``."""
        if self.checkpoint is None:
            return ""
        return (f"warning: {self.run_dir} is an unfinished run (no finished .keras "
                f"model): using its newest checkpoint, epoch {self.epoch} of "
                f"{self.config.get('epochs', '?')}")


def latest_checkpoint(run_dir: Path | str) -> tuple[str, int] | None:
    """``(prefix, epochs done)`` of the newest checkpoint of ``RUN/checkpoints``, read
    from its ``checkpoint`` index file (no TensorFlow call); ``None`` if there is none.
    ``RunState.save`` numbers checkpoints by epoch, so ``ckpt-3`` holds epoch 3."""
    import re
    folder = Path(run_dir) / training.CHECKPOINTS
    index = folder / "checkpoint"
    if not index.is_file():
        return None
    m = re.search(r'^model_checkpoint_path:\s*"(.+)"', index.read_text(), re.M)
    n = re.search(r"-(\d+)$", m.group(1)) if m else None
    if n is None:
        raise ValueError(f"{index}: no checkpoint named <prefix>-<epoch> in it")
    return str(folder / m.group(1)), int(n.group(1))


def find_saved(path: Path | str, archives: tuple[str, ...], train_cmd: str) -> Saved:
    """Locate trained networks: a ``.keras`` file (one-archive models), a run folder
    holding ``archives``, or an unfinished run folder (``config.json`` and
    ``checkpoints/`` but not all ``archives``). One-line ``FileNotFoundError`` /
    ``ValueError`` naming the path otherwise (missing, not a Keras archive)."""
    import json
    import zipfile
    path = Path(path)
    if path.is_dir():
        run_dir, files = path, [path / a for a in archives]
    elif path.is_file() and len(archives) == 1:
        run_dir, files = path.parent, [path]
    elif path.is_file():
        raise ValueError(f"{path}: give the run folder holding {' and '.join(archives)}, "
                         f"not a file")
    else:
        raise FileNotFoundError(f"model {path} not found (train one with "
                                f"`python -m {train_cmd}`)")
    cfg_path = run_dir / training.CONFIG_FILE
    config = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    missing = [f for f in files if not f.is_file()]
    if not missing:
        for f in files:
            if f.suffix == ".keras" and not zipfile.is_zipfile(f):
                raise ValueError(f"{f}: not a Keras model archive (a .keras file is a zip "
                                 f"archive; this one is not: a cut download, or another "
                                 f"file renamed?)")
        return Saved(files, run_dir, config)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or not config:
        raise FileNotFoundError(f"{missing[0]} not found, and {run_dir} holds no "
                                f"config.json and checkpoint to build it from (train one "
                                f"with `python -m {train_cmd}`)")
    prefix = Path(ckpt[0])
    data = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    index = prefix.with_name(prefix.name + ".index")
    if not data or not index.is_file():
        raise FileNotFoundError(f"{prefix}: the newest checkpoint of {run_dir} is "
                                f"missing its .index or .data files")
    return Saved([cfg_path, index, *data], run_dir, config, str(prefix), ckpt[1])


def restore_nets(saved: Saved, cls, build_fn, pick) -> dict:
    """Networks of an unfinished run: the model ``build_fn(cfg)`` of its config.json
    (a ``cls``), then ``pick(model)`` (``{checkpoint key: network}``) restored from its
    newest checkpoint; the critics and optimizers in it are skipped. The global dtype
    policy is left as it was (the networks keep the run's precision)."""
    cfg = training.load_config(cls, saved.run_dir).validate()
    policy = keras.mixed_precision.global_policy()
    try:
        nets = pick(build_fn(cfg))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    try:
        status = tf.train.Checkpoint(**nets).restore(saved.checkpoint)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise ValueError(f"{saved.checkpoint}: cannot restore {', '.join(nets)} from it "
                         f"with {saved.run_dir}/config.json ({_first_line(err)})") from None
    return nets


def load_archive(path: Path) -> keras.Model:
    """One ``.keras`` archive (checked by :func:`find_saved`), uncompiled."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise ValueError(f"could not load model {path}: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    """An error's first line, cut to 200 characters (errors must stay one line)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def find_generator(path: Path | str) -> Saved:
    """:func:`find_saved` for a Pix2WGAN generator (``generator.keras``)."""
    return find_saved(path, (GENERATOR_FILE,), "pix2wgan.train")


def load_generator(path: Path | str | Saved) -> keras.Model:
    """Load a generator from a ``.keras`` file or from a run folder holding one; from an
    unfinished run folder, build it from config.json and restore its newest checkpoint."""
    saved = path if isinstance(path, Saved) else find_generator(path)
    if saved.checkpoint is None:
        return load_archive(saved.files[0])
    return restore_nets(saved, Pix2WGANConfig, build,
                        lambda m: {"generator": m.generator})["generator"]
