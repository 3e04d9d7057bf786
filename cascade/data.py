"""Triplet batches ``(SDSS, bridge, HSC)`` for the cascade, built from
:func:`data.pipeline.make_dataset` (same reading, checks, scaling and augmentation).

A triplet stream is two paired streams, ``source -> bridge`` and ``source -> target``,
made with the same ``seed`` and zipped: with a seed, the pipeline's shuffling and its
per-pair D4 augmentation (one stateless seed per element) are deterministic, so both
streams visit the galaxies in the same order with the same flip/rotation, and the
three images of a galaxy stay aligned (``tests/test_cascade.py`` checks it). The source
image is read twice (a 128 px JPEG decode, negligible next to a training step).

Degraded-HSC bridge (§4.3: "degraded HSC images (e.g., reducing the resolution of HSC
images by approximately half)"): :func:`degrade` blurs HSC with a Gaussian of
σ = ``DEGRADE_SIGMA`` px, averages it down by 2 (0.168″ -> 0.336″/px, a little coarser
than DECaLS' 0.262″), resamples it back to the input grid with bicubic interpolation
(the networks need equal sizes) and adds Gaussian noise of ``DEGRADE_NOISE`` (in [-1, 1]
units; ≈ 4 grey levels), reproducibly per element given the seed.
"""
from __future__ import annotations

import math
from pathlib import Path

import tensorflow as tf

from data import pipeline

DEGRADE_FACTOR = 2
DEGRADE_SIGMA = 1.0
DEGRADE_NOISE = 0.03


def _gaussian_kernel(sigma: float, channels: int) -> tf.Tensor:
    r = max(1, math.ceil(3 * sigma))
    x = tf.range(-r, r + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * (x / sigma) ** 2)
    k = k / tf.reduce_sum(k)
    k2 = k[:, None] * k[None, :]
    return tf.tile(k2[:, :, None, None], [1, 1, channels, 1])


def degrade(x: tf.Tensor, seed: tf.Tensor | None = None, *, factor=DEGRADE_FACTOR,
            sigma=DEGRADE_SIGMA, noise=DEGRADE_NOISE) -> tf.Tensor:
    """HSC ``[B, S, S, 3]`` float32 in [-1, 1] -> degraded HSC, same shape and range.

    Blur (σ px) -> area-downsample by ``factor`` -> bicubic back to S -> + N(0, noise²)
    (stateless, from ``seed`` ``[2]`` int; no noise when ``seed`` is None) -> clip.
    """
    size = tf.shape(x)[1:3]
    k = _gaussian_kernel(sigma, 3)
    pad = k.shape[0] // 2
    blurred = tf.nn.depthwise_conv2d(
        tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT"), k,
        strides=[1, 1, 1, 1], padding="VALID")
    small = tf.image.resize(blurred, size // factor, method="area")
    y = tf.image.resize(small, size, method="bicubic")
    if seed is not None and noise > 0:
        y = y + noise * tf.random.stateless_normal(tf.shape(y), seed)
    return tf.clip_by_value(y, -1.0, 1.0)


def make_triplets(root: str | Path, split: str, source: str, bridge: str, target: str,
                  batch_size: int, *, training: bool, seed: int = 0, ids=None,
                  image_size: int = 128, drop_remainder: bool | None = None,
                  progress: bool | None = None, epochs: tuple[int, int] = (0, 1)):
    """Batches ``(source, bridge, target)``, each ``[B, S, S, 3]`` float32 in [-1, 1].

    ``bridge``: a survey name, or ``"degraded-hsc"`` (:func:`degrade` applied to the
    target). ``seed`` is required (an int): it keeps the zipped streams aligned.
    ``epochs``: as in :func:`data.pipeline.make_dataset` (training only); the degraded
    bridge's noise of global batch ``i`` (counted from epoch 0) is drawn from
    ``(seed, i)``, so it too resumes as an uninterrupted run.
    Returns ``(dataset, checked)``: ``checked`` is the ``source -> target`` stream, to
    pass to :func:`data.pipeline.data_errors`.
    """
    kw = dict(training=training, seed=int(seed), ids=ids, image_size=image_size,
              drop_remainder=drop_remainder, progress=progress, epochs=epochs)
    to_target = pipeline.make_dataset(root, split, source, target, batch_size, **kw)
    if bridge == "degraded-hsc":
        first, last = epochs if training else (0, 1)
        per_epoch = int(to_target.cardinality()) // max(1, last - first)
        noise_seeds = tf.data.Dataset.random(seed=int(seed) + 1).batch(2).skip(
            first * per_epoch)
        ds = tf.data.Dataset.zip(to_target, noise_seeds).map(
            lambda pair, s: (pair[0], degrade(pair[1], s), pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        to_bridge = pipeline.make_dataset(root, split, source, bridge, batch_size, **kw)
        ds = tf.data.Dataset.zip(to_bridge, to_target).map(
            lambda a, b: (a[0], a[1], b[1]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), to_target
