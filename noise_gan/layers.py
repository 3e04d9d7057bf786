"""Custom Keras layers of the Lin, Fouchez & Pasquet (2021) networks (Fig. 2), assembled
by the builders of ``noise_gan.networks``: symmetric padding and pixel shuffle of the
generators (b, c), band slicing, global mean/max/min pooling and the attention module (ACM)
of the per-band discriminators (d), and the grouped per-band FC layers, amplitude product
and 7x7 symmetric filter of the noise emulators (e, f). The weight-free float32 filters of
Fig. 2(g) and the Fourier transform (``HighPass``, ``FourierParts``) stay in
``noise_gan.networks`` with their functions.

Every layer is registered for Keras serialisation under the package ``"noise_gan"``
(``PACKAGE``), so saved models name them ``noise_gan>SymmetricFilter`` and so on. Kernels
are Glorot-uniform and biases start at 0.1, as in the authors' released TF1 code
(``/work/shared/notes/lin2021.md``). Tensors are channels-last.
"""
from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf
from keras import layers, ops

#: Keras serialisation package of every custom layer of the Lin networks.
PACKAGE = "noise_gan"
#: Bias initial value of every convolution and FC layer (released code).
BIAS_INIT = 0.1


def kernel_init():
    """Glorot-uniform ("Xavier") kernels, as the released code's convolutions and FCs."""
    return keras.initializers.GlorotUniform()


def bias_init():
    """Biases initialised to ``BIAS_INIT`` (released code)."""
    return keras.initializers.Constant(BIAS_INIT)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SymmetricPad(layers.Layer):
    """``tf.pad(mode="SYMMETRIC")`` of ``pad`` pixels on each side of H and W (Fig. 2(b)
    "SymPadding": 64 -> 68 in the SDSS -> CFHT generator)."""

    def __init__(self, pad: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="SYMMETRIC")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(layers.Layer):
    """Sub-pixel up-sampling (Shi et al. 2016), ablation (e): ``[B,H,W,C]`` ->
    ``[B,2H,2W,C/4]``.

    As in the released code, it directly rearranges the preceding convolution's channels
    (no extra convolution), in the "channel-major" order of PyTorch's ``pixel_shuffle``:
    ``out[b, 2i+a, 2j+c, g] = in[b, i, j, 4g + 2a + c]``. (``tf.nn.depth_to_space`` uses
    another channel order; after a learned convolution the two are equivalent.)
    """

    def __init__(self, block: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x):
        r = self.block
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        groups = x.shape[-1] // (r * r)
        x = tf.reshape(x, [b, h, w, groups, r, r])
        x = tf.transpose(x, [0, 1, 4, 2, 5, 3])  # [B, H, a, W, c, G]
        return tf.reshape(x, [b, h * r, w * r, groups])

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block
        grow = lambda n: None if n is None else n * r  # noqa: E731
        return (b, grow(h), grow(w), c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BandSlice(layers.Layer):
    """Channel ``band`` of ``[B,H,W,C]`` as ``[B,H,W,1]`` (input of a sub-discriminator)."""

    def __init__(self, band: int, **kwargs):
        super().__init__(**kwargs)
        self.band = int(band)

    def call(self, x):
        return x[..., self.band:self.band + 1]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], 1)

    def get_config(self):
        return {**super().get_config(), "band": self.band}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalMeanMaxMin(layers.Layer):
    """Fig. 2(d) "GlobalPool": spatial mean, max and min of every map, concatenated:
    ``[B,H,W,C] -> [B,3C]`` ordered (means, maxima, minima)."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=(1, 2)), ops.max(x, axis=(1, 2)),
                                ops.min(x, axis=(1, 2))], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 3 * input_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class ACM(layers.Layer):
    """Attention complementary module (Fig. 2(d), ref. [26]), as in the released code: a
    squeeze-and-excitation style gate. The global spatial average of the maps goes through
    one FC layer (C -> C, Glorot kernel, bias 0.1) and a sigmoid, giving one gate in (0, 1)
    per channel, which multiplies that channel's map.

    ``[B,H,W,C] -> [B,H,W,C]``; ``C*C + C`` parameters.
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(channels, channels),
                                      initializer=kernel_init())
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer=bias_init())

    def call(self, x):
        squeeze = ops.mean(x, axis=(1, 2))
        gate = ops.sigmoid(ops.matmul(squeeze, ops.cast(self.kernel, x.dtype))
                           + ops.cast(self.bias, x.dtype))
        return x * gate[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class BandwiseDense(layers.Layer):
    """Independent FC layers, one per band (grouped; no weight sharing across bands):
    ``[B, bands, n_in] -> [B, bands, units]``, ``out[:, k] = in[:, k] @ W_k + b_k``.
    Each ``W_k`` is Glorot-uniform for its own ``n_in -> units`` shape, biases start at 0.1.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        bands, n_in = input_shape[-2], input_shape[-1]
        limit = float(np.sqrt(6.0 / (n_in + self.units)))
        self.kernel = self.add_weight(
            name="kernel", shape=(bands, n_in, self.units),
            initializer=keras.initializers.RandomUniform(-limit, limit))
        self.bias = self.add_weight(name="bias", shape=(bands, self.units),
                                    initializer=bias_init())

    def call(self, x):
        kernel = ops.cast(self.kernel, x.dtype)
        return ops.einsum("bki,kio->bko", x, kernel) + ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ApplyAmplitude(layers.Layer):
    """Fig. 2(e) "⊗": ``[z2 [B,H,W,bands], a [B,bands]] -> z2 * a`` broadcast over H, W."""

    def call(self, inputs):
        z2, amplitude = inputs
        return z2 * amplitude[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _orbit_index(kernel_size: int) -> np.ndarray:
    """``[k, k]`` int: index of each cell's orbit under the 8 symmetries of the square
    (rotations by 90° and mirrors). With ``r = k // 2`` and ``(p, q)`` the larger and smaller
    of the absolute offsets from the centre, the orbit index is ``p (p + 1) / 2 + q``; there
    are ``(r + 1)(r + 2) / 2`` orbits (10 for 7x7)."""
    r = kernel_size // 2
    offsets = np.abs(np.arange(kernel_size) - r)
    hi = np.maximum(offsets[:, None], offsets[None, :])
    lo = np.minimum(offsets[:, None], offsets[None, :])
    return (hi * (hi + 1) // 2 + lo).astype(np.int32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SymmetricFilter(layers.Layer):
    """Fig. 2(f): a bias-free, symmetric 7x7 filter per band, applied depthwise with VALID
    padding (``[B, H+6, W+6, bands] -> [B, H, W, bands]``).

    The released code symmetrises a free 7x7 kernel: average of its four 90° rotations,
    then average with its left-right mirror image. That is the average over the 8
    symmetries of the square, so the result is constant on each orbit of the 7x7 grid under
    those symmetries; there are exactly 10 orbits. This layer stores only those 10 values
    per band (weight ``free``, shape ``[10, bands]``, so ``count_params() == 10 * bands``)
    and builds the kernel by copying each value onto its orbit (``kernel`` property,
    ``[7, 7, bands]``).

    Initialisation: the orbit means of a Glorot-uniform 7x7 draw (fan_in = fan_out = 49, a
    depthwise kernel), i.e. the distribution of the released code's symmetrised kernel
    (whose TF1 Xavier limit, computed on its ``[1, 7, 7, bands]`` variable, is
    sqrt(6 / (49 + 7 bands)) = 0.27 at 5 bands instead of our sqrt(6 / 98) = 0.25).
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self._orbits = _orbit_index(self.kernel_size)
        self.n_free = int(self._orbits.max()) + 1

    def build(self, input_shape):
        bands = input_shape[-1]
        k, orbits, n_free = self.kernel_size, self._orbits.reshape(-1), self.n_free
        limit = float(np.sqrt(6.0 / (2 * k * k)))
        # [n_free, k*k] averaging matrix: row o is the uniform average over the cells of o.
        member = (orbits[None, :] == np.arange(n_free)[:, None]).astype(np.float32)
        average = member / member.sum(axis=1, keepdims=True)

        def orbit_mean_init(shape, dtype=None):
            full = keras.random.uniform((k * k, shape[1]), -limit, limit, dtype="float32")
            return ops.cast(ops.matmul(ops.convert_to_tensor(average), full),
                            dtype or "float32")

        self.free = self.add_weight(name="free", shape=(n_free, bands),
                                    initializer=orbit_mean_init)

    @property
    def kernel(self) -> tf.Tensor:
        """The built ``[k, k, bands]`` float32 kernel (invariant under rot90 and flips)."""
        free = tf.convert_to_tensor(self.free)
        return tf.gather(free, tf.constant(self._orbits), axis=0)

    def call(self, x):
        kernel = tf.cast(self.kernel, x.dtype)[:, :, :, None]  # [k, k, bands, 1]
        return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding="VALID")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        shrink = lambda n: None if n is None else n - self.kernel_size + 1  # noqa: E731
        return (b, shrink(h), shrink(w), c)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}
