"""Luo et al. Table 1 scoring: a generator's predictions (or the untransformed inputs)
against the targets of a split, streamed through ``data.pipeline``."""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tqdm import tqdm

from common.images import denormalize
from common.metrics import MetricSet
from data import pipeline


def score_split(root: Path, source: str, target: str, *, predict_fn=None,
                batch_size: int = 32, image_size: int = 128, ids=None,
                split: str = "test", progress: bool = True, desc: str = "",
                extras=()) -> MetricSet:
    """RMSE / PSNR / SSIM of ``predict_fn(source)`` (or of ``source`` itself) against
    ``target`` over a split, per image on [0, 255].

    Args:
        predict_fn: ``[B, H, W, 3]`` float32 in [-1, 1] -> same; ``None`` compares the
            untransformed input with the target (Table 1's "DECaLS–HSC" rows).
        extras: further accumulators fed the same ``(pred, real)`` uint8 batches
            (e.g. ``common.perceptual.PerceptualSet``, ``common.metrics.SkyColour``).
    Returns:
        a ``MetricSet`` (mean, std and N per metric). Predictions are rounded to uint8
        first, exactly as a saved pseudo-HSC image would be.
    """
    ds = pipeline.make_dataset(root, split, source, target, batch_size, training=False,
                               ids=ids, image_size=image_size, progress=progress)
    scores = MetricSet()
    bar = tqdm(desc=desc or f"{source}->{target}", unit="img", disable=not progress)
    with pipeline.data_errors(ds):
        for x_low, x_high in ds:
            x = x_low if predict_fn is None else predict_fn(x_low)
            pred = denormalize(x, tf.uint8).numpy()
            real = denormalize(x_high, tf.uint8).numpy()
            scores.update(pred, real)
            for acc in extras:
                acc.update(pred, real)
            bar.update(int(x_low.shape[0]))
    bar.close()
    return scores
