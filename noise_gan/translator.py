"""The trained generators (+ noise emulators) of a noise_gan run, as one object for
prediction, figures, sample grids and the noise checks (:class:`Translator`).

Load one from a run folder with ``noise_gan.trainer.load_translator``.
"""
from __future__ import annotations

import tensorflow as tf

from noise_gan import cyclegan
from noise_gan import networks as nets
from noise_gan.config import NoiseGANConfig


class Translator:
    """Trained generators (+ noise emulators) of a run, for prediction and figures.

    Images are stretched-domain float32 tensors, batched: SDSS ``[n, 64, 64, 5]``, CFHT
    ``[n, 136, 136, 5]``. With ``noise=True`` and a variant that has noise emulators
    ("ours", "f"), freshly drawn emulator noise is added to the generator output
    (``F = G + NE``); ``seed`` (an int) makes that draw reproducible.

    Benchmarks (g)/(h) work on CFHT regridded to the SDSS grid: ``sdss_to_cfht`` returns
    ``[n, 64, 64, 5]`` regridded-CFHT images and ``cfht_to_sdss`` takes 136 px CFHT (or
    64 px regridded CFHT) and regrids it first; ``cfht_out_size`` is the side of the
    CFHT-domain images the translator returns (136, or 64 for (g)/(h)). (h) draws its
    latent code ``z ~ N(0, I)`` per image with ``noise=True`` (from the stateless seed
    ``(seed, direction)`` when ``seed`` is an int) and uses ``z = 0``, the prior's mean,
    with ``noise=False``; ``latent_dim`` is its size (0 for every other variant).
    """

    def __init__(self, cfg: NoiseGANConfig, g_x2y, g_y2x, ne_x=None, ne_y=None,
                 iteration: int = 0):
        self.cfg, self.iteration = cfg, iteration
        self.g_x2y, self.g_y2x, self.ne_x, self.ne_y = g_x2y, g_y2x, ne_x, ne_y
        self.cfht_out_size = cfg.cfht_out_size
        self.latent_dim = cyclegan.latent_dim_of(cfg.variant)

    @property
    def has_noise(self) -> bool:
        return self.ne_x is not None and self.ne_y is not None

    def _seeds(self, n, size, seed):
        s = None if seed is None else tf.constant([int(seed), size], tf.int64)
        return nets.sample_noise_inputs(int(n), size, self.cfg.bands, seed=s)

    def _noise(self, emulator, n, size, seed):
        if not self.has_noise:
            raise ValueError(f"variant {self.cfg.variant} has no noise emulators")
        return tf.cast(emulator(list(self._seeds(n, size, seed)), training=False),
                       tf.float32)

    def noise_sdss(self, n: int, seed=None) -> tf.Tensor:
        """``[n, 64, 64, bands]`` samples of ``NE^X`` (SDSS noise, stretched units)."""
        return self._noise(self.ne_x, n, self.cfg.sdss_size, seed)

    def noise_cfht(self, n: int, seed=None) -> tf.Tensor:
        """``[n, 136, 136, bands]`` samples of ``NE^Y`` (CFHT noise, stretched units)."""
        return self._noise(self.ne_y, n, self.cfg.cfht_size, seed)

    def _generate(self, generator, images, noise, seed, direction: int):
        """``generator(images)``; for (h) with a latent code (see the class docstring)."""
        images = tf.convert_to_tensor(images, tf.float32)   # numpy or tensor alike
        if not self.latent_dim:
            return tf.cast(generator(images, training=False), tf.float32)
        shape = (tf.shape(images)[0], self.latent_dim)
        if not noise:
            z = tf.zeros(shape)
        elif seed is None:
            z = tf.random.normal(shape)
        else:
            z = tf.random.stateless_normal(shape, tf.constant([int(seed), direction],
                                                              tf.int64))
        return tf.cast(generator([images, z], training=False), tf.float32)

    def sdss_to_cfht(self, x, noise: bool = True, seed=None) -> tf.Tensor:
        """``F^{X->Y}(x) = G^{X->Y}(x) [+ NE^Y(z)]``: ``[n, 64, 64, b] -> [n, 136, 136, b]``
        (``[n, 64, 64, b]`` regridded CFHT for (g)/(h): ``cfht_out_size``)."""
        out = self._generate(self.g_x2y, x, noise, seed, 1)
        if noise and self.has_noise:
            out = out + self.noise_cfht(tf.shape(out)[0], seed)
        return out

    def cfht_to_sdss(self, y, noise: bool = True, seed=None) -> tf.Tensor:
        """``F^{Y->X}(y) = G^{Y->X}(y) [+ NE^X(z)]``: ``[n, 136, 136, b] -> [n, 64, 64, b]``
        ((g)/(h): 136 px CFHT is regridded to 64 px first; 64 px input is taken as
        already regridded)."""
        if self.cfg.regridded and y.shape[1] != self.cfht_out_size:
            y = cyclegan.regrid_cfht(y, self.cfht_out_size)
        out = self._generate(self.g_y2x, y, noise, seed, 2)
        if noise and self.has_noise:
            out = out + self.noise_sdss(tf.shape(out)[0], seed)
        return out
