"""What a noise_gan run shows of itself: the band selection of its images, the fixed
paired test galaxies of its sample grids, and the grids (``samples/step<N>_<iter>.png``).
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common.callbacks import write_grid
from data.lin_pipeline import iterate_checked, paired_test_dataset
from noise_gan.config import ALL_BANDS, NoiseGANConfig
from noise_gan.model import NoiseStep1
from noise_gan.translator import Translator

#: Display order of the sample grids' RGB: (R, G, B) = (i, r, g) for ugriz.
RGB_BANDS = (3, 2, 1)


def select_bands(cfg: NoiseGANConfig, images):
    """``[..., 5]`` ugriz images -> ``[..., len(band_set)]`` (issue 13's band set); the
    tensor itself for ugriz."""
    if cfg.band_set == ALL_BANDS:
        return images
    return tf.gather(images, cfg.band_indices, axis=-1)


def fixed_samples(cfg: NoiseGANConfig, root: Path | None, dataset=None):
    """``(sdss [n, s, s, b], cfht [n, c, c, b])`` paired galaxies for the sample grids: the
    first test pairs of ``root``, or the pairs of the first element of ``dataset``."""
    if dataset is not None:
        first = next(iter(dataset))
        return first["pair_sdss"][:cfg.n_samples], first["pair_cfht"][:cfg.n_samples]
    first = next(iterate_checked(paired_test_dataset(
        root, cfg.n_samples, sdss_size=cfg.sdss_size, cfht_size=cfg.cfht_size)))
    return (select_bands(cfg, first["sdss"][:cfg.n_samples]),
            select_bands(cfg, first["cfht"][:cfg.n_samples]))


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
        write_grid(rows, self.out_dir / f"step{self.step}_{it:07d}.png")


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
