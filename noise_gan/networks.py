"""Networks of Lin, Fouchez & Pasquet (2021), Fig. 2: autoencoders (a), generators (b, c),
per-band discriminators (d), per-band noise emulators (e) with the 7x7 symmetric filter (f),
and the fixed high-pass filter of the discriminators (g).

Conventions (every builder):
  * channels-last ``float32`` images ``[B, H, W, bands]``, bands = 5 (u, g, r, i, z) by
    default, in the paper's stretched domain ``I = sign(I0) (sqrt(|I0| + 1) - 1)``, so
    roughly ``[-1, 10]``;
  * SDSS cutouts are 64x64, CFHT cutouts 136x136 (§IV A);
  * SAME-padded convolutions, Glorot-uniform ("Xavier") kernels, biases initialised to 0.1,
    LeakyReLU slope 0.2 after every convolution *including the last image layer* and every
    hidden FC layer, no normalisation layers, no skips: this follows the authors' released
    TF1 code (``/work/shared/notes/lin2021.md``; the paper says "Leaky ReLUs ... unless
    otherwise noted");
  * down-sampling is 2x2 average pooling, up-sampling nearest-neighbour x2 (§III B);
  * ``width`` scales every convolutional channel count: the paper's 64 / 128 / 256 are
    ``width`` / ``2 width`` / ``4 width`` (``width=64`` is the paper);
  * every builder returns a named functional ``keras.Model`` and raises ``ValueError`` on an
    unknown kind or an impossible size.

Mixed precision (``keras.mixed_precision.set_global_policy("mixed_float16")``):
  * image outputs (autoencoders, generators) come from a float32 last convolution, so losses
    are computed in float32;
  * the fixed high-pass filter, the 2D FFT, the whole Fourier branch and the head of the
    discriminator run in float32 (see ``build_discriminator`` for why), only its pixel branch
    runs in the policy's dtype; the logits are float32;
  * the noise emulators run entirely in float32 (they are tiny, and the noise amplitude is a
    small number that we do not want rounded to 11 bits).

The custom layers the builders assemble (symmetric padding, pixel shuffle, ACM, the
emulators' per-band FC layers and symmetric filter, ...) are in ``noise_gan.layers``; the
fixed filters of Fig. 2(g) and the Fourier transform, with their layers, are here.
"""
from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf
from keras import layers

from noise_gan.layers import (ACM, PACKAGE, ApplyAmplitude, BandSlice, BandwiseDense,
                              GlobalMeanMaxMin, PixelShuffle, SymmetricFilter, SymmetricPad,
                              bias_init, kernel_init)

#: LeakyReLU slope everywhere (Fig. 2 caption; released code uses tf.nn.leaky_relu's 0.2).
LEAK = 0.2
#: Up-sampling kinds of the autoencoders and generators: "nearest" is the paper's model,
#: "pixelshuffle" is ablation (e) (§IV B, Shi et al. 2016 sub-pixel units).
UPSAMPLES = ("nearest", "pixelshuffle")
#: Translation directions of ``build_generator``.
DIRECTIONS = ("sdss_to_cfht", "cfht_to_sdss")
#: Hidden units of the discriminator head (Fig. 2(d): FC 32 -> FC 1); not scaled by width.
HEAD_UNITS = 32
#: Border the noise emulators' VALID 7x7 convolution eats: z2 is ``size + 6`` square.
NOISE_PAD = 6

#: Fig. 2(g): the fixed 5x5 high-pass filter of the discriminators and of the Fig. 6
#: evaluation. Its entries sum to 0 (a constant image filters to 0) and its response at the
#: Nyquist frequency (pi, pi) is -128.
HIGHPASS_5X5 = np.array(
    [[-1, 3, -4, 3, -1],
     [3, -8, 10, -8, 3],
     [-4, 10, -12, 10, -4],
     [3, -8, 10, -8, 3],
     [-1, 3, -4, 3, -1]], dtype=np.float32)


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


# --------------------------------------------------------------------------------------
# Fixed filters and the Fourier transform (pure functions, float32)
# --------------------------------------------------------------------------------------

def highpass(x) -> tf.Tensor:
    """Fig. 2(g) high-pass filter, applied to every channel separately (VALID).

    Args:
        x: ``[B, H, W, C]`` images (any float dtype; computed in float32).

    Returns:
        ``[B, H-4, W-4, C]`` float32. The filter is symmetric, so convolution and
        correlation coincide.
    """
    x = tf.cast(x, tf.float32)
    channels = x.shape[-1]
    if channels is None:
        raise ValueError("highpass needs a static number of channels")
    kernel = tf.constant(np.tile(HIGHPASS_5X5[:, :, None, None], (1, 1, channels, 1)))
    return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding="VALID")


def _fft2d_channels(x) -> tf.Tensor:
    """Complex 2D FFT over H, W of every channel: ``[B, H, W, C]`` -> ``[B, H, W, C]``
    complex64. No shift (the zero frequency stays at [0, 0]) and no normalisation,
    as in the released code."""
    planes = tf.transpose(tf.cast(x, tf.float32), [0, 3, 1, 2])
    # tf.complex, not a cast: the cast's gradient warns on every traced step that it
    # drops the imaginary part (which is exactly right for a real input).
    spectrum = tf.signal.fft2d(tf.complex(planes, tf.zeros_like(planes)))
    return tf.transpose(spectrum, [0, 2, 3, 1])


def fourier_amplitude(x) -> tf.Tensor:
    """|2D FFT| of every channel (Fig. 6 evaluation): ``[B, H, W, C]`` -> ``[B, H, W, C]``
    float32 >= 0, unshifted and unnormalised (so the zero frequency is at [0, 0] and the
    highest frequency at the centre, as in the paper's Fig. 6). The paper applies
    ``highpass`` first; this function does not."""
    return tf.abs(_fft2d_channels(x))


def fourier_parts(x) -> tf.Tensor:
    """Real and imaginary parts of the unshifted, unnormalised 2D FFT as channels:
    ``[B, H, W, C]`` -> ``[B, H, W, 2C]`` float32 ordered (re_0, im_0, re_1, im_1, ...)."""
    spectrum = _fft2d_channels(x)
    parts = tf.stack([tf.math.real(spectrum), tf.math.imag(spectrum)], axis=-1)
    shape = tf.shape(parts)
    return tf.reshape(parts, tf.concat([shape[:3], [2 * x.shape[-1]]], 0))


# --------------------------------------------------------------------------------------
# The fixed filters as layers (the learned and reshaping layers are in noise_gan.layers)
# --------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class HighPass(layers.Layer):
    """Layer wrapper of :func:`highpass`; always float32 (``[B,H,W,C] -> [B,H-4,W-4,C]``)."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, x):
        return highpass(x)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h - 4, None if w is None else w - 4, c)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FourierParts(layers.Layer):
    """Layer wrapper of :func:`fourier_parts`; always float32
    (``[B,H,W,C] -> [B,H,W,2C]``, real and imaginary parts of the FFT)."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, x):
        return fourier_parts(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], 2 * input_shape[3])


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

def _conv(x, filters: int, kernel: int, name: str, padding: str = "same", dtype=None):
    """Conv(k x k, SAME unless told, Glorot, bias 0.1) -> LeakyReLU(0.2)."""
    x = layers.Conv2D(filters, kernel, padding=padding, kernel_initializer=kernel_init(),
                      bias_initializer=bias_init(), dtype=dtype, name=name)(x)
    return layers.LeakyReLU(LEAK, dtype=dtype, name=f"{name}_act")(x)


def _image_conv(x, channels: int, name: str):
    """Last image layer: conv5 -> LeakyReLU (as in the released code), both float32 so that
    mixed-precision models return float32 images."""
    return _conv(x, channels, 5, name, dtype="float32")


def _pool(x, name: str, dtype=None):
    """2x2 average pooling, stride 2, SAME (TF1 ``avg_pool`` of the released code: an odd
    size n goes to ceil(n / 2), the border windows averaging only the valid pixels)."""
    return layers.AveragePooling2D(2, padding="same", dtype=dtype, name=name)(x)


def _upsample(x, kind: str, name: str):
    """x2 up-sampling: nearest neighbour (paper) or pixel shuffle (ablation (e))."""
    if kind == "nearest":
        return layers.UpSampling2D(2, interpolation="nearest", name=name)(x)
    if kind == "pixelshuffle":
        channels = x.shape[-1]
        if channels % 4:
            raise ValueError(f"pixelshuffle needs channels divisible by 4 before {name}, "
                             f"got {channels}: use an even width")
        return PixelShuffle(2, name=name)(x)
    raise ValueError(f"unknown upsample {kind!r}; choose one of {', '.join(UPSAMPLES)}")


# --------------------------------------------------------------------------------------
# Autoencoders and generators: Fig. 2(a)-(c)
# --------------------------------------------------------------------------------------

def build_autoencoder(size: int, bands: int = 5, width: int = 64, upsample: str = "nearest",
                      name: str = "autoencoder") -> keras.Model:
    """Fig. 2(a) autoencoder (§III B), layers of the released code:

    conv3-w -> pool -> conv3-2w -> pool -> conv3-4w -> pool -> conv3-4w -> up -> conv3-4w
    -> up -> conv3-2w -> up -> conv5-w -> conv5-w -> conv5-bands.
    Sizes: 64 -> 32 -> 16 -> 8 -> back (SDSS), 136 -> 68 -> 34 -> 17 -> back (CFHT).

    Args:
        size: image side, divisible by 8 (64 for SDSS, 136 for CFHT).
        upsample: "nearest" (paper) or "pixelshuffle" (channels shrink 4x at each
            up-sampling, as in the released generators; needs an even ``width``).

    Returns:
        ``keras.Model``: ``[B, size, size, bands]`` stretched images ->
        ``[B, size, size, bands]`` float32 (smoothed, noise-free reconstruction).
    """
    _check_choice(upsample, UPSAMPLES, "upsample")
    if size % 8:
        raise ValueError(f"autoencoder size must be divisible by 8 (3 poolings), got {size}")
    inputs = keras.Input((size, size, bands), name="image")
    x = _conv(inputs, width, 3, "conv1")
    x = _pool(x, "p1")
    x = _conv(x, 2 * width, 3, "conv2")
    x = _pool(x, "p2")
    x = _conv(x, 4 * width, 3, "conv3")
    x = _pool(x, "p3")
    x = _conv(x, 4 * width, 3, "conv4")
    x = _upsample(x, upsample, "up1")
    x = _conv(x, 4 * width, 3, "conv5")
    x = _upsample(x, upsample, "up2")
    x = _conv(x, 2 * width, 3, "conv6")
    x = _upsample(x, upsample, "up3")
    x = _conv(x, width, 5, "conv7")
    x = _conv(x, width, 5, "conv8")
    outputs = _image_conv(x, bands, "conv9")
    return keras.Model(inputs, outputs, name=name)


def _check_generator_sizes(sdss_size: int, cfht_size: int) -> None:
    # SDSS -> CFHT: s -> (pad 2) s + 4 -> (x2) 2s + 8; CFHT -> SDSS: c -> c/8 -> c/2 ->
    # (VALID conv5) c/2 - 4. Both hold for the paper's 64 / 136 and for 8k / 16k + 8.
    if sdss_size % 8 or sdss_size <= 0:
        raise ValueError(f"sdss_size must be a positive multiple of 8, got {sdss_size}")
    if cfht_size != 2 * (sdss_size + 4):
        raise ValueError(f"cfht_size must be 2 * (sdss_size + 4) = {2 * (sdss_size + 4)} "
                         f"(symmetric pad 2, then x2; 64 -> 136 in the paper), "
                         f"got {cfht_size}")


def build_generator(direction: str, bands: int = 5, width: int = 64,
                    upsample: str = "nearest", sdss_size: int = 64, cfht_size: int = 136,
                    name: str | None = None) -> keras.Model:
    """Fig. 2(b)/(c) generators (§III C), layers of the released code.

    ``"sdss_to_cfht"`` (Fig. 2(b)): conv3-w (64) -> pool -> conv3-2w -> pool -> conv3-2w
    -> pool -> conv3-4w (8) -> up -> conv3-2w (16) -> up -> conv3-2w (32) -> up -> conv3-2w
    (64) -> symmetric pad 2 (68) -> up (136) -> conv5-w -> conv5-w -> conv5-bands.

    ``"cfht_to_sdss"`` (Fig. 2(c)): conv3-w (136) -> pool -> conv3-w (68) -> pool ->
    conv3-2w (34) -> pool -> conv3-4w (17) -> up -> conv3-2w (34) -> up (68) -> conv5-w
    VALID (64: the paper's "Cropping") -> conv5-w -> conv5-bands.

    With ``upsample="pixelshuffle"`` (ablation (e)) every x2 up-sampling above, including
    68 -> 136, is a pixel shuffle of the preceding maps (channels / 4), as in the released
    code; ``width`` must then be even.

    Sizes: any ``sdss_size`` divisible by 8 with ``cfht_size == 2 * (sdss_size + 4)``
    (paper: 64 and 136; tiny tests: 8 and 24, 16 and 40). Anything else raises.

    Returns:
        ``keras.Model``: ``[B, sdss_size, sdss_size, bands] -> [B, cfht_size, cfht_size,
        bands]`` (or the reverse) float32 noise-free stretched images. Default name
        ``f"G_{direction}"``.
    """
    _check_choice(direction, DIRECTIONS, "direction")
    _check_choice(upsample, UPSAMPLES, "upsample")
    _check_generator_sizes(sdss_size, cfht_size)
    name = name or f"G_{direction}"
    if direction == "sdss_to_cfht":
        inputs = keras.Input((sdss_size, sdss_size, bands), name="sdss_image")
        x = _conv(inputs, width, 3, "conv1")
        x = _pool(x, "p1")
        x = _conv(x, 2 * width, 3, "conv2")
        x = _pool(x, "p2")
        x = _conv(x, 2 * width, 3, "conv3")
        x = _pool(x, "p3")
        x = _conv(x, 4 * width, 3, "conv4")          # 8
        x = _upsample(x, upsample, "up1")
        x = _conv(x, 2 * width, 3, "conv5")          # 16
        x = _upsample(x, upsample, "up2")
        x = _conv(x, 2 * width, 3, "conv6")          # 32
        x = _upsample(x, upsample, "up3")
        x = _conv(x, 2 * width, 3, "conv7")          # 64
        x = SymmetricPad(2, name="sympad")(x)        # 68
        x = _upsample(x, upsample, "up4")            # 136
        x = _conv(x, width, 5, "conv8")
        x = _conv(x, width, 5, "conv9")
        outputs = _image_conv(x, bands, "conv10")
    else:
        inputs = keras.Input((cfht_size, cfht_size, bands), name="cfht_image")
        x = _conv(inputs, width, 3, "conv1")         # 136
        x = _pool(x, "p1")
        x = _conv(x, width, 3, "conv2")              # 68
        x = _pool(x, "p2")
        x = _conv(x, 2 * width, 3, "conv3")          # 34
        x = _pool(x, "p3")
        x = _conv(x, 4 * width, 3, "conv4")          # 17
        x = _upsample(x, upsample, "up1")
        x = _conv(x, 2 * width, 3, "conv5")          # 34
        x = _upsample(x, upsample, "up2")            # 68
        x = _conv(x, width, 5, "conv6", padding="valid")  # 64: "Cropping"
        x = _conv(x, width, 5, "conv7")
        outputs = _image_conv(x, bands, "conv8")
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------------------
# Noise emulators: Fig. 2(e), (f), §III D
# --------------------------------------------------------------------------------------

def build_noise_emulator(size: int, bands: int = 5, hidden: int = 64,
                         name: str = "noise_emulator") -> keras.Model:
    """Fig. 2(e) noise emulator (§III D), one independent emulator per band.

    Per band b: ``z1_b -> FC hidden -> FC hidden -> FC 1 -> softplus = a_b > 0`` (LeakyReLU
    after the hidden FCs), then ``noise_b = SymmetricFilter(a_b * z2_b)`` (7x7, VALID, no
    bias). The per-band MLPs are grouped ``BandwiseDense`` layers: no weight is shared
    across bands. Everything runs in float32, whatever the global policy.

    The amplitude is exposed as the layer ``"amplitude"``:
    ``keras.Model(ne.inputs, ne.get_layer("amplitude").output)`` gives ``[B, bands]``.

    Args:
        size: side of the noise map (64 SDSS, 136 CFHT), or None (any size).
        hidden: units of the two hidden FC layers (paper: 64).

    Returns:
        ``keras.Model``: ``[z1 [B, bands], z2 [B, size+6, size+6, bands]]`` (both N(0, 1),
        see :func:`sample_noise_inputs`) -> noise ``[B, size, size, bands]`` float32,
        zero-mean, in stretched-image units.
    """
    padded = None if size is None else size + NOISE_PAD
    z1 = keras.Input((bands,), name="z1", dtype="float32")
    z2 = keras.Input((padded, padded, bands), name="z2", dtype="float32")
    f32 = "float32"
    a = layers.Reshape((bands, 1), dtype=f32, name="z1_per_band")(z1)
    a = BandwiseDense(hidden, dtype=f32, name="fc1")(a)
    a = layers.LeakyReLU(LEAK, dtype=f32, name="fc1_act")(a)
    a = BandwiseDense(hidden, dtype=f32, name="fc2")(a)
    a = layers.LeakyReLU(LEAK, dtype=f32, name="fc2_act")(a)
    a = BandwiseDense(1, dtype=f32, name="fc3")(a)
    a = layers.Activation("softplus", dtype=f32, name="fc3_softplus")(a)
    amplitude = layers.Reshape((bands,), dtype=f32, name="amplitude")(a)
    scaled = ApplyAmplitude(dtype=f32, name="scaled_seed")([z2, amplitude])
    noise = SymmetricFilter(7, dtype=f32, name="symmetric_filter")(scaled)
    return keras.Model([z1, z2], noise, name=name)


def emulator_rms(emulator, draws: int = 4096, seed: int = 0, shift=None) -> np.ndarray:
    """Expected output rms per band of a :func:`build_noise_emulator` model, ``[bands]``
    float64, without drawing z2: ``noise_b = K_b * (a_b z2_b)`` with z2 white and unit,
    so its variance is ``E[a_b²] ||K_b||²``. ``E[a_b²]`` is averaged over ``draws`` seeds
    z1 ~ N(0, 1) from NumPy's ``default_rng(seed)`` (TensorFlow's random state is not
    touched). ``shift``: ``[bands]`` added to the last FC layer's output before softplus
    (what :func:`init_emulator_amplitude` solves for)."""
    pre, kernel = _amplitude_logits(emulator, draws, seed)
    if shift is not None:
        pre = pre + np.asarray(shift, np.float64)
    amp = np.logaddexp(0.0, pre)                                    # softplus, [draws, bands]
    return np.sqrt(np.mean(amp ** 2, axis=0)) * np.sqrt(np.sum(kernel ** 2, axis=(0, 1)))


def _amplitude_logits(emulator, draws: int, seed: int):
    """``([draws, bands] float64 pre-softplus amplitudes, [7, 7, bands] float64 kernel)``."""
    bands = emulator.get_layer("amplitude").output.shape[-1]
    z1 = np.random.default_rng(seed).standard_normal((draws, bands)).astype(np.float32)
    h = emulator.get_layer("z1_per_band")(tf.constant(z1))
    for name in ("fc1", "fc1_act", "fc2", "fc2_act", "fc3"):
        h = emulator.get_layer(name)(h)
    kernel = emulator.get_layer("symmetric_filter").kernel
    return (np.asarray(h, np.float64)[..., 0], np.asarray(kernel, np.float64))


def init_emulator_amplitude(emulator, target, draws: int = 4096, seed: int = 0,
                            ) -> np.ndarray:
    """Issue 13's ``noise_init="data"``: shift the bias of each band's last FC layer
    (``fc3``, before the softplus of Fig. 2(e)) so the emulator's expected output rms
    (:func:`emulator_rms`) equals ``target`` (``[bands]`` > 0, stretched units, e.g.
    ``noise_gan.evaluate.robust_noise_sigma`` of the training images).

    Why the bias: the paper's initialisation gives ~0.3-0.45 rms, 22x (SDSS) and 252x
    (CFHT) the data's noise in r (issue 13), and the emulator has to crawl down at the
    learning rate. A small amplitude sits where ``softplus(x) ≈ exp(x)``, so the bias
    becomes a log-amplitude: each Adam step then changes the amplitude by a ratio, and
    the spread z1 gives (the image-to-image depth) is kept. The MLP weights and the 7x7
    filter (its shape, hence its spectrum) are left as initialised. Solved per band by
    bisection (the rms grows monotonically with the shift). Returns the achieved rms
    ``[bands]``.
    """
    pre, kernel = _amplitude_logits(emulator, draws, seed)
    norm = np.sqrt(np.sum(kernel ** 2, axis=(0, 1)))                   # [bands]
    target = np.broadcast_to(np.asarray(target, np.float64), norm.shape)
    if not np.all(np.isfinite(target) & (target > 0)):
        raise ValueError(f"emulator target rms must be finite and > 0, got {target}")
    lo, hi = np.full(norm.shape, -80.0), np.full(norm.shape, 80.0)
    for _ in range(80):                                                 # |hi - lo| < 1e-22
        mid = (lo + hi) / 2
        rms = np.sqrt(np.mean(np.logaddexp(0.0, pre + mid) ** 2, axis=0)) * norm
        low = rms < target
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    fc3 = emulator.get_layer("fc3")
    shift = ((lo + hi) / 2).astype(np.float32)
    fc3.bias.assign(fc3.bias + tf.constant(shift[:, None]))
    return emulator_rms(emulator, draws, seed)


def sample_noise_inputs(batch: int, size: int, bands: int = 5,
                        seed=None) -> tuple[tf.Tensor, tf.Tensor]:
    """Draw the noise emulator's seeds ``z1 [batch, bands]`` and
    ``z2 [batch, size+6, size+6, bands]``, float32 ~ N(0, 1).

    Args:
        batch: batch size (a Python int or a scalar int tensor).
        seed: ``None`` -> TF's global random state (``tf.random.normal``; reproducible
            after ``keras.utils.set_random_seed``); a ``tf.random.Generator`` or a
            ``keras.random.SeedGenerator`` -> drawn from it (advances its state, which a
            checkpoint can hold; the safe choice inside ``tf.function``); a Python int
            ``n`` -> the stateless seed ``(n, 0)``; anything else is a stateless seed, a
            shape-[2] integer tensor or pair: the same seed always gives the same draws
            (``tf.random.stateless_normal``; z1 and z2 use two seeds split from it).
    """
    shape1 = (batch, bands)
    shape2 = (batch, size + NOISE_PAD, size + NOISE_PAD, bands)
    if seed is None:
        return tf.random.normal(shape1), tf.random.normal(shape2)
    if isinstance(seed, tf.random.Generator):
        return seed.normal(shape1), seed.normal(shape2)
    if isinstance(seed, keras.random.SeedGenerator):
        return (tf.cast(keras.random.normal(shape1, seed=seed), tf.float32),
                tf.cast(keras.random.normal(shape2, seed=seed), tf.float32))
    if isinstance(seed, (int, np.integer)):
        seed = (int(seed), 0)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    return (tf.random.stateless_normal(shape1, seeds[0]),
            tf.random.stateless_normal(shape2, seeds[1]))


# --------------------------------------------------------------------------------------
# Discriminators: Fig. 2(d), (g), §III E
# --------------------------------------------------------------------------------------

def build_sub_discriminator(size: int | None, width: int = 64,
                            name: str = "sub_discriminator") -> keras.Model:
    """Fig. 2(d) sub-discriminator of one band (§III E), layers of the released code.

    high-pass (Fig. 2(g), VALID, size-4), then two branches:
      * Fourier: FFT (real, imaginary as 2 channels) -> conv7-w -> pool -> conv7-w + ACM ->
        pool -> conv7-w + ACM -> pool -> conv3-2w + ACM -> pool -> conv3-2w + ACM ->
        global mean, max, min;
      * pixel: conv3-w -> pool -> conv3-w + ACM -> pool -> conv3-w + ACM -> global mean,
        max, min;
    concatenated (Fourier first) -> FC 32 -> LeakyReLU -> FC 1 (logit).
    Pools are SAME (64: 60 -> 30 -> 15 -> 8 -> 4; 136: 132 -> 66 -> 33 -> 17 -> 9).

    Mixed precision: the Fourier branch and the head are float32. The FFT is unnormalised,
    and the high-pass gain reaches 128 at the highest frequency, so a 60x60 (132x132) map
    of stretched images has Fourier values of order 1e3-1e5, at or beyond float16's 65504.
    Only the pixel branch (values of order 1e2) runs in the policy's dtype.

    Returns:
        ``keras.Model``: ``[B, size, size, 1]`` stretched image of one band -> ``[B, 1]``
        float32 logit (real if > 0).
    """
    f32 = "float32"
    inputs = keras.Input((size, size, 1), name="band_image")
    filtered = HighPass(name="highpass")(inputs)

    # Fourier branch (float32 throughout, see docstring).
    f = FourierParts(name="fft")(filtered)
    f = _conv(f, width, 7, "fft_conv1", dtype=f32)
    f = _pool(f, "fft_p1", dtype=f32)
    f = _conv(f, width, 7, "fft_conv2", dtype=f32)
    f = ACM(dtype=f32, name="fft_acm2")(f)
    f = _pool(f, "fft_p2", dtype=f32)
    f = _conv(f, width, 7, "fft_conv3", dtype=f32)
    f = ACM(dtype=f32, name="fft_acm3")(f)
    f = _pool(f, "fft_p3", dtype=f32)
    f = _conv(f, 2 * width, 3, "fft_conv4", dtype=f32)
    f = ACM(dtype=f32, name="fft_acm4")(f)
    f = _pool(f, "fft_p4", dtype=f32)
    f = _conv(f, 2 * width, 3, "fft_conv5", dtype=f32)
    f = ACM(dtype=f32, name="fft_acm5")(f)
    f = GlobalMeanMaxMin(dtype=f32, name="fft_global")(f)

    # Pixel branch (policy dtype).
    p = _conv(filtered, width, 3, "pix_conv1")
    p = _pool(p, "pix_p1")
    p = _conv(p, width, 3, "pix_conv2")
    p = ACM(name="pix_acm2")(p)
    p = _pool(p, "pix_p2")
    p = _conv(p, width, 3, "pix_conv3")
    p = ACM(name="pix_acm3")(p)
    p = GlobalMeanMaxMin(name="pix_global")(p)

    h = layers.Concatenate(dtype=f32, name="branches")([f, p])
    h = layers.Dense(HEAD_UNITS, kernel_initializer=kernel_init(),
                     bias_initializer=bias_init(), dtype=f32, name="fc1")(h)
    h = layers.LeakyReLU(LEAK, dtype=f32, name="fc1_act")(h)
    logit = layers.Dense(1, kernel_initializer=kernel_init(), bias_initializer=bias_init(),
                         dtype=f32, name="fc2")(h)
    return keras.Model(inputs, logit, name=name)


def build_discriminator(size: int, bands: int = 5, width: int = 64,
                        name: str = "discriminator") -> keras.Model:
    """Fig. 2(d) discriminator: one independent sub-discriminator per band (§III E).

    Band b of the input goes only to the sub-model ``f"{name}_band{b}"`` (see
    :func:`build_sub_discriminator`), so logit b depends on band b alone and the
    sub-discriminators share no weight.

    Args:
        size: image side (64 SDSS, 136 CFHT; anything >= 5 works, None for any size).

    Returns:
        ``keras.Model``: ``[B, size, size, bands]`` stretched images -> ``[B, bands]``
        float32 logits (sigmoid cross-entropy downstream).
    """
    if size is not None and size < 5:
        raise ValueError(f"discriminator size must be at least 5 (5x5 VALID high-pass), "
                         f"got {size}")
    inputs = keras.Input((size, size, bands), name="image")
    logits = []
    for b in range(bands):
        band = BandSlice(b, name=f"band{b}")(inputs)
        sub = build_sub_discriminator(size, width=width, name=f"{name}_band{b}")
        logits.append(sub(band))
    if bands == 1:
        outputs = layers.Activation("linear", dtype="float32", name="logits")(logits[0])
    else:
        outputs = layers.Concatenate(dtype="float32", name="logits")(logits)
    return keras.Model(inputs, outputs, name=name)
