"""The training harness every model family shares (Pix2WGAN, cascade, noise_gan): run
folder, config, resume rules, run state, optimizer, precision, distribution strategy.

Every trainer follows the same shape: a config dataclass carrying the paper's defaults is
printed (non-defaults marked) and saved as ``RUN_DIR/config.json``; one rule set decides
what a request may change in an existing run (:func:`resume_config`,
:func:`refuse_started`); ``tf.train.Checkpoint`` holds the networks, the optimizers, the
seed state and a counter (:class:`RunState`), so a killed run resumes where it stopped;
Keras ``fit`` provides the progress bar and TensorBoard, with the callbacks of
:mod:`common.callbacks` (:func:`fit_run`). Finding trained networks again:
:mod:`common.saved`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from common import callbacks
from common.choices import AUTO, PRECISIONS, STRATEGIES
from common.errors import DataError
from common.io import atomic_write_text

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
HISTORY = "history.csv"


# --- configs ------------------------------------------------------------------------------

def describe_config(cfg) -> str:
    """One line per field; fields that differ from the dataclass default end with ``*``."""
    defaults = type(cfg)()
    lines = [f"{type(cfg).__name__}:"]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        mark = "  *" if value != getattr(defaults, f.name) else ""
        lines.append(f"  {f.name:<16} {value!r}{mark}")
    return "\n".join(lines)


def save_config(cfg, run_dir: Path) -> Path:
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return path


def load_config(cls, run_dir: Path):
    """Read ``RUN_DIR/config.json`` into ``cls``, rejecting unknown keys."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} holds no run to resume")
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    return cls(**data)


# --- seeds --------------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """Same seed, same run: seed Python's, NumPy's and TensorFlow's global generators.

    Keras draws the weight initialisers' and the dropout layers' seeds from these, so
    building the networks after this call makes a training run repeat exactly on CPU
    (the data pipeline's shuffles and augmentations are seeded separately, by the
    config's seed). Measured on CPU: two runs give bit-identical weights without
    ``tf.config.experimental.enable_op_determinism`` (tests/test_pix2wgan.py,
    tests/test_resume.py; and Table 1's 40-epoch cpu-preset Pix2WGAN retrained in a
    second process), so we do not pay for it. GPU kernels may still differ run to run.
    """
    keras.utils.set_random_seed(int(seed))


# --- precision ----------------------------------------------------------------------------

def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 arithmetic units (x86 ``avx512_bf16`` or
    ``amx_bf16``, read from Linux's cpuinfo flags; False where that file is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags")
             for f in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``fp16`` with a GPU (tensor cores, loss scaling), ``bf16`` on a CPU
    with bfloat16 units, else ``float32``; any other name is returned unchanged."""
    if precision != AUTO:
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "fp16"
    return "bf16" if cpu_has_bf16() else "float32"


def set_precision(precision: str) -> str:
    """Set the global Keras dtype policy: ``float32``, ``fp16`` or ``bf16``.

    Must run before the networks are built. Returns the policy name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of "
                         f"{', '.join(PRECISIONS)}")
    policy = PRECISIONS[precision]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_adam(lr, beta_1: float = 0.9, beta_2: float = 0.999, precision: str = "float32",
              clipnorm: float | None = None):
    """The one optimizer factory: Adam at rate ``lr`` (a float, or a
    ``keras.optimizers.schedules.LearningRateSchedule`` evaluated on the optimizer's own,
    checkpointed iteration count), gradients clipped to global norm ``clipnorm`` when
    given, wrapped in dynamic loss scaling under fp16 (bf16 has fp32's exponent range).
    Keras' ``LossScaleOptimizer`` reports its inner optimizer's ``iterations``, which a
    step skipped for non-finite gradients does not advance."""
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2,
                                global_clipnorm=clipnorm)
    if precision == "fp16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


# --- distribution -------------------------------------------------------------------------

#: One strategy object per (kind, gpus) and process: two MirroredStrategy instances in one
#: process can collide in their collective-op keys (seen on CPU: "Shape mismatch in the
#: collective instance"), and a notebook or experiment script trains several models.
_STRATEGY_CACHE: dict = {}


def make_strategy(kind: str = "default", gpus: int = 0) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``--strategy KIND --gpus N``.

    * ``default``: one device. With a GPU visible, ``OneDeviceStrategy("/gpu:0")``, so
      Keras distributes the dataset to it (batches are prefetched onto the GPU while the
      previous step runs, instead of being copied at the start of each step); on a
      CPU-only machine, TensorFlow's default strategy.
    * ``mirrored``: ``MirroredStrategy`` over the first ``gpus`` GPUs (0 = all visible);
      with no GPU, over the logical CPU devices (tests split the CPU in two with
      ``tf.config.set_logical_device_configuration``).
    * ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster comes from the
      ``TF_CONFIG`` environment variable (see the README's multi-node section), every
      worker runs the same command. ``gpus`` limits the GPUs each worker uses; it must
      be applied before TensorFlow initialises its devices.

    Replicas each take ``batch_size`` x ``n_critic`` images per step (global batch =
    per-replica batch x replicas); the model averages losses over the global batch.

    Raises:
        ValueError: unknown ``kind``, negative ``gpus``, more GPUs asked than visible, or
        ``gpus > 1`` with the one-device ``default`` strategy.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"unknown --strategy {kind!r}; choose one of "
                         f"{', '.join(STRATEGIES)}")
    if gpus < 0:
        raise ValueError(f"--gpus must be >= 0, got {gpus}")
    if (kind, gpus) not in _STRATEGY_CACHE:
        _STRATEGY_CACHE[kind, gpus] = _new_strategy(kind, gpus)
    return _STRATEGY_CACHE[kind, gpus]


def _new_strategy(kind: str, gpus: int) -> tf.distribute.Strategy:
    if kind == "multiworker":
        if gpus:
            visible = tf.config.list_physical_devices("GPU")
            if gpus > len(visible):
                raise ValueError(f"--gpus {gpus}: only {len(visible)} GPU(s) visible")
            tf.config.set_visible_devices(visible[:gpus], "GPU")
        return tf.distribute.MultiWorkerMirroredStrategy()
    visible = tf.config.list_logical_devices("GPU")
    if gpus > len(visible):
        raise ValueError(f"--gpus {gpus}: only {len(visible)} GPU(s) visible")
    if kind == "default":
        if gpus > 1:
            raise ValueError(f"--gpus {gpus} needs --strategy mirrored (or multiworker)")
        return (tf.distribute.OneDeviceStrategy(visible[0].name) if visible
                else tf.distribute.get_strategy())
    devices = [d.name for d in (visible[:gpus] if gpus else visible)]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def replicas(strategy: tf.distribute.Strategy | None = None) -> int:
    """Number of replicas that each take one per-replica batch per step."""
    return (strategy or tf.distribute.get_strategy()).num_replicas_in_sync


# --- checkpoints --------------------------------------------------------------------------

def layer_seeds(*nets) -> list:
    """The seed-state variables of the layers of ``nets`` that draw random numbers
    (Keras ``Dropout``: ``layer.seed_generator``), in layer order. A checkpoint that
    holds them resumes the dropout masks where an uninterrupted run would be."""
    return [layer.seed_generator.state for net in nets
            for layer in net._flatten_layers(include_self=False, recursive=True)
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)]


class RunState:
    """Networks, optimizers, seed state and a counter of one run, checkpointed together.

    The counter is the run's count done (epochs, or noise_gan's iterations), saved under
    the key ``epoch`` (so run folders written before any rename still restore) and used
    as the checkpoint number (``ckpt-N``). ``tf.train.CheckpointManager`` writes the data
    files first and the ``checkpoint`` index last (atomically), so a kill mid-save leaves
    the previous checkpoint valid.
    """

    def __init__(self, run_dir: Path, max_to_keep: int = 2, **trackables):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(epoch=self.epoch, **trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(Path(run_dir) / CHECKPOINTS), max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> int:
        """Restore the newest checkpoint; return its count (epochs or iterations done)."""
        if self.latest is None:
            raise FileNotFoundError(
                f"no checkpoint in {self.manager.directory}: nothing to resume")
        self.checkpoint.restore(self.latest).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def save(self, done: int) -> str:
        self.epoch.assign(done)
        return self.manager.save(checkpoint_number=done)


@contextlib.contextmanager
def undone_if_failed(run_dir: Path):
    """Wrap a training call: if it raises before writing a checkpoint (bad data found in
    the first epoch, a wrong flag caught late), remove what it created in ``run_dir``
    (config.json, logs/, samples/, history.csv; the folder itself if it was new), so a
    failed start leaves nothing behind. Entries that were there before the call are
    never touched; once a checkpoint exists the run is kept, for ``--resume``."""
    run_dir = Path(run_dir)
    existed = run_dir.is_dir()
    before = set(run_dir.iterdir()) if existed else set()
    try:
        yield
    except Exception:
        new = set(run_dir.iterdir()) - before if run_dir.is_dir() else set()
        if not any(any(p.rglob("checkpoint")) for p in new if p.is_dir()):
            for p in new:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise


def fit_verbose(verbose: int | str = "auto") -> int:
    """Keras ``fit``'s ``verbose``: ``"auto"`` is the live progress bar (1) on a
    terminal, one line per epoch (2) when stdout is a file or pipe, where the bar's
    redraws would each become a line."""
    if verbose != "auto":
        return int(verbose)
    return 1 if sys.stdout.isatty() else 2


# --- the resume rules -----------------------------------------------------------------------

def resume_config(cfg, run_dir: Path, resume: bool, run_fields: tuple[str, ...]):
    """The effective (validated) config of a request ``cfg`` on ``run_dir``.

    An existing ``config.json`` fixes the architecture: only the family's ``run_fields``
    (e.g. the epochs or iterations to reach) come from ``cfg``, unless left unset there
    (``None`` or ``""``, e.g. no ``--data``); other fields of ``cfg`` that differ from the
    saved run and from the defaults are reported as ignored. ``resume`` needs a run.
    """
    run_dir = Path(run_dir)
    cfg.validate()
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        if resume:
            raise FileNotFoundError(f"--resume: {run_dir} holds no run (no {CONFIG_FILE}): "
                                    f"no checkpoint to resume")
        return cfg
    saved = load_config(type(cfg), run_dir)
    defaults = type(cfg)()
    for f in dataclasses.fields(cfg):
        mine, theirs = getattr(cfg, f.name), getattr(saved, f.name)
        if (f.name not in run_fields and mine != theirs
                and mine != getattr(defaults, f.name)):
            print(f"note: {f.name}={mine!r} ignored: {path} says {theirs!r}")
    taken = {n: getattr(cfg, n) for n in run_fields if getattr(cfg, n) not in (None, "")}
    return dataclasses.replace(saved, **taken).validate()


def refuse_started(run_dir: Path, started: str | None, resume: bool) -> None:
    """A started run (``started``: what of it has a checkpoint, e.g. "a run", "step 1 of
    a run"; ``None``: nothing) is continued only with ``--resume``."""
    if started and not resume:
        raise FileExistsError(f"{run_dir} already holds {started}: pass --resume to "
                              f"continue it, or choose another --run-dir")


def resolve_data(cfg, default) -> Path:
    """``cfg.data``, or ``default()`` (the family's simulated set, generated on first
    use) when it is unset."""
    return Path(cfg.data) if cfg.data else Path(default())


# --- fitting ----------------------------------------------------------------------------------

def fit_run(model, data, state: RunState, history: Path, logs: Path, *, done: int,
            total: int, steps_per_epoch: int, per_epoch: int = 1, unit: str = "epoch",
            extra=(), verbose: int | str = "auto", validation_data=None) -> None:
    """Keras ``fit`` from count ``done`` to ``total`` (in ``unit``s; one Keras epoch =
    ``per_epoch`` of them, ``steps_per_epoch`` batches of ``data``): the ``extra``
    callbacks, then ``history`` (history.csv), TensorBoard scalars in ``logs`` and a
    checkpoint of ``state`` each Keras epoch (last: after the others have logged).
    Nothing is fitted when ``done >= total``."""
    cbs = [*extra,
           callbacks.HistoryCSV(history, done, unit, per_epoch),
           keras.callbacks.TensorBoard(str(logs)),
           callbacks.Checkpoint(state, per_epoch)]
    if done < total:
        model.fit(data, epochs=total // per_epoch, initial_epoch=done // per_epoch,
                  steps_per_epoch=steps_per_epoch, validation_data=validation_data,
                  callbacks=cbs, verbose=fit_verbose(verbose),
                  shuffle=False)  # the pipelines shuffle


# --- epoch runs (Pix2WGAN, cascade) -----------------------------------------------------------

#: Test galaxies scored for ``val_g_l1`` after each epoch (kept small: it is a monitor,
#: not the evaluation; Table 1 is computed by experiments/table1.py on the whole split).
N_VAL = 64


def split_ids(cfg, root: Path, manifest) -> tuple[list[str], list[str]]:
    """Training ids (the first ``cfg.n_train`` if set) and test ids of ``root``
    (``manifest(root, split)``: a table with an ``id`` column); a ``DataError`` if there
    is not one training iteration's worth, or no test galaxy."""
    train_ids = manifest(root, "train")["id"].tolist()
    if cfg.n_train:
        train_ids = train_ids[:cfg.n_train]
    test_ids = manifest(root, "test")["id"].tolist()
    if len(train_ids) < cfg.iteration_batch:
        raise DataError(f"{root}: {len(train_ids)} training galaxies, fewer than one "
                        f"training iteration needs ({cfg.iteration_batch} = batch size x "
                        f"n_critic)")
    if not test_ids:
        raise DataError(f"{root}: the test split is empty")
    return train_ids, test_ids


def describe_strategy(strategy: tf.distribute.Strategy, cfg) -> str:
    """One line: strategy, replicas and the per-replica / global batch sizes."""
    r = replicas(strategy)
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
class EpochRun:
    """What :func:`setup_run` prepared: the effective config, data, split, strategy,
    model (under the strategy's scope), checkpoint state and epochs already done."""
    cfg: object
    root: Path
    train_ids: list[str]
    test_ids: list[str]
    strategy: tf.distribute.Strategy
    model: keras.Model
    state: RunState
    first_epoch: int


def setup_run(cfg, run_dir: Path, resume: bool, strategy: str, gpus: int, *, build_fn,
              state_fn, manifest, default_data, run_fields=("epochs",)) -> EpochRun:
    """The start of an epoch run (Pix2WGAN, cascade): the resume rules (a run's saved
    architecture wins; only ``run_fields`` come from ``cfg``), print the config, split
    the ids (:func:`split_ids` of ``manifest``; ``cfg.data`` or ``default_data()``), make
    the strategy, refuse a set smaller than one distributed step, build the model
    (``build_fn(cfg, strategy)``) and restore (on resume) or start (config.json saved)
    its ``state_fn(model, run_dir)``. ``strategy``/``gpus``: :func:`make_strategy` (a
    hardware choice, so not part of the saved config: a run may be resumed on another
    machine); ``cfg.batch_size`` is per replica, the global batch that times the number
    of replicas."""
    run_dir = Path(run_dir)
    started = (run_dir / CHECKPOINTS / "checkpoint").is_file()
    refuse_started(run_dir, "a run" if started else None, resume)
    cfg = resume_config(cfg, run_dir, resume, run_fields)
    root = resolve_data(cfg, default_data)
    print(describe_config(cfg))
    train_ids, test_ids = split_ids(cfg, root, manifest)
    dist = make_strategy(strategy, gpus)
    step = cfg.iteration_batch * replicas(dist)
    if len(train_ids) < step:
        raise DataError(f"{root}: {len(train_ids)} training galaxies, fewer than one "
                        f"distributed step needs ({step})")
    model = build_fn(cfg, dist)
    state = state_fn(model, run_dir)
    if resume:
        first_epoch = state.restore()
    else:
        save_config(cfg, run_dir)
        first_epoch = 0
    print(describe_strategy(dist, cfg))
    return EpochRun(cfg, root, train_ids, test_ids, dist, model, state, first_epoch)


def fit_epochs(run: EpochRun, run_dir: Path, train_ds, val_ds, optimizers, columns,
               steps: int, verbose: int | str = "auto") -> None:
    """The epochs of an epoch run, from ``run.first_epoch`` to ``run.cfg.epochs``, of
    ``steps`` global batches each: the lr of ``optimizers`` divided by ``lr_decay`` each
    epoch (Luo §4.2), a sample grid of ``columns()``, history.csv, TensorBoard and a
    checkpoint each epoch. ``train_ds`` holds the remaining epochs back to back."""
    cfg, run_dir = run.cfg, Path(run_dir)
    fit_run(run.model, train_ds, run.state, run_dir / HISTORY, run_dir / "logs",
            done=run.first_epoch, total=cfg.epochs, steps_per_epoch=steps,
            extra=[callbacks.EpochLRDecay(optimizers, cfg.lr, cfg.lr_decay),
                   callbacks.SampleGrid(columns, run_dir / "samples")],
            verbose=verbose, validation_data=val_ds)


def say_wrote(run_dir: Path, models: list[str], epochs: int, predict: str) -> None:
    """The closing line of an epoch run: what it wrote where, and how to use it."""
    print(f"wrote {run_dir}: {', '.join(models)} (epoch {epochs}), {CHECKPOINTS}/, "
          f"{HISTORY}, samples/, logs/; convert images with python -m {predict} "
          f"--model {run_dir}")
