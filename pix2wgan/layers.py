"""Network builders of Luo et al. §3.1: the U-Net generator and the conditional PatchGAN
critic (Pix2WGAN, pix2pix and both Cascade Pix2WGAN stages).

All builders return functional ``keras.Model`` objects with a ``name``, take widths and
sizes as arguments (tests build tiny networks), and are fully convolutional: a generator
built for 128x128 also runs on any size divisible by 2**depth.

Tensors are channels-last: images are ``[B, H, W, 3] float32 in [-1, 1]``.
"""
from __future__ import annotations

import keras
from keras import layers

from common.choices import NORMS

#: pix2pix convention: 4x4 kernels, N(0, 0.02) initial weights, LeakyReLU slope 0.2.
KERNEL = 4
LEAK = 0.2


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _norm(kind: str, name: str):
    """A normalisation layer by name (``None`` for ``"none"``)."""
    if kind == "batch":
        # momentum 0.9 = PyTorch's 0.1, as in the reference pix2pix: the moving statistics
        # used at inference keep up with the weights (Keras' 0.99 lags ~100 steps behind).
        return layers.BatchNormalization(momentum=0.9, name=name)
    if kind == "layer":
        # Per-sample normalisation keeps the critic's outputs independent across the
        # batch, which the gradient penalty assumes (Gulrajani et al. 2017, §4).
        return layers.LayerNormalization(axis=(1, 2, 3), name=name)
    if kind == "none":
        return None
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMS)}")


def _conv_block(x, filters, *, stride, norm, name, padding="same", transpose=False,
                dropout=0.0):
    """Conv (or ConvTranspose) -> norm -> [dropout] -> LeakyReLU."""
    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    x = conv(filters, KERNEL, strides=stride, padding=padding, use_bias=norm == "none",
             kernel_initializer=_init(), name=f"{name}_conv")(x)
    norm_layer = _norm(norm, f"{name}_norm")
    if norm_layer is not None:
        x = norm_layer(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.LeakyReLU(LEAK, name=f"{name}_act")(x)


def unet_widths(width: int, depth: int = 6) -> list[int]:
    """Encoder filter counts: pix2pix's doubling from ``width``, capped at ``8 * width``."""
    return [width * min(2**i, 8) for i in range(depth)]


def build_unet(width: int = 64, depth: int = 6, channels: int = 3, dropout: float = 0.5,
               n_dropout: int = 3, norm: str = "batch", image_size: int | None = None,
               name: str = "generator") -> keras.Model:
    """U-Net generator of Luo et al. §3.1 ("six modules" in the encoder and decoder).

    How "six modules" is read:
      * encoder: ``depth`` = 6 blocks of Conv(4x4, stride 2)-BN-LeakyReLU, halving the
        size each time (128 -> 64 -> 32 -> 16 -> 8 -> 4 -> 2), widths
        ``w, 2w, 4w, 8w, 8w, 8w``;
      * decoder: 6 blocks of ConvTranspose(4x4, stride 2)-BN-[Dropout 0.5 on the first
        three]-LeakyReLU, doubling the size back to 128 (2 -> 4 -> ... -> 128). The output
        of decoder block k is concatenated with the encoder feature map of the same size
        (skip connections, five of them: 4, 8, 16, 32, 64 px);
      * head: a 1x1 convolution to ``channels`` maps with tanh, so the output lies in
        [-1, 1] like the normalised targets (Luo eq. 8). The paper does not say how the
        last decoder block becomes an RGB image; a 1x1 head keeps all six decoder blocks
        exactly as described.

    Args:
        width: filters of the first encoder block (paper/pix2pix: 64).
        depth: number of encoder (= decoder) blocks; inputs must be divisible by 2**depth.
        image_size: fixed input size, or ``None`` for a fully convolutional model.

    Returns:
        ``keras.Model``: ``[B, H, W, channels]`` in [-1, 1] -> same shape in [-1, 1].
    """
    inputs = keras.Input((image_size, image_size, channels), name="input_image")
    widths = unet_widths(width, depth)
    x, skips = inputs, []
    for i, filters in enumerate(widths):
        x = _conv_block(x, filters, stride=2, norm=norm, name=f"enc{i + 1}")
        skips.append(x)
    skips = skips[:-1][::-1]  # the bottleneck has no partner; pair the rest deepest-first
    dec_widths = widths[:-1][::-1] + [width]
    for i, filters in enumerate(dec_widths):
        x = _conv_block(x, filters, stride=2, norm=norm, transpose=True,
                        dropout=dropout if i < n_dropout else 0.0, name=f"dec{i + 1}")
        if i < len(skips):
            x = layers.Concatenate(name=f"skip{i + 1}")([x, skips[i]])
    x = layers.Conv2D(channels, 1, kernel_initializer=_init(), name="head_conv")(x)
    # float32 output so mixed precision never returns half-precision images.
    outputs = layers.Activation("tanh", dtype="float32", name="head_tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def unet_depth(generator: keras.Model) -> int:
    """Number of stride-2 encoder blocks of a ``build_unet`` model (inputs must be
    divisible by ``2**depth``)."""
    return sum(1 for layer in generator.layers
               if layer.name.startswith("enc") and layer.name.endswith("_conv"))


def build_patch_critic(width: int = 64, channels: int = 3, norm: str = "batch",
                       image_size: int | None = None, name: str = "critic") -> keras.Model:
    """Conditional PatchGAN critic of Luo et al. §3.1: five convolutions.

    The condition (the low-quality input) and the judged image (target or generated) are
    concatenated on channels. Layers: Conv(4x4/2, w) -> Conv(4x4/2, 2w) -> Conv(4x4/2, 4w)
    -> pad 1 -> Conv(4x4/1 valid, 8w) -> pad 1 -> Conv(4x4/1 valid, 1). Each of the first
    four is followed by normalisation and LeakyReLU (the first has no normalisation, as in
    pix2pix: normalising raw pixels only removes the input's mean). On a 128x128 input the
    output is the paper's ``(B, 14, 14, 1)`` patch map: 64, 32, 16 -> 18 -> 15 -> 17 -> 14.

    The patch map is returned un-averaged; losses average it to the paper's scalar
    (linear for the Wasserstein critic, per-patch for BCE as in pix2pix).

    Returns:
        ``keras.Model``: ``[cond [B,H,W,C], image [B,H,W,C]]`` in [-1, 1] ->
        ``[B, H/8 - 2, W/8 - 2, 1]`` float32 scores (WGAN) or logits (BCE).
    """
    cond = keras.Input((image_size, image_size, channels), name="condition")
    image = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Concatenate(name="pair")([cond, image])
    x = _conv_block(x, width, stride=2, norm="none", name="c1")
    x = _conv_block(x, 2 * width, stride=2, norm=norm, name="c2")
    x = _conv_block(x, 4 * width, stride=2, norm=norm, name="c3")
    x = layers.ZeroPadding2D(name="pad4")(x)
    x = _conv_block(x, 8 * width, stride=1, norm=norm, padding="valid", name="c4")
    x = layers.ZeroPadding2D(name="pad5")(x)
    x = layers.Conv2D(1, KERNEL, padding="valid", kernel_initializer=_init(),
                      name="c5_conv")(x)
    outputs = layers.Activation("linear", dtype="float32", name="scores")(x)
    return keras.Model([cond, image], outputs, name=name)
