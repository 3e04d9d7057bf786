"""Image normalisation shared by every model family (Luo et al. eq. 8).

Pixels of the 8-bit RGB cutouts, ``[0, 255]``, map to the networks' ``[-1, 1]`` and back.
"""
from __future__ import annotations

import tensorflow as tf


def normalize(x) -> tf.Tensor:
    """Pixels ``[0, 255]`` (uint8 or float, any shape) -> float32 ``[-1, 1]``.

    Luo et al. eq. 8: ``x* = (x - 127.5) / 127.5``. Inverse: :func:`denormalize`.
    """
    return (tf.cast(x, tf.float32) - 127.5) / 127.5


def denormalize(x, dtype=tf.float32) -> tf.Tensor:
    """float ``[-1, 1]`` (e.g. generator output, any shape) -> pixels ``[0, 255]``.

    Inverts Luo eq. 8, ``x = 127.5 x* + 127.5``, then clips to ``[0, 255]``. With
    ``dtype=tf.uint8`` the values are rounded to the nearest integer first, so
    ``denormalize(normalize(u), tf.uint8) == u`` for any uint8 ``u``.
    """
    x = tf.clip_by_value(tf.cast(x, tf.float32) * 127.5 + 127.5, 0.0, 255.0)
    if tf.as_dtype(dtype) == tf.uint8:
        return tf.cast(tf.round(x), tf.uint8)
    return tf.cast(x, dtype)
