"""The Keras callbacks every trainer shares: checkpoints, history.csv, learning-rate
logging and sample grids.

A Keras "epoch" of ``fit`` is one of Luo's epochs (Pix2WGAN, cascade) or
``checkpoint_every`` iterations of Lin's noise_gan; ``per_epoch`` converts Keras' 0-based
epoch into the run's own 1-based count (epochs, or iterations done), the number that
checkpoints and history rows carry.
"""
from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from common.images import denormalize
from common.io import atomic_path, atomic_write_text


class Checkpoint(keras.callbacks.Callback):
    """Save the run state (:class:`common.training.RunState`) at the end of every Keras
    epoch, numbered by the count done: epochs, or iterations when an epoch is
    ``per_epoch`` iterations. Put it last, so it runs after the others have logged."""

    def __init__(self, state, per_epoch: int = 1):
        super().__init__()
        self.state, self.per_epoch = state, per_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.state.save((epoch + 1) * self.per_epoch)


class HistoryCSV(keras.callbacks.CSVLogger):
    """One row per Keras epoch in ``history.csv``: the count ``unit`` ("epoch", or
    "iteration" when an epoch is ``per_epoch`` iterations), 1-based as Keras prints
    ``Epoch 1/N`` and as checkpoints are numbered, then every logged value as ``%.6g``
    (columns fixed by the first row's header; a resumed run appends under it, as
    ``CSVLogger(append=True)`` does).

    ``done``: the count the run restarts from (its checkpoint's). Rows past it, written
    by a run killed between its history row and its checkpoint, are dropped, so each
    count appears once; ``done=0`` starts a new file.
    """

    def __init__(self, path: Path, done: int, unit: str = "epoch", per_epoch: int = 1):
        super().__init__(str(path), append=True)
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
        if self.csv_file is None:  # called outside fit
            self.on_train_begin()
        if self.keys is None:  # an existing header fixes the columns (and their order)
            header = self.path.read_text().split("\n", 1)[0] if self.path.is_file() else ""
            self.keys = header.split(",")[1:] if header else sorted(logs)
        if self.writer is None:  # CSVLogger's own writer would add val_ columns, \r\n
            self.writer = csv.DictWriter(self.csv_file, ["epoch", *self.keys],
                                         lineterminator="\n")
            if self.append_header:
                self.csv_file.write(",".join([self.unit, *self.keys]) + "\n")
        super().on_epoch_end((epoch + 1) * self.per_epoch, {
            k: f"{float(logs[k]):.6g}" if k in logs else "" for k in self.keys})


def current_lr(optimizer) -> float:
    """The rate the optimizer's next update will use (a schedule's value at the
    optimizer's iteration count, or its ``learning_rate`` variable)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(inner.learning_rate.numpy() if hasattr(inner.learning_rate, "numpy")
                 else inner.learning_rate)


class LogLearningRate(keras.callbacks.Callback):
    """Put the rate of the first optimizer into the epoch logs as ``lr`` (all follow one
    schedule by default); ``each`` (``{role: optimizer}``, separate rates) adds one
    ``lr_<role>`` column per optimizer. The rate logged is that of the next update
    (:func:`current_lr`)."""

    def __init__(self, optimizer, each: dict | None = None):
        super().__init__()
        self.optimizer, self.each = optimizer, dict(each or {})

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = current_lr(self.optimizer)
            for role, opt in self.each.items():
                logs[f"lr_{role}"] = current_lr(opt)


class EpochLRDecay(keras.callbacks.Callback):
    """``lr_e = lr_0 / factor**e`` at the start of epoch ``e`` (Luo et al. §4.2), assigned
    to each optimizer's ``learning_rate`` variable and logged as ``lr``.

    The rate is derived from the epoch number (in double precision, then stored in the
    float32 variable), not accumulated, so a resumed run continues the schedule exactly;
    the checkpointed variable holds the rate of the last epoch run. Not a Keras
    ``LearningRateSchedule``: a schedule reads the optimizer's update count, which fp16's
    dynamic loss scaling does not advance on a skipped step (tests/test_harness.py), so
    its decay would fall behind Luo's per-epoch rule; Lin's per-iteration drop is one
    (``make_adam`` with ``ExponentialDecay``).
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
    ``columns_fn()`` (``[n, H, W, 3]`` each, in ``[-1, 1]``; e.g. input | output |
    target), shown as 8-bit RGB (Luo eq. 8 inverted)."""

    def __init__(self, columns_fn, out_dir: Path):
        super().__init__()
        self.columns_fn, self.out_dir = columns_fn, Path(out_dir)

    def on_epoch_end(self, epoch, logs=None):
        columns = [denormalize(c, tf.uint8).numpy() for c in self.columns_fn()]
        rows = [[col[i] for col in columns] for i in range(len(columns[0]))]
        write_grid(rows, self.out_dir / f"epoch_{epoch + 1:04d}.png")
