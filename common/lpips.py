"""LPIPS (Zhang et al. 2018, v0.1), Luo et al. (2025) Table 1's perceptual distance.

``d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )`` on images
``[N, H, W, 3]`` in ``[-1, 1]`` (:func:`common.perceptual.to_unit` converts
``[0, 255]``). Inputs pass the reference scaling layer ``(x - SHIFT) / SCALE``, then the
torchvision backbone: AlexNet ``features`` (taps relu1..relu5, 64/192/384/256/256
channels; the default, ``net="alex"``) or VGG16 (relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3). Features are unit-normalised over channels per position (``eps = 1e-10``),
squared differences go through the 1x1 non-negative "lin" layers (no bias), are averaged
over space and summed over the five layers. Output ``[N]`` float, >= 0, 0 for identical
images. AlexNet needs images of at least 32x32.

Weights: ``weights=PATH`` > ``$LPIPS_WEIGHTS`` > ``$KERAS_HOME/models/lpips_<net>_v0.1.npz``
(:func:`lpips_weights_path`). The ``.npz`` holds named float32 arrays in Keras layout
(:func:`npz_layout`) and is made once from the two reference ``.pth`` files by
``tools/convert_lpips_weights.py`` (needs torch, with internet: it downloads them into
``$KERAS_HOME/models``). Build the metric with :func:`build_lpips`; Table 1 uses it
through :class:`common.perceptual.PerceptualSet`.
"""
from __future__ import annotations

import os
import re

import numpy as np

from common.weights import UNCALIBRATED, WeightsNotFound, cache_path, given_weights

#: Environment variable naming a local LPIPS weights file.
LPIPS_ENV = "LPIPS_WEIGHTS"

#: The LPIPS reference ScalingLayer: ``(x - SHIFT) / SCALE`` per RGB channel.
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)

#: AlexNet feature convs as in torchvision ``alexnet().features``:
#: (name, filters, kernel, stride, padding, max-pool 3/2 before it). Taps after each ReLU.
ALEX = (("conv1", 64, 11, 4, 2, False), ("conv2", 192, 5, 1, 2, True),
        ("conv3", 384, 3, 1, 1, True), ("conv4", 256, 3, 1, 1, False),
        ("conv5", 256, 3, 1, 1, False))
#: Index of each AlexNet conv in torchvision's ``features`` Sequential.
ALEX_TORCH = (0, 3, 6, 8, 10)
#: VGG16 conv layers (Keras names) and their torchvision ``features`` indices.
VGG = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1",
       "block3_conv2", "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
       "block5_conv1", "block5_conv2", "block5_conv3")
VGG_TORCH = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: The five LPIPS taps of VGG16 (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG_TAPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
NETS = ("alex", "vgg")


def lpips_cache_name(net: str) -> str:
    """File name of converted LPIPS weights in the cache: ``lpips_<net>_v0.1.npz``."""
    return f"lpips_{net}_v0.1.npz"


def lpips_weights_path(net: str = "alex", weights: str | None = None) -> str:
    """Path of the LPIPS weights: ``weights`` > ``$LPIPS_WEIGHTS`` > the cache file.

    Raises :class:`common.weights.WeightsNotFound` (one line) when none of them exists.
    """
    _check_net(net)
    given = given_weights(weights, LPIPS_ENV, "LPIPS")
    if given:
        return given
    cached = cache_path(lpips_cache_name(net))
    if os.path.isfile(cached):
        return cached
    raise WeightsNotFound(
        f"no LPIPS-{net} weights: pass weights=PATH, set ${LPIPS_ENV}, or put "
        f"{cached} (python tools/convert_lpips_weights.py --net {net})")


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; choose one of {NETS}")


def _features(net: str, seed: int):
    """The backbone: ``[N, H, W, 3]`` scaled input -> five tap tensors (a keras.Model)."""
    import keras

    init = keras.initializers.GlorotUniform(seed)
    inp = keras.Input((None, None, 3))
    taps = []
    if net == "alex":
        x = inp
        for name, filters, k, s, pad, pool in ALEX:
            if pool:
                x = keras.layers.MaxPooling2D(3, 2, name=f"pool{name[-1]}")(x)
            x = keras.layers.ZeroPadding2D(pad)(x)
            x = keras.layers.Conv2D(filters, k, s, activation="relu", name=name,
                                    kernel_initializer=init)(x)
            taps.append(x)
        return keras.Model(inp, taps, name="alexnet_features")
    keras.utils.set_random_seed(seed)  # VGG16 builds with unseeded initialisers
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_tensor=inp)
    return keras.Model(inp, [vgg.get_layer(n).output for n in VGG_TAPS],
                       name="vgg16_features")


def _backbone_convs(net: str) -> tuple[str, ...]:
    return tuple(c[0] for c in ALEX) if net == "alex" else VGG


def build_lpips_model(net: str = "alex", seed: int = 0):
    """A random-init LPIPS ``keras.Model``: inputs ``x, y`` ``[N, H, W, 3]`` in ``[-1, 1]``
    -> ``[N]`` distances. Lin layers start uniform in ``[0, 1/C)`` and are non-negative
    (``NonNeg`` constraint). Load weights with :func:`load_npz`."""
    import keras
    from keras import ops

    _check_net(net)
    feats = _features(net, seed)
    x_in, y_in = keras.Input((None, None, 3), name="x"), keras.Input((None, None, 3), name="y")
    shift, scale = SHIFT.reshape(1, 1, 1, 3), SCALE.reshape(1, 1, 1, 3)
    fx, fy = feats((x_in - shift) / scale), feats((y_in - shift) / scale)
    total = None
    for i, (a, b) in enumerate(zip(fx, fy)):
        a = a / (ops.sqrt(ops.sum(a * a, axis=-1, keepdims=True)) + 1e-10)
        b = b / (ops.sqrt(ops.sum(b * b, axis=-1, keepdims=True)) + 1e-10)
        c = a.shape[-1]
        lin = keras.layers.Conv2D(
            1, 1, use_bias=False, name=f"lin{i}", kernel_constraint=keras.constraints.NonNeg(),
            kernel_initializer=keras.initializers.RandomUniform(0.0, 1.0 / c, seed=seed + i))
        d = ops.mean(lin((a - b) ** 2), axis=(1, 2, 3))
        total = d if total is None else total + d
    return keras.Model([x_in, y_in], total, name=f"lpips_{net}")


def npz_layout(net: str = "alex") -> dict[str, tuple]:
    """Our weight-file format: array name -> shape (``None`` = any) for ``net``.

    ``<conv>/kernel`` ``[kh, kw, in, out]`` and ``<conv>/bias`` ``[out]`` for each backbone
    conv (``conv1``..``conv5`` for AlexNet, Keras' ``blockI_convJ`` for VGG16),
    ``lin0/kernel``..``lin4/kernel`` ``[1, 1, C, 1]`` (>= 0), and ``net`` (a string).
    """
    _check_net(net)
    names = {"net": ()}
    for conv in _backbone_convs(net):
        names[f"{conv}/kernel"] = None
        names[f"{conv}/bias"] = None
    for i in range(5):
        names[f"lin{i}/kernel"] = None
    return names


def _conv_layers(model, net: str) -> dict:
    """Layer name -> layer, for the backbone convs and lin layers of an LPIPS model."""
    feats = model.get_layer(f"{'alexnet' if net == 'alex' else 'vgg16'}_features")
    out = {c: feats.get_layer(c) for c in _backbone_convs(net)}
    out.update({f"lin{i}": model.get_layer(f"lin{i}") for i in range(5)})
    return out


def save_npz(model, net: str, path: str) -> None:
    """Write an LPIPS model's weights to ``path`` in the :func:`npz_layout` format."""
    arrays = {"net": np.array(net)}
    for name, layer in _conv_layers(model, net).items():
        ws = layer.get_weights()
        arrays[f"{name}/kernel"] = ws[0]
        if len(ws) > 1:
            arrays[f"{name}/bias"] = ws[1]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(model, net: str, path: str) -> None:
    """Set an LPIPS model's weights from a :func:`npz_layout` file; ``ValueError`` on a
    wrong net, a missing or mis-shaped array, or a negative lin weight."""
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if str(data.get("net", "")) != net:
        raise ValueError(f"{path}: weights for net {str(data.get('net'))!r}, not {net!r}")
    for name, layer in _conv_layers(model, net).items():
        keys = [f"{name}/kernel"] + ([f"{name}/bias"] if name.startswith(("conv", "block")) else [])
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]}")
        new = [np.asarray(data[k], np.float32) for k in keys]
        for k, a, w in zip(keys, new, layer.get_weights()):
            if a.shape != w.shape:
                raise ValueError(f"{path}: {k} has shape {a.shape}, expected {w.shape}")
        if name.startswith("lin") and (new[0] < 0).any():
            raise ValueError(f"{path}: {name} has negative weights (LPIPS lin layers are >= 0)")
        layer.set_weights(new)


def from_torch(net: str, backbone: dict, lin: dict) -> dict[str, np.ndarray]:
    """Reference state dicts (name -> numpy array) -> arrays in the :func:`npz_layout`.

    ``backbone``: torchvision ``alexnet``/``vgg16`` state dict (``features.<i>.weight``
    ``[out, in, kh, kw]``, ``features.<i>.bias``); ``lin``: LPIPS v0.1 ``alex.pth`` /
    ``vgg.pth`` (``lin<l>.model.<j>.weight`` ``[1, C, 1, 1]``). Kernels are transposed to
    Keras' ``[kh, kw, in, out]``. Used by ``tools/convert_lpips_weights.py``.
    """
    _check_net(net)
    out = {"net": np.array(net)}
    idx = ALEX_TORCH if net == "alex" else VGG_TORCH
    for conv, i in zip(_backbone_convs(net), idx):
        for what in ("weight", "bias"):
            if f"features.{i}.{what}" not in backbone:
                raise ValueError(f"backbone state dict lacks features.{i}.{what}: not "
                                 f"torchvision's {'alexnet' if net == 'alex' else 'vgg16'}")
        out[f"{conv}/kernel"] = np.asarray(backbone[f"features.{i}.weight"],
                                           np.float32).transpose(2, 3, 1, 0)
        out[f"{conv}/bias"] = np.asarray(backbone[f"features.{i}.bias"], np.float32)
    for key, w in lin.items():
        m = re.fullmatch(r"lin(\d)\.model\.\d\.weight", key)
        if m:
            out[f"lin{m.group(1)}/kernel"] = np.asarray(w, np.float32).transpose(2, 3, 1, 0)
    missing = [f"lin{i}/kernel" for i in range(5) if f"lin{i}/kernel" not in out]
    if missing:
        raise ValueError(f"lin state dict lacks {missing[0]} (keys: {sorted(lin)[:6]})")
    return out


def lpips_layout(model, net: str = "alex") -> dict[str, tuple[int, ...]]:
    """The reference state dicts of an LPIPS model's weights: name -> torch shape.

    torchvision's ``features.<i>.weight`` ``[out, in, kh, kw]`` and ``features.<i>.bias``
    ``[out]`` (the backbone file), and the lin file's ``lin<l>.model.1.weight``
    ``[1, C, 1, 1]`` (what :func:`from_torch` reads).
    """
    layers = _conv_layers(model, net)
    out = {}
    for conv, i in zip(_backbone_convs(net), ALEX_TORCH if net == "alex" else VGG_TORCH):
        kh, kw, cin, cout = layers[conv].kernel.shape
        out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (cout, cin, kh, kw), (cout,)
    for i in range(5):
        out[f"lin{i}.model.1.weight"] = (1, layers[f"lin{i}"].kernel.shape[2], 1, 1)
    return out


class LPIPS:
    """An LPIPS network with its provenance.

    ``net``: ``"alex"`` or ``"vgg"``; ``weights``: where the weights came from (a path, or
    ``"random init (uncalibrated)"``); ``label``: ``"calibrated"`` or ``"uncalibrated"``.
    Build with :func:`build_lpips`.
    """

    def __init__(self, model, net: str, weights: str, calibrated: bool):
        self.model, self.net, self.weights, self.calibrated = model, net, weights, calibrated
        self.label = "calibrated" if calibrated else UNCALIBRATED

    def __call__(self, x, y, batch_size: int = 32) -> np.ndarray:
        """Distances ``[N]`` (float64, >= 0) between images ``[N, H, W, 3]`` in ``[-1, 1]``."""
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        if x.shape != y.shape or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected two [N, H, W, 3] batches, got {x.shape}, {y.shape}")
        if min(x.shape[1:3]) < 32:
            raise ValueError(f"LPIPS needs images of at least 32x32, got {x.shape[1:3]}")
        out = [np.asarray(self.model([x[i:i + batch_size], y[i:i + batch_size]],
                                     training=False), np.float64)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    def describe(self) -> str:
        """One line: which network and weights produced the numbers."""
        return f"LPIPS v0.1 {self.net} ({self.label}; weights: {self.weights})"


def build_lpips(net: str = "alex", weights: str | None = None,
                allow_uncalibrated: bool = False, seed: int = 0) -> LPIPS:
    """The LPIPS metric, with weights from :func:`lpips_weights_path`.

    With no weights found: :class:`common.weights.WeightsNotFound`, unless
    ``allow_uncalibrated`` is given, which builds a random-init network (``seed``)
    labelled ``"uncalibrated"``.
    """
    _check_net(net)
    try:
        path = lpips_weights_path(net, weights)
    except WeightsNotFound:
        if not allow_uncalibrated:
            raise
        path = None
    model = build_lpips_model(net, seed)
    if path is None:
        return LPIPS(model, net, f"random init seed {seed} ({UNCALIBRATED})", False)
    load_npz(model, net, path)
    return LPIPS(model, net, path, True)
