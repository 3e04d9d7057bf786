"""Per-pixel uncertainty of a pseudo-HSC image: many draws of the translation, their
mean and spread.

Two sources of draws, alone or together:

* a **deep ensemble** (Lakshminarayanan et al. 2017): one chain of networks per trained
  model, e.g. the training seeds of ``experiments/table1.py --seeds 3``;
* **MC dropout** (Gal & Ghahramani 2016): the U-Net's Dropout(0.5) layers (Luo §3.1,
  pix2pix's only noise source) kept on at inference, :func:`mc_dropout`. BatchNorm keeps
  its moving statistics, as at ordinary inference: only the dropout masks vary.

The spread of the draws is *model* uncertainty on this input: how much networks that fit
the training set equally well disagree. It does not cover the shift between the
training surveys and real data, nor the HSC noise of a real observation.

Units: draws are pixels ``[0, 255]`` (Luo eq. 8 inverted, not rounded);
:func:`flux_moments` turns them into nanomaggies through the inverse viewer stretch
(``data.render.inverse_render``), draw by draw, since the stretch is nonlinear.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from common.images import denormalize
from data.render import inverse_render
from data.surveys import Survey
from pix2wgan.model import chain


class AlwaysDropout(keras.layers.Dropout):
    """``Dropout`` that drops at inference too (``training`` ignored): MC dropout."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


def mc_dropout(net: keras.Model, seed: int = 0) -> keras.Model:
    """A copy of ``net`` (same weights) whose Dropout layers stay on when called with
    ``training=False``, while BatchNormalization keeps using (and never updates) its
    moving statistics. ``net(x, training=True)`` would instead normalise with the batch's
    own statistics and update the moving ones.

    Every call draws new masks; two copies made with the same ``seed`` give the same
    sequence of draws. Dropout layer ``i`` (in layer order) is seeded ``seed + i``.

    Returns:
        ``keras.Model`` with ``net``'s inputs and outputs (``[B, H, W, 3]`` in [-1, 1]).
    """
    count = iter(range(len(net.layers)))

    def clone(layer):
        if isinstance(layer, keras.layers.Dropout):
            cfg = layer.get_config()
            cfg["seed"] = seed + next(count)
            return AlwaysDropout.from_config(cfg)
        return layer.__class__.from_config(layer.get_config())
    copy = keras.models.clone_model(net, clone_function=clone)
    copy.set_weights(net.get_weights())
    return copy


class Sampler:
    """Draws of a translation from an ensemble of model chains, with or without dropout.

    Args:
        chains: one tuple of ``keras.Model`` per trained model, applied in order:
            ``(g,)`` for Pix2WGAN, ``(g1, g2)`` for the Cascade Pix2WGAN (G2∘G1).
        samples: draws per chain. 1: the networks as they are (dropout off, the same
            output as ordinary prediction); > 1: every network of the chain through
            :func:`mc_dropout`.
        seed: seeds the dropout masks (chain ``c``, net ``j`` get
            ``seed + 1000 * (c * len(chain) + j)``): the same seed gives the same draws.
    Attributes:
        k: draws per input, ``len(chains) * samples``.
        fns: one ``tf.function`` per chain, ``[B, H, W, 3]`` in [-1, 1] -> the same
            (one draw each).
    """

    def __init__(self, chains: Sequence[Sequence[keras.Model]], samples: int = 1,
                 seed: int = 0):
        if not chains or any(not c for c in chains):
            raise ValueError("Sampler needs at least one chain of at least one network")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.samples, self.k = samples, len(chains) * samples
        self.chains = [tuple(c) if samples == 1 else
                       tuple(mc_dropout(g, seed + 1000 * (i * len(c) + j))
                             for j, g in enumerate(c))
                       for i, c in enumerate(chains)]
        self.fns = [tf.function(chain(c), reduce_retracing=True) for c in self.chains]

    def draws(self, x) -> np.ndarray:
        """``x`` ``[B, H, W, 3]`` float32 in [-1, 1] (Luo eq. 8) -> ``[K, B, H, W, 3]``
        float32 pixels in [0, 255] (denormalised, not rounded); draws are chain-major
        (draw ``c * samples + s`` is sample ``s`` of chain ``c``)."""
        x = tf.convert_to_tensor(x, tf.float32)
        out = [denormalize(fn(x)).numpy() for fn in self.fns
               for _ in range(self.samples)]
        return np.stack(out)


def moments(draws) -> tuple[np.ndarray, np.ndarray]:
    """``[K, ...]`` -> ``(mean, std)`` over the draws (axis 0), float32; the std has
    ``ddof=1`` (zeros when ``K == 1``: one draw says nothing about the spread)."""
    d = np.asarray(draws, np.float64)
    mean = d.mean(axis=0)
    std = d.std(axis=0, ddof=1) if len(d) > 1 else np.zeros_like(mean)
    return mean.astype(np.float32), std.astype(np.float32)


def flux_moments(draws, survey: Survey) -> tuple[np.ndarray, np.ndarray]:
    """Pixel draws ``[K, ..., H, W, 3]`` in [0, 255] (JPEG order R, G, B) ->
    ``(mean, std)`` in nanomaggies per native pixel, ``[..., H, W, 3]`` float32 in
    ``survey.rgb_bands`` order (blue, green, red). Every draw is inverted
    (``data.render.inverse_render``) before averaging: the stretch is nonlinear, so the
    inverse of the mean image is not the mean flux. Where the inverse fails (clipped
    planes, ``v <= 0``) the draws fail alike; see its docstring."""
    d = np.asarray(draws, np.float32)
    return moments(inverse_render(d, survey))
