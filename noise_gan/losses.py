"""Loss functions of the noise_gan package: pure tensor functions, float32 scalars.

Lin, Fouchez & Pasquet (2021), eqs. 1-6, as the released code (``shared/notes/lin2021.md``)
computes them: every reconstruction term is a mean squared error (:func:`mse`); the
adversarial loss is the per-band sigmoid cross-entropy, in the non-saturating form for the
generators and noise emulators. Their models are ``noise_gan.model``.

The benchmarks (g) CycleGAN and (h) AugCGAN (``noise_gan.cyclegan``) use Zhu et al.'s
(2017) least-squares GAN losses and L1 cycles (:func:`l1`, ``lsgan_*``).

Images are ``[B, H, W, bands]`` in the stretched domain (``data.lin_pipeline.stretch``);
discriminator logits are ``[B, bands]`` (Lin) or patch maps ``[B, m, m, 1]`` (LSGAN).
"""
from __future__ import annotations

import tensorflow as tf

from data.surveys import CFHT, SDSS

#: Lin eq. 6 / notes: CFHT regridded to the SDSS grid is multiplied by the ratio of the
#: pixel scales, 0.396 / 0.187 (the released code's ``ratio_pixel``: "conservation of
#: integrated rescaled fluxes"; in the square-root stretched domain a flux ratio of the
#: pixel areas, (0.396/0.187)^2, becomes roughly its square root).
PIXEL_RATIO = SDSS.pixel_scale / CFHT.pixel_scale


def f32(t):
    """``t`` cast to float32 (losses, and images summed with noise, are float32 under
    mixed precision)."""
    return tf.cast(t, tf.float32)


# --- Lin et al. eqs. 1-6 ------------------------------------------------------------------

def mse(a, b):
    """Mean squared error over every pixel and band (Lin eqs. 1, 4, 5, 6: the ``||.||_2``
    of the paper is the released code's ``reduce_mean((a - b)**2)``)."""
    return tf.reduce_mean(tf.square(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def band_cross_entropy(logits, label: float, reduction: str = "sum"):
    """Sigmoid cross-entropy of per-band logits ``[B, bands]`` against a constant label,
    reduced over bands (``"sum"``: the ``sum_p`` of Lin eqs. 2-3; ``"mean"``: the released
    code) and averaged over the batch; a float32 scalar."""
    logits = tf.cast(logits, tf.float32)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label),
                                                 logits=logits)
    per_image = tf.reduce_sum(ce, -1) if reduction == "sum" else tf.reduce_mean(ce, -1)
    return tf.reduce_mean(per_image)


def discriminator_loss(real_logits, fake_logits, reduction: str = "sum"):
    """One domain's term of Lin eq. 2: ``-sum_p [log D_p(real) + log(1 - D_p(fake))]``."""
    return (band_cross_entropy(real_logits, 1.0, reduction)
            + band_cross_entropy(fake_logits, 0.0, reduction))


def generator_adversarial_loss(fake_logits, reduction: str = "sum"):
    """One domain's term of Lin eq. 3, non-saturating: ``-sum_p log D_p(fake)``."""
    return band_cross_entropy(fake_logits, 1.0, reduction)


def identity_terms(g_x2y, g_y2x, px, py):
    """Lin eq. 4 on pairs, before noise:
    ``(||G^{X->Y}(px) - py||, ||G^{Y->X}(py) - px||)``."""
    return mse(g_x2y(px, training=True), py), mse(g_y2x(py, training=True), px)


def cycle_terms(g_x2y, g_y2x, x, y, noise_y=None, noise_x=None):
    """Lin eq. 5 halves: ``(||G^{Y->X}(G^{X->Y}(x) + n_Y) - x||, ||G^{X->Y}(G^{Y->X}(y) +
    n_X) - y||, G^{X->Y}(x), G^{Y->X}(y))``; noise (None = none) is added between the
    halves, as in the released code. The half-cycle outputs are returned before noise."""
    y_from_x = g_x2y(x, training=True)
    x_from_y = g_y2x(y, training=True)
    y_mid = y_from_x if noise_y is None else f32(y_from_x) + f32(noise_y)
    x_mid = x_from_y if noise_x is None else f32(x_from_y) + f32(noise_x)
    cyc_x = mse(g_y2x(y_mid, training=True), x)
    cyc_y = mse(g_x2y(x_mid, training=True), y)
    return cyc_x, cyc_y, y_from_x, x_from_y


def to_sdss_grid(cfht_like, sdss_size: int):
    """Lin eq. 6 helper: a CFHT-grid image ``[B, 136, 136, b]`` regridded bilinearly to
    ``[B, sdss_size, sdss_size, b]`` and multiplied by ``PIXEL_RATIO`` (released code)."""
    out = tf.image.resize(tf.cast(cfht_like, tf.float32), [sdss_size, sdss_size],
                          method="bilinear")
    return PIXEL_RATIO * out


def pseudo_identity_loss(x, y, y_from_x, x_from_y, sdss_size: int):
    """Lin eq. 6, ``||G^{X->Y}(x) - x|| + ||G^{Y->X}(y) - y||`` on unpaired images.

    The two sides of each term live on different grids (64 vs 136 px). Our reading,
    which is the released code's: both comparisons are made on the SDSS grid, so
    ``G^{X->Y}(x)`` (136 px) is regridded to 64 px and compared with ``x``, and
    ``G^{Y->X}(y)`` (64 px) is compared with ``y`` regridded to 64 px; each regridded
    CFHT-grid image is bilinearly resized and scaled by ``PIXEL_RATIO``.
    """
    return (mse(to_sdss_grid(y_from_x, sdss_size), x)
            + mse(x_from_y, to_sdss_grid(y, sdss_size)))


# --- benchmarks (g), (h): Zhu et al. (2017) ---------------------------------------------

def l1(a, b):
    """Mean absolute error over every pixel (or latent unit) and band: the ``||.||_1`` of
    Zhu et al.'s cycle loss and of Almahairi et al.'s cycle and supervised losses."""
    return tf.reduce_mean(tf.abs(f32(a) - f32(b)))


def lsgan_discriminator_loss(real, fake):
    """LSGAN critic loss (Zhu et al. §4, halved as they do for D):
    ``1/2 [mean (D(real) - 1)^2 + mean D(fake)^2]`` over patches and batch."""
    return 0.5 * (tf.reduce_mean(tf.square(f32(real) - 1.0))
                  + tf.reduce_mean(tf.square(f32(fake))))


def lsgan_generator_loss(fake):
    """LSGAN generator loss (Zhu et al. §4): ``mean (D(G(x)) - 1)^2``."""
    return tf.reduce_mean(tf.square(f32(fake) - 1.0))
