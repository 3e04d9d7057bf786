"""Finding and loading trained networks: a finished run's ``.keras`` archives, or the
newest checkpoint of an unfinished run, rebuilt from its config.json.

The model families wrap these (``pix2wgan.trainer.find_generator``,
``cascade.trainer.find_cascade``) with their archive names and builders.
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from common.io import atomic_path
from common.training import CHECKPOINTS, CONFIG_FILE, load_config


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


def save_archive(model: keras.Model, path: Path) -> Path:
    """Save ``model`` as a ``.keras`` archive, atomically (a kill leaves no half file)."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def latest_checkpoint(run_dir: Path | str) -> tuple[str, int] | None:
    """``(prefix, epochs done)`` of the newest checkpoint of ``RUN/checkpoints``, read
    from its ``checkpoint`` index file (no TensorFlow call); ``None`` if there is none.
    ``RunState.save`` numbers checkpoints by epoch, so ``ckpt-3`` holds epoch 3."""
    folder = Path(run_dir) / CHECKPOINTS
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
    cfg_path = run_dir / CONFIG_FILE
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
    cfg = load_config(cls, saved.run_dir).validate()
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
