"""Perceptual metrics of Luo et al. (2025) Table 1: LPIPS and FID.

Both need pretrained networks whose weights cannot be fetched on an offline machine
(``shared/notes/metrics.md``). The loading code is real and points at the reference
sources (:data:`SOURCES`); offline, a local file named by an argument or an environment
variable is used; with no weights at all the metric is *unavailable*, and a random-init
network is built only behind ``allow_uncalibrated=True`` and then labelled
``"uncalibrated"`` in every output.

LPIPS (Zhang et al. 2018, v0.1)
    ``d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )`` on images
    ``[N, H, W, 3]`` in ``[-1, 1]`` (:func:`to_unit` converts ``[0, 255]``). Inputs pass
    the reference scaling layer ``(x - SHIFT) / SCALE``, then the torchvision backbone:
    AlexNet ``features`` (taps relu1..relu5, 64/192/384/256/256 channels; the default,
    ``net="alex"``) or VGG16 (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). Features are
    unit-normalised over channels per position (``eps = 1e-10``), squared differences
    go through the 1x1 non-negative "lin" layers (no bias), are averaged over space and
    summed over the five layers. Output ``[N]`` float, >= 0, 0 for identical images.
    AlexNet needs images of at least 32x32.

FID (Heusel et al. 2017)
    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` of Inception pool_3 2048-d features,
    in float64. The trace term is computed exactly, also for the singular covariances that
    N < 2048 images always give, so no ``eps`` is added by default: pytorch-fid adds its
    1e-6 to the diagonals only when scipy's ``sqrtm`` fails, which it rarely does, and an
    always-added ``eps`` shifts the value by 1e-4 to 3e-3 (absolute; measured on
    synthetic sets at N = 200, D = 2048). N is reported and N < 2048 warns
    (:class:`FewSamplesWarning`): FID is biased upward at small N. Feature extractors:

    * ``"pt_inception"`` (alias ``"tf2015"``; the default): the 2015-12-05 TF Inception
      graph that every published FID uses (the paper's included), in the layout of
      pytorch-fid's port (``pt_inception-2015-12-05-6726825d.pth``; its FIDInceptionA/C/E
      blocks: average pools that do not count padding, a max pool in the last block).
      Images ``[0, 255]`` are scaled to ``[0, 1]``, resized bilinearly (half-pixel
      centres, no antialiasing: torch ``F.interpolate(align_corners=False)``) to 299x299,
      then scaled to ``[-1, 1]``, as pytorch-fid's ``InceptionV3`` does. Its outputs equal
      pytorch-fid's on the same weights (``tools/parity_perceptual.py``,
      ``tests/test_perceptual_parity.py``).
    * ``"keras-inceptionv3"``: ``keras.applications.InceptionV3(include_top=False,
      pooling="avg")`` with Keras' ImageNet weights, images resized bilinearly to
      299x299 and ``inception_v3.preprocess_input`` (``x / 127.5 - 1``). **Its FIDs are
      not comparable to the paper's**: other weights, other pooling blocks.

Weights (looked up in this order; a lookup that finds nothing raises
:class:`WeightsNotFound` with a one-line message):

* LPIPS: ``weights=PATH`` > ``$LPIPS_WEIGHTS`` > ``$KERAS_HOME/models/lpips_<net>_v0.1.npz``.
  The ``.npz`` holds named float32 arrays in Keras layout (:func:`npz_layout`) and is
  made once from the two reference ``.pth`` files by ``tools/convert_lpips_weights.py``
  (needs torch, with internet: it downloads them into ``$KERAS_HOME/models``).
* FID ``pt_inception``: ``weights=PATH`` > ``$FID_WEIGHTS`` >
  ``$KERAS_HOME/models/pt_inception-2015-12-05-6726825d.npz``, made once from
  pytorch-fid's ``.pth`` (sha256 checked against the ``6726825d`` its name publishes) by
  ``tools/convert_fid_weights.py`` (needs torch; :func:`pt_inception_from_torch`).
* FID ``keras-inceptionv3``: ``weights=PATH`` > ``$FID_WEIGHTS`` >
  ``$KERAS_HOME/models/<Keras' own file name>`` (a pre-placed file skips the download) >
  with ``download=True``, ``keras.utils.get_file`` from the Keras URL, md5-checked. The
  file is Keras' ``..._notop.h5`` or any ``.weights.h5`` saved from
  ``keras.applications.InceptionV3(include_top=False)``.

For Table 1 use :class:`PerceptualSet` (``update(pred, target)`` on ``[0, 255]`` images,
``result()``), or :func:`perceptual_scores` over an iterable of pairs.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from common.io import file_sha256

#: Reported in place of a value when no weights were found.
UNAVAILABLE = "unavailable (no weights)"
#: Label of every output of a random-init network (``allow_uncalibrated=True``).
UNCALIBRATED = "uncalibrated"
#: Environment variables naming local weight files.
LPIPS_ENV, FID_ENV = "LPIPS_WEIGHTS", "FID_WEIGHTS"
#: Fewer images than features: singular covariances, biased FID.
FID_DIMS = 2048
#: Default epsilon added to covariance diagonals: none. Our trace term is exact for
#: singular covariances; pytorch-fid adds 1e-6 only when its ``sqrtm`` is not finite.
FID_EPS = 0.0
#: FID extractors; the first is the default (the one published FIDs use).
FID_EXTRACTORS = ("pt_inception", "keras-inceptionv3")
#: Other names of an extractor.
FID_ALIASES = {"tf2015": "pt_inception"}
#: Converted pt_inception weights in the Keras cache (tools/convert_fid_weights.py).
PT_INCEPTION_NPZ = "pt_inception-2015-12-05-6726825d.npz"

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


class WeightsNotFound(FileNotFoundError):
    """No weights file for a perceptual network; the message is one line naming the
    argument, environment variable and cache path that were tried."""


class FewSamplesWarning(UserWarning):
    """FID from fewer than 2048 images per set (singular covariances, upward bias)."""


@dataclass(frozen=True)
class Source:
    """Where a reference weight file comes from.

    ``file_hash`` is a full md5/sha256 that ``keras.utils.get_file`` checks;
    ``sha256_prefix`` the leading hex digits of the sha256 that a torch hub file name
    carries (``name-<prefix>.pth``), checked after download. ``None``: not known to us.
    """
    url: str
    fname: str
    file_hash: str | None = None
    sha256_prefix: str | None = None


#: The reference files. Hashes are only those published with the files: Keras' md5 from
#: keras.applications; torchvision/pytorch-fid's sha256 prefixes from their file names.
#: The LPIPS lin-layer files come with no published hash: they are not verified.
SOURCES = {
    "alex": Source("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                   "alexnet-owt-7be5be79.pth", sha256_prefix="7be5be79"),
    "vgg": Source("https://download.pytorch.org/models/vgg16-397923af.pth",
                  "vgg16-397923af.pth", sha256_prefix="397923af"),
    # richzhang/PerceptualSimilarity, lpips/weights/v0.1/ (no hash published)
    "lin-alex": Source("https://github.com/richzhang/PerceptualSimilarity/raw/master/"
                       "lpips/weights/v0.1/alex.pth", "lpips_v0.1_alex.pth"),
    "lin-vgg": Source("https://github.com/richzhang/PerceptualSimilarity/raw/master/"
                      "lpips/weights/v0.1/vgg.pth", "lpips_v0.1_vgg.pth"),
    "keras-inceptionv3": Source(
        "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        file_hash="bcbd6486424b2319ff4ef7d526e38f63"),  # md5, as in keras.applications
    "pt_inception": Source(
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "pt_inception-2015-12-05-6726825d.pth", sha256_prefix="6726825d"),
}


# ----------------------------------------------------------------------------- files

def keras_home() -> str:
    """The Keras cache root, read now: ``$KERAS_HOME`` or ``~/.keras``."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def cache_path(fname: str) -> str:
    """Where ``keras.utils.get_file`` keeps ``fname``: ``$KERAS_HOME/models/fname``."""
    return os.path.join(keras_home(), "models", fname)


def fetch(source: Source | str, origin: str | None = None) -> str:
    """Download a reference file into ``$KERAS_HOME/models`` (or reuse a valid cached
    copy) and return its path.

    ``source``: a :class:`Source` or a key of :data:`SOURCES`; ``origin`` overrides the
    URL (a mirror). The full hash, if known, is checked by ``keras.utils.get_file`` (a
    cached file that fails it is downloaded again); a sha256 prefix is checked here and a
    file that fails it is deleted and ``ValueError`` raised.
    """
    import keras

    src = SOURCES[source] if isinstance(source, str) else source
    # get_file falls back to /tmp/.keras when the cache root does not exist yet
    os.makedirs(os.path.join(keras_home(), "models"), exist_ok=True)
    path = keras.utils.get_file(src.fname, origin or src.url, file_hash=src.file_hash,
                                cache_subdir="models", cache_dir=keras_home())
    if src.sha256_prefix and not file_sha256(path).startswith(src.sha256_prefix):
        os.remove(path)
        raise ValueError(f"{src.fname}: sha256 does not start with {src.sha256_prefix} "
                         "(corrupt or wrong file; deleted)")
    return path


def check_sha256(path: str, source: Source | str) -> str:
    """The file's sha256, after checking it against ``source``'s published hash (a full
    sha256 or the prefix in a torch hub file name); one-line ``ValueError`` if it differs.
    A source without a sha256 (the LPIPS lin files) is not checked."""
    src = SOURCES[source] if isinstance(source, str) else source
    digest = file_sha256(path)
    want = src.sha256_prefix or (src.file_hash if src.file_hash and len(src.file_hash) == 64
                                 else None)
    if want and not digest.startswith(want):
        raise ValueError(f"{path}: sha256 {digest[:16]}... does not start with {want}: "
                         f"not {src.fname} (wrong or corrupt file)")
    return digest


def read_pth(path: str) -> dict[str, np.ndarray]:
    """A torch state dict file -> name -> numpy array. Imports torch here: only the
    one-time converters need it, and it is not a project requirement."""
    try:
        import torch
    except ImportError:
        raise ValueError("reading a .pth file needs torch (pip install torch, once, on any "
                         "machine; it is not a project requirement)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a non-checkpoint file
        raise ValueError(f"{path}: not a torch state dict ({type(err).__name__})") from None
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def lpips_cache_name(net: str) -> str:
    """File name of converted LPIPS weights in the cache: ``lpips_<net>_v0.1.npz``."""
    return f"lpips_{net}_v0.1.npz"


def lpips_weights_path(net: str = "alex", weights: str | None = None) -> str:
    """Path of the LPIPS weights: ``weights`` > ``$LPIPS_WEIGHTS`` > the cache file.

    Raises :class:`WeightsNotFound` (one line) when none of them exists.
    """
    _check_net(net)
    cached = cache_path(lpips_cache_name(net))
    for given, how in ((weights, "weights="), (os.environ.get(LPIPS_ENV), f"${LPIPS_ENV}=")):
        if given:
            if not os.path.isfile(given):
                raise WeightsNotFound(f"LPIPS weights {how}{given}: no such file")
            return given
    if os.path.isfile(cached):
        return cached
    raise WeightsNotFound(
        f"no LPIPS-{net} weights: pass weights=PATH, set ${LPIPS_ENV}, or put "
        f"{cached} (python tools/convert_lpips_weights.py --net {net})")


def fid_weights_path(extractor: str = FID_EXTRACTORS[0], weights: str | None = None,
                     download: bool = False, origin: str | None = None) -> str:
    """Path of the FID extractor weights: ``weights`` > ``$FID_WEIGHTS`` > the Keras cache
    file (``pt_inception``: :data:`PT_INCEPTION_NPZ`; ``keras-inceptionv3``: Keras' own
    file name) > for ``keras-inceptionv3`` with ``download=True``, :func:`fetch` from
    ``origin`` or the Keras URL.

    Raises :class:`WeightsNotFound` (one line) when none is found. ``pt_inception``
    cannot be downloaded ready to use: its ``.pth`` needs a one-time conversion with
    torch (``tools/convert_fid_weights.py``), which the message names.
    """
    extractor = _check_extractor(extractor)
    for given, how in ((weights, "weights="), (os.environ.get(FID_ENV), f"${FID_ENV}=")):
        if given:
            if not os.path.isfile(given):
                raise WeightsNotFound(f"FID weights {how}{given}: no such file")
            return given
    if extractor == "pt_inception":
        cached = cache_path(PT_INCEPTION_NPZ)
        if os.path.isfile(cached):
            return cached
        raise WeightsNotFound(
            f"no pt_inception weights: pass weights=PATH, set ${FID_ENV}, or put {cached} "
            "(python tools/convert_fid_weights.py, once, with torch and internet)")
    src = SOURCES[extractor]
    cached = cache_path(src.fname)
    if download or os.path.isfile(cached):
        return fetch(src, origin)  # a valid cached file is returned without downloading
    raise WeightsNotFound(
        f"no {extractor} weights: pass weights=PATH, set ${FID_ENV}, put {cached}, "
        "or allow the download")


# ----------------------------------------------------------------------------- LPIPS

def rgb255(images) -> np.ndarray:
    """``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` -> float32 ``[N, H, W, 3]``,
    same values; ``ValueError`` on another shape or range."""
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] RGB images, got shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"pixel values must lie in [0, 255], got [{x.min():g}, {x.max():g}]")
    return x


def to_unit(images) -> np.ndarray:
    """``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` -> float32 in ``[-1, 1]``."""
    return rgb255(images) / 127.5 - 1.0


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

    With no weights found: :class:`WeightsNotFound`, unless ``allow_uncalibrated`` is
    given, which builds a random-init network (``seed``) labelled ``"uncalibrated"``.
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


# ----------------------------------------------------------------------------- FID

def _check_extractor(extractor: str) -> str:
    """The canonical extractor name (aliases resolved); ``ValueError`` if unknown."""
    name = FID_ALIASES.get(extractor, extractor)
    if name not in FID_EXTRACTORS:
        raise ValueError(f"unknown FID extractor {extractor!r}; choose one of "
                         f"{FID_EXTRACTORS} (or an alias: {sorted(FID_ALIASES)})")
    return name


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and sample covariance ``[D, D]`` (float64, ``ddof=1``) of ``[N, D]``."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need [N, D] features with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _rank_clip(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with those below its numerical rank cut-off
    (``max|w| * len(w) * machine eps``, as ``numpy.linalg.matrix_rank``) set to 0.
    Clipping only negatives is not enough for a singular covariance: the square roots
    of ~1800 round-off eigenvalues of size 1e-13 add up to ~1e-4 (measured at N = 200,
    D = 2048)."""
    tol = np.abs(w).max(initial=0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (rank-clipped eigenvalues)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(_rank_clip(w))) @ v.T


def frechet_distance(mu1, s1, mu2, s2, eps: float = FID_EPS) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` in float64.

    ``Tr((S1 S2)^{1/2})`` is the sum of the square roots of the eigenvalues of
    ``S1^{1/2} S2 S1^{1/2}`` (similar to ``S1 S2``, symmetric PSD), both
    eigen-decompositions cut at their numerical rank (:func:`_rank_clip`): exact to
    ~1e-15 relative also for singular covariances (N < D), where scipy's ``sqrtm(S1 S2)``
    that pytorch-fid uses is off by ~1e-7 relative (N = 200, D = 2048). ``eps`` (default
    0, as pytorch-fid whenever its ``sqrtm`` is finite) is added to both covariance
    diagonals first. Result >= 0 up to rounding. O(D^3): :func:`fid_from_features` takes
    a shortcut when N <= D.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, S {s1.shape}/{s2.shape}")
    if eps:
        eye = np.eye(len(s1)) * eps
        s1, s2 = s1 + eye, s2 + eye
    r = _psd_sqrt(s1)
    cross = np.sqrt(_rank_clip(np.linalg.eigvalsh(r @ s2 @ r))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def _frechet_low_rank(f1: np.ndarray, f2: np.ndarray) -> float:
    """:func:`frechet_distance` of the sample statistics of ``[N1, D]`` and ``[N2, D]``
    float64 features (``eps = 0``), in O(N1 N2 D) instead of O(D^3).

    With centred features ``A_i`` and ``S_i = A_i^T A_i / (N_i - 1)``, the nonzero
    eigenvalues of ``S1 S2`` are those of ``M M^T``, ``M = A1 A2^T / sqrt((N1-1)(N2-1))``,
    so ``Tr((S1 S2)^{1/2})`` is the sum of ``M``'s singular values, and
    ``Tr(S_i) = |A_i|_F^2 / (N_i - 1)``. Agrees with the eigen route to ~1e-15.
    """
    (n1, _), (n2, _) = f1.shape, f2.shape
    a1, a2 = f1 - f1.mean(axis=0), f2 - f2.mean(axis=0)
    cross = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = f1.mean(axis=0) - f2.mean(axis=0)
    return float(diff @ diff + (a1 * a1).sum() / (n1 - 1) + (a2 * a2).sum() / (n2 - 1)
                 - 2.0 * cross)


def fid_from_features(f1, f2, eps: float = FID_EPS) -> dict:
    """FID between two feature sets ``[N1, D]`` and ``[N2, D]``, in float64.

    Returns ``{"value": float, "n": min(N1, N2), "n1", "n2", "eps", "warning": str|None}``;
    warns :class:`FewSamplesWarning` when a set has fewer than 2048 rows. With
    ``N1, N2 <= D`` and ``eps = 0`` (Table 1's 200 galaxies) the value comes from
    :func:`_frechet_low_rank` (milliseconds, where :func:`frechet_distance` takes seconds
    at D = 2048); the two agree to ~1e-15.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    for f in (f1, f2):
        if f.ndim != 2 or len(f) < 2 or f.shape[1] != f1.shape[1]:
            raise ValueError(f"need two [N, D] feature sets with N >= 2 and one D, got "
                             f"shapes {f1.shape} and {f2.shape}")
    n1, n2 = len(f1), len(f2)
    warning = None
    if min(n1, n2) < FID_DIMS:
        added = f"eps={eps:g} added" if eps else "trace term exact, no eps"
        warning = (f"FID from N={min(n1, n2)} < {FID_DIMS} images: singular covariances "
                   f"({added}), value biased upward")
        warnings.warn(warning, FewSamplesWarning, stacklevel=2)
    if not eps and max(n1, n2) <= f1.shape[1]:
        value = _frechet_low_rank(f1, f2)
    else:
        value = frechet_distance(*feature_stats(f1), *feature_stats(f2), eps)
    return {"value": value, "n": min(n1, n2), "n1": n1, "n2": n2, "eps": eps,
            "warning": warning}


# The 2015-12-05 TF Inception graph in pytorch-fid's module layout. Every conv is its
# BasicConv2d: conv without bias -> BatchNorm (eps 1e-3) -> ReLU. Keras layer names are the
# torch module paths ("Mixed_5b.branch1x1.conv"), so the weight mapping is by name. Torch
# pads stride-1 convs symmetrically by (k - 1) / 2, which is Keras "same"; the stride-2
# convs and pools have no padding ("valid").

def _bconv(x, name: str, filters: int, kernel, stride: int = 1, padding: str = "same"):
    """BasicConv2d ``name``: ``[N, H, W, C]`` -> ``[N, H', W', filters]``, >= 0."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=f"{name}.conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def _chain(x, block: str, *convs):
    """BasicConv2d after BasicConv2d; ``convs``: ``(branch, filters, kernel[, stride,
    padding])``, named ``<block>.<branch>``."""
    for branch, *args in convs:
        x = _bconv(x, f"{block}.{branch}" if block else branch, *args)
    return x


def _avg_pool(x):
    """3x3/1 average pool, padding 1, averaging only over real pixels: TF's "SAME" pool,
    which pytorch-fid reproduces with ``count_include_pad=False`` (its FIDInception patch)."""
    from keras import layers
    return layers.AveragePooling2D(3, 1, "same")(x)


def _inception_a(x, n: str, pool_features: int):
    """FIDInceptionA: 64 + 64 + 96 + ``pool_features`` channels, same size."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 64, 1)),
        _chain(x, n, ("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5)),
        _chain(x, n, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3),
               ("branch3x3dbl_3", 96, 3)),
        _chain(_avg_pool(x), n, ("branch_pool", pool_features, 1))])


def _inception_b(x, n: str):
    """InceptionB (Mixed_6a, unpatched): 384 + 96 + C channels, size (H - 3) // 2 + 1."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch3x3", 384, 3, 2, "valid")),
        _chain(x, n, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3),
               ("branch3x3dbl_3", 96, 3, 2, "valid")),
        layers.MaxPooling2D(3, 2)(x)])


def _inception_c(x, n: str, c7: int):
    """FIDInceptionC: 4 x 192 channels, same size; factorised 7x7 convs of width ``c7``."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 192, 1)),
        _chain(x, n, ("branch7x7_1", c7, 1), ("branch7x7_2", c7, (1, 7)),
               ("branch7x7_3", 192, (7, 1))),
        _chain(x, n, ("branch7x7dbl_1", c7, 1), ("branch7x7dbl_2", c7, (7, 1)),
               ("branch7x7dbl_3", c7, (1, 7)), ("branch7x7dbl_4", c7, (7, 1)),
               ("branch7x7dbl_5", 192, (1, 7))),
        _chain(_avg_pool(x), n, ("branch_pool", 192, 1))])


def _inception_d(x, n: str):
    """InceptionD (Mixed_7a, unpatched): 320 + 192 + C channels, size (H - 3) // 2 + 1."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2, "valid")),
        _chain(x, n, ("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7)),
               ("branch7x7x3_3", 192, (7, 1)), ("branch7x7x3_4", 192, 3, 2, "valid")),
        layers.MaxPooling2D(3, 2)(x)])


def _inception_e(x, n: str, max_pool: bool):
    """FIDInceptionE_1 (``max_pool=False``) / _2: 320 + 2x384 + 2x384 + 192 = 2048
    channels, same size. The 2015 graph's last block pools by max, not average (a quirk
    of that graph that pytorch-fid keeps; FIDs depend on it)."""
    from keras import layers
    b3 = _chain(x, n, ("branch3x3_1", 384, 1))
    bd = _chain(x, n, ("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3))
    pool = layers.MaxPooling2D(3, 1, "same")(x) if max_pool else _avg_pool(x)
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 320, 1)),
        _chain(b3, n, ("branch3x3_2a", 384, (1, 3))),
        _chain(b3, n, ("branch3x3_2b", 384, (3, 1))),
        _chain(bd, n, ("branch3x3dbl_3a", 384, (1, 3))),
        _chain(bd, n, ("branch3x3dbl_3b", 384, (3, 1))),
        _chain(pool, n, ("branch_pool", 192, 1))])


def build_pt_inception(size: int | None = None):
    """The FID Inception (pytorch-fid's ``InceptionV3([3])`` after its input transform) as
    a random-init ``keras.Model``: ``[N, size, size, 3]`` in ``[-1, 1]`` (``size`` >= 75,
    299 for real FIDs; ``None``: any) -> pool_3 features ``[N, 2048]`` float32, >= 0.
    Load weights with :func:`load_pt_inception`."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3))
    x = _chain(inp, "", ("Conv2d_1a_3x3", 32, 3, 2, "valid"), ("Conv2d_2a_3x3", 32, 3, 1, "valid"),
               ("Conv2d_2b_3x3", 64, 3))
    x = layers.MaxPooling2D(3, 2)(x)
    x = _chain(x, "", ("Conv2d_3b_1x1", 80, 1), ("Conv2d_4a_3x3", 192, 3, 1, "valid"))
    x = layers.MaxPooling2D(3, 2)(x)
    for n, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = _inception_a(x, n, pf)
    x = _inception_b(x, "Mixed_6a")
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _inception_c(x, n, c7)
    x = _inception_d(x, "Mixed_7a")
    x = _inception_e(x, "Mixed_7b", max_pool=False)
    x = _inception_e(x, "Mixed_7c", max_pool=True)
    return keras.Model(inp, layers.GlobalAveragePooling2D(name="pool_3")(x),
                       name="pt_inception")


#: A BatchNorm's Keras weights and the torch buffers/parameters they come from.
_BN = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
       ("moving_variance", "running_var"))


def pt_inception_layout(model) -> dict[str, tuple[int, ...]]:
    """The torch state dict of :func:`build_pt_inception`'s weights: name -> torch shape
    (``<m>.conv.weight`` ``[out, in, kh, kw]``; ``<m>.bn.weight|bias|running_mean|
    running_var`` ``[C]``). pytorch-fid's file has these plus ``fc.*`` (unused by pool_3)."""
    out = {}
    for layer in model.layers:
        if layer.name.endswith(".conv"):
            kh, kw, cin, cout = layer.kernel.shape
            out[f"{layer.name}.weight"] = (cout, cin, kh, kw)
        elif layer.name.endswith(".bn"):
            for _, t in _BN:
                out[f"{layer.name}.{t}"] = (layer.gamma.shape[0],)
    return out


def pt_inception_from_torch(state: dict, model=None) -> dict[str, np.ndarray]:
    """pytorch-fid's state dict (name -> array) -> our weight file's arrays: ``<m>.conv/
    kernel`` ``[kh, kw, in, out]`` and ``<m>.bn/gamma|beta|moving_mean|moving_variance``,
    float32, plus ``extractor`` = ``"pt_inception"``.

    ``fc.*`` (the 1008-class logits) and ``num_batches_tracked`` are dropped; a missing or
    mis-shaped array, or any other key (a torchvision Inception has ``AuxLogits.*``) is a
    one-line ``ValueError``: the file is not pytorch-fid's FID Inception.
    """
    layout = pt_inception_layout(model if model is not None else build_pt_inception())
    extra = sorted(k for k in state if k not in layout and not k.startswith("fc.")
                   and not k.endswith("num_batches_tracked"))
    if extra:
        raise ValueError(f"not pytorch-fid's FID Inception: unexpected key {extra[0]} "
                         f"({len(extra)} in all)")
    out = {"extractor": np.array("pt_inception")}
    for key, shape in layout.items():
        if key not in state:
            raise ValueError(f"not pytorch-fid's FID Inception: missing key {key}")
        a = np.asarray(state[key], np.float32)
        if a.shape != shape:
            raise ValueError(f"{key} has shape {a.shape}, expected {shape}")
        layer, what = key.rsplit(".", 1)
        if layer.endswith(".conv"):
            out[f"{layer}/kernel"] = a.transpose(2, 3, 1, 0)
        else:
            out[f"{layer}/{dict((t, k) for k, t in _BN)[what]}"] = a
    return out


def load_pt_inception(model, path: str) -> str:
    """Set :func:`build_pt_inception`'s weights from a converted ``.npz``
    (:func:`pt_inception_from_torch`); one-line ``ValueError`` on another file. Returns
    the sha256 of the ``.pth`` it was converted from ("" when not recorded)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:  # not an .npz (e.g. Keras' .h5): say so
        raise ValueError(f"{path}: not a pt_inception .npz "
                         f"(tools/convert_fid_weights.py makes one): {err}") from None
    if str(data.get("extractor", "")) != "pt_inception":
        raise ValueError(f"{path}: not pt_inception weights (extractor "
                         f"{str(data.get('extractor'))!r}; tools/convert_fid_weights.py "
                         "makes them)")
    for layer in model.layers:
        keys = ([f"{layer.name}/kernel"] if layer.name.endswith(".conv") else
                [f"{layer.name}/{k}" for k, _ in _BN] if layer.name.endswith(".bn") else [])
        if not keys:
            continue
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]}")
        for k, w in zip(keys, layer.get_weights()):
            if data[k].shape != w.shape:
                raise ValueError(f"{path}: {k} has shape {data[k].shape}, expected {w.shape}")
        layer.set_weights([np.asarray(data[k], np.float32) for k in keys])
    return str(data.get("source_sha256", ""))


class InceptionFeatures:
    """A FID feature extractor: ``[N, H, W, 3]`` in ``[0, 255]`` -> pool_3 ``[N, 2048]``
    float64.

    ``extractor``: ``"pt_inception"`` or ``"keras-inceptionv3"``; ``weights``: the file
    used (or random init); ``label``: ``"calibrated"``/``"uncalibrated"``. Images are
    resized bilinearly (half-pixel centres, no antialiasing) to ``size`` (299, what both
    networks were trained at; smaller only in tests, >= 75), after scaling to ``[0, 1]``
    and then to ``[-1, 1]`` for ``pt_inception`` (pytorch-fid's order), or on
    ``[0, 255]`` followed by ``inception_v3.preprocess_input`` for ``keras-inceptionv3``.
    Build with :func:`build_fid_extractor`.
    """

    def __init__(self, model, weights: str, calibrated: bool, size: int = 299,
                 extractor: str = "keras-inceptionv3"):
        self.model, self.weights, self.calibrated, self.size = model, weights, calibrated, size
        self.extractor = _check_extractor(extractor)
        self.label = "calibrated" if calibrated else UNCALIBRATED
        self._run = None

    def prepare(self, images):
        """The network input: ``[N, size, size, 3]`` float32 in ``[-1, 1]``."""
        import tensorflow as tf

        x = rgb255(images)  # validates shape and range
        if self.extractor == "pt_inception":
            x = tf.image.resize(x / 255.0, (self.size, self.size), method="bilinear")
            return 2.0 * x - 1.0
        from keras.applications import inception_v3
        x = tf.image.resize(x, (self.size, self.size), method="bilinear")
        return inception_v3.preprocess_input(np.array(x, np.float32))

    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        import tensorflow as tf

        if self._run is None:  # one traced graph: ~2x faster than eager on a CPU
            self._run = tf.function(lambda b: self.model(b, training=False),
                                    reduce_retracing=True)
        x = rgb255(images)
        out = [np.asarray(self._run(self.prepare(x[i:i + batch_size])), np.float64)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, FID_DIMS))

    def describe(self) -> str:
        """One line: which extractor and weights produced the numbers."""
        if self.extractor == "pt_inception":
            return (f"FID pt_inception (2015-12-05 TF Inception graph, pytorch-fid's port) "
                    f"pool_3 2048-d at {self.size}px ({self.label}; weights: {self.weights})")
        return (f"FID keras-inceptionv3 pool 2048-d at {self.size}px ({self.label}; weights: "
                f"{self.weights}; not comparable to FIDs from the 2015 TF Inception graph)")


def build_fid_extractor(extractor: str = FID_EXTRACTORS[0], weights: str | None = None,
                        allow_uncalibrated: bool = False, download: bool = False,
                        size: int = 299, seed: int = 0) -> InceptionFeatures:
    """The FID feature extractor (``"pt_inception"`` by default, alias ``"tf2015"``, or
    ``"keras-inceptionv3"``), with weights from :func:`fid_weights_path`.

    With no weights found: :class:`WeightsNotFound`, unless ``allow_uncalibrated``
    builds a random-init network labelled ``"uncalibrated"``.
    """
    import keras

    extractor = _check_extractor(extractor)
    try:
        path = fid_weights_path(extractor, weights, download)
    except WeightsNotFound:
        if not allow_uncalibrated:
            raise
        path = None
    if path is None:
        keras.utils.set_random_seed(seed)
    if extractor == "pt_inception":
        model = build_pt_inception(size)
    else:
        model = keras.applications.InceptionV3(include_top=False, pooling="avg",
                                               weights=None, input_shape=(size, size, 3))
    if path is None:
        return InceptionFeatures(model, f"random init seed {seed} ({UNCALIBRATED})", False,
                                 size, extractor)
    if extractor == "pt_inception":
        sha = load_pt_inception(model, path)
        path += f" (from .pth sha256 {sha[:16]}...)" if sha else ""
    else:
        model.load_weights(path)
    return InceptionFeatures(model, path, True, size, extractor)


# ----------------------------------------------------------------------------- parity

def seeded_state_dict(shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights in a reference (torch) layout, rebuilt bit for bit without
    torch: the parity golden files (``tools/parity_perceptual.py``) were made from them.

    Each array has its own numpy PCG64 stream, seeded by ``(seed, crc32(name))`` (so it
    does not depend on the order or number of the other arrays), and uses only
    ``Generator.random`` (uniform [0, 1) float64, a stable stream), then float32. Ranges by
    role, chosen so that a deep network neither saturates nor vanishes:

    * conv/linear weights ``U(-a, a)``, ``a = sqrt(6 / fan_in)`` (He-uniform: keeps the
      scale of ReLU activations over Inception's ~50 conv layers);
    * LPIPS lin weights ``U(0, 2 / C)`` (non-negative, as LPIPS requires);
    * BatchNorm ``weight``, ``running_var`` ``U(0.5, 1.5)``; ``bias``, ``running_mean``
      and conv biases ``U(-0.1, 0.1)``.
    """
    import zlib

    out = {}
    for name, shape in shapes.items():
        u = np.random.default_rng([seed, zlib.crc32(name.encode())]).random(shape)
        if re.fullmatch(r"lin\d\.model\.\d\.weight", name):
            a = u * 2.0 / shape[1]
        elif name.endswith(("running_var", "bn.weight")):
            a = 0.5 + u
        elif len(shape) >= 2:
            a = (2 * u - 1) * np.sqrt(6.0 / np.prod(shape[1:]))
        else:
            a = (2 * u - 1) * 0.1
        out[name] = a.astype(np.float32)
    return out


def parity_features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Synthetic pool_3-like features ``[n, d]`` float64 for Fréchet-distance parity
    checks, rebuilt bit for bit from the arguments (``Generator.random`` only).

    ``relu(z @ M + u - 0.3)``: 256 latent factors ``z ~ U(-1, 1) + shift`` mixed by a
    matrix ``M`` shared by every set of the same ``d`` (so two sets differ by ``shift``
    and sampling, as two image sets seen by one network do), plus uniform noise ``u``:
    non-negative, about half zero, correlated, like Inception's features; ``n < d``
    gives a singular covariance.
    """
    k = 256
    mix = (2 * np.random.default_rng(d).random((k, d)) - 1) * np.sqrt(12.0 / k)
    rng = np.random.default_rng([seed, n, d])
    z = 2 * rng.random((n, k)) - 1 + shift
    return np.maximum(z @ mix + rng.random((n, d)) - 0.3, 0.0)


# ----------------------------------------------------------------------------- Table 1

class PerceptualSet:
    """Accumulates LPIPS and FID over a test set.

    ``lpips``: an :class:`LPIPS` or ``None``; ``fid``: an :class:`InceptionFeatures` or
    ``None``; ``None`` makes that metric unavailable, with the reason given in
    ``lpips_reason`` / ``fid_reason``. :meth:`build` does the weight lookups and turns a
    :class:`WeightsNotFound` into "unavailable (no weights)".

    :meth:`result` returns ``{"lpips": entry, "fid": entry}`` where an entry is either
    ``{"unavailable": "unavailable (no weights)", "reason": one line}`` or

    * lpips: ``{"mean", "n", "net", "weights", "label"}`` (``label``: ``"calibrated"`` or
      ``"uncalibrated"``), the mean of per-image distances;
    * fid: ``{"value", "n", "n1", "n2", "eps", "warning", "extractor", "weights", "label"}``,
      pred set vs target set.
    """

    def __init__(self, lpips: LPIPS | None = None, fid: InceptionFeatures | None = None,
                 lpips_reason: str = "not requested", fid_reason: str = "not requested"):
        self.lpips, self.fid = lpips, fid
        self.lpips_reason, self.fid_reason = lpips_reason, fid_reason
        self._d: list[np.ndarray] = []
        self._fp: list[np.ndarray] = []
        self._ft: list[np.ndarray] = []

    @classmethod
    def build(cls, lpips_net: str | None = "alex", lpips_weights: str | None = None,
              fid_extractor: str | None = FID_EXTRACTORS[0], fid_weights: str | None = None,
              allow_uncalibrated: bool = False, download: bool = False,
              fid_size: int = 299) -> "PerceptualSet":
        """Look up weights and build the networks; a metric whose weights are missing (or
        whose net is ``None``) is unavailable instead of an error."""
        lp = fd = None
        lr = fr = "not requested"
        if lpips_net:
            try:
                lp = build_lpips(lpips_net, lpips_weights, allow_uncalibrated)
            except WeightsNotFound as err:
                lr = str(err)
        if fid_extractor:
            try:
                fd = build_fid_extractor(fid_extractor, fid_weights, allow_uncalibrated,
                                         download, fid_size)
            except WeightsNotFound as err:
                fr = str(err)
        return cls(lp, fd, lr, fr)

    def update(self, pred, target) -> None:
        """Add images ``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` (uint8 or float)."""
        p, t = to_unit(pred), to_unit(target)
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
        if self.lpips is not None:
            self._d.append(self.lpips(p, t))
        if self.fid is not None:
            self._fp.append(self.fid(rgb255(pred)))  # [0, 255] as given: no rounding
            self._ft.append(self.fid(rgb255(target)))

    def result(self) -> dict:
        """``{"lpips": entry, "fid": entry}`` (see the class docstring)."""
        out = {}
        if self.lpips is None:
            out["lpips"] = {"unavailable": UNAVAILABLE, "reason": self.lpips_reason}
        else:
            d = np.concatenate(self._d) if self._d else np.zeros(0)
            out["lpips"] = {"mean": float(d.mean()) if d.size else float("nan"),
                            "n": int(d.size), "net": self.lpips.net,
                            "weights": self.lpips.weights, "label": self.lpips.label}
        if self.fid is None:
            out["fid"] = {"unavailable": UNAVAILABLE, "reason": self.fid_reason}
        else:
            fp, ft = (np.concatenate(f) if f else np.zeros((0, 2048)) for f in (self._fp, self._ft))
            entry = (fid_from_features(fp, ft) if min(len(fp), len(ft)) >= 2 else
                     {"value": float("nan"), "n": len(fp), "warning": "fewer than 2 images"})
            entry.update(extractor=self.fid.extractor, weights=self.fid.weights,
                         label=self.fid.label)
            out["fid"] = entry
        return out

    def describe(self) -> list[str]:
        """One line per metric: which network and weights (or why unavailable)."""
        return [self.lpips.describe() if self.lpips else f"LPIPS: {UNAVAILABLE} ({self.lpips_reason})",
                self.fid.describe() if self.fid else f"FID: {UNAVAILABLE} ({self.fid_reason})"]


def cell(entry: dict, digits: int = 3) -> str:
    """A table cell for a :meth:`PerceptualSet.result` entry: ``"0.123"``,
    ``"0.123 (uncalibrated)"`` or ``"unavailable (no weights)"``."""
    if "unavailable" in entry:
        return entry["unavailable"]
    v = entry.get("mean", entry.get("value"))
    text = f"{v:.{digits}f}"
    return text + f" ({UNCALIBRATED})" if entry.get("label") == UNCALIBRATED else text


def perceptual_scores(pairs: Iterable, **build) -> dict:
    """:meth:`PerceptualSet.result` over ``(pred, target)`` batches in ``[0, 255]``;
    ``build`` goes to :meth:`PerceptualSet.build`. Adds ``"describe"``: its lines."""
    ps = PerceptualSet.build(**build)
    for pred, target in pairs:
        ps.update(pred, target)
    out = ps.result()
    out["describe"] = ps.describe()
    return out
