"""Training utilities shared by every model family: configs, precision, distribution
strategies, checkpoints, learning-rate schedule and sample grids.

Every trainer follows the same shape: a config dataclass carrying the paper's defaults is
printed (non-defaults marked) and saved as ``RUN_DIR/config.json``; ``tf.train.Checkpoint``
holds the networks, both optimizers and the epoch, so a killed run resumes where it
stopped; Keras ``fit`` provides the progress bar and TensorBoard.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from common.choices import AUTO, PRECISIONS, STRATEGIES
from common.io import atomic_path, atomic_write_text
from common.images import denormalize

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


def make_adam(lr: float, beta_1: float, beta_2: float, precision: str):
    """Adam, wrapped in dynamic loss scaling under fp16 (bf16 has fp32's exponent range)."""
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)
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
    """Networks, optimizers, seed state and epoch of one run, checkpointed together.

    ``tf.train.CheckpointManager`` writes the data files first and the ``checkpoint``
    index last (atomically), so a kill mid-save leaves the previous checkpoint valid.
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
        """Restore the newest checkpoint; return the number of finished epochs."""
        if self.latest is None:
            raise FileNotFoundError(
                f"no checkpoint in {self.manager.directory}: nothing to resume")
        self.checkpoint.restore(self.latest).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def save(self, epochs_done: int) -> str:
        self.epoch.assign(epochs_done)
        return self.manager.save(checkpoint_number=epochs_done)


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


class CheckpointEachEpoch(keras.callbacks.Callback):
    """Save the run state at the end of every epoch."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        self.state.save(epoch + 1)


class EpochLRDecay(keras.callbacks.Callback):
    """``lr_e = lr_0 / factor**e`` at the start of epoch ``e`` (Luo et al. §4.2).

    The rate is derived from the epoch number, not accumulated, so a resumed run continues
    the schedule exactly.
    """

    def __init__(self, optimizers, lr0: float, factor: float):
        super().__init__()
        self.optimizers, self.lr0, self.factor = optimizers, lr0, factor

    def rate(self, epoch: int) -> float:
        return self.lr0 / self.factor**epoch

    def on_epoch_begin(self, epoch, logs=None):
        for opt in self.optimizers:
            opt.learning_rate.assign(self.rate(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.rate(epoch)


def fit_verbose(verbose: int | str = "auto") -> int:
    """Keras ``fit``'s ``verbose``: ``"auto"`` is the live progress bar (1) on a
    terminal, one line per epoch (2) when stdout is a file or pipe, where the bar's
    redraws would each become a line."""
    if verbose != "auto":
        return int(verbose)
    return 1 if sys.stdout.isatty() else 2


class HistoryCSV(keras.callbacks.Callback):
    """One row per Keras epoch in ``history.csv``: the count ``unit`` ("epoch", or
    "iteration" when an epoch is ``per_epoch`` iterations), 1-based as Keras prints
    ``Epoch 1/N`` and as checkpoints are numbered, then every logged value (columns fixed
    by the first row's header; a resumed run appends under it).

    ``done``: the count the run restarts from (its checkpoint's). Rows past it, written
    by a run killed between its history row and its checkpoint, are dropped, so each
    count appears once; ``done=0`` starts a new file.
    """

    def __init__(self, path: Path, done: int, unit: str = "epoch", per_epoch: int = 1):
        super().__init__()
        self.path, self.unit, self.per_epoch = Path(path), unit, per_epoch
        if done == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.is_file():
            lines = self.path.read_text().splitlines()
            keep = lines[:1] + [row for row in lines[1:]
                                if row and float(row.split(",")[0]) <= done]
            if len(keep) < len(lines):
                atomic_write_text(self.path, "".join(f"{row}\n" for row in keep))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.path.is_file():
            with open(self.path) as fh:
                keys = fh.readline().rstrip("\n").split(",")[1:]
            head = ""
        else:
            keys = sorted(logs)
            head = ",".join([self.unit, *keys]) + "\n"
        values = [f"{float(logs[k]):.6g}" if k in logs else "" for k in keys]
        with open(self.path, "a") as fh:
            fh.write(head + ",".join([str((epoch + 1) * self.per_epoch), *values]) + "\n")


# --- sample grids -------------------------------------------------------------------------

def write_grid(rows, path: Path, pad: int = 2) -> Path:
    """Write a PNG grid: ``rows`` is a list of lists of ``[H, W, 3]`` uint8 panels."""
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255,
                   np.uint8)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = panel
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return Path(path)


class SampleGrid(keras.callbacks.Callback):
    """Each epoch, write ``samples/epoch_NNNN.png``: one galaxy a row, columns given by
    ``columns_fn(generator)`` (e.g. input | output | target)."""

    def __init__(self, columns_fn, out_dir: Path):
        super().__init__()
        self.columns_fn, self.out_dir = columns_fn, Path(out_dir)

    def on_epoch_end(self, epoch, logs=None):
        columns = [denormalize(c, tf.uint8).numpy() for c in self.columns_fn()]
        rows = [[col[i] for col in columns] for i in range(len(columns[0]))]
        write_grid(rows, self.out_dir / f"epoch_{epoch + 1:04d}.png")
