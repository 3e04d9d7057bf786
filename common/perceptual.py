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
    in float64, with ``eps`` added to both covariance diagonals (the pytorch-fid /
    clean-fid remedy for singular covariances, which N < 2048 images always give). N is
    reported and N < 2048 warns (:class:`FewSamplesWarning`): FID is biased upward at
    small N. Feature extractors:

    * ``"keras-inceptionv3"``: ``keras.applications.InceptionV3(include_top=False,
      pooling="avg")`` with Keras' ImageNet weights, images resized bilinearly to
      299x299 and ``inception_v3.preprocess_input`` (``x / 127.5 - 1``). **Its FIDs are
      not comparable to the paper's**, which (like every published FID) come from the
      2015-12-05 TF Inception graph.
    * ``"pt_inception"`` (alias ``"tf2015"``): that 2015 graph as ported by pytorch-fid.
      Not supported yet (:class:`ExtractorNotSupported`): its blocks differ from Keras'
      InceptionV3 and need their own Keras port.

Weights (looked up in this order; a lookup that finds nothing raises
:class:`WeightsNotFound` with a one-line message):

* LPIPS: ``weights=PATH`` > ``$LPIPS_WEIGHTS`` > ``$KERAS_HOME/models/lpips_<net>_v0.1.npz``.
  The ``.npz`` holds named float32 arrays in Keras layout (:func:`npz_layout`) and is
  made once from the two reference ``.pth`` files by ``tools/convert_lpips_weights.py``
  (needs torch, with internet: it downloads them into ``$KERAS_HOME/models``).
* FID: ``weights=PATH`` > ``$FID_WEIGHTS`` > ``$KERAS_HOME/models/<Keras' own file name>``
  (a pre-placed file skips the download) > with ``download=True``, ``keras.utils.get_file``
  from the Keras URL, md5-checked. The file is Keras' ``..._notop.h5`` or any
  ``.weights.h5`` saved from ``keras.applications.InceptionV3(include_top=False)``.

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
#: Default epsilon added to covariance diagonals (pytorch-fid's value).
FID_EPS = 1e-6

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


class ExtractorNotSupported(ValueError):
    """A FID feature extractor that is known but not implemented; says why."""


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


def fid_weights_path(extractor: str = "keras-inceptionv3", weights: str | None = None,
                     download: bool = False, origin: str | None = None) -> str:
    """Path of the FID extractor weights: ``weights`` > ``$FID_WEIGHTS`` > the Keras cache
    file > (``download=True``) :func:`fetch` from ``origin`` or the Keras URL.

    Raises :class:`WeightsNotFound` (one line) when none is found and ``download`` is
    off, :class:`ExtractorNotSupported` for ``"pt_inception"``.
    """
    extractor = _check_extractor(extractor)
    for given, how in ((weights, "weights="), (os.environ.get(FID_ENV), f"${FID_ENV}=")):
        if given:
            if not os.path.isfile(given):
                raise WeightsNotFound(f"FID weights {how}{given}: no such file")
            return given
    src = SOURCES[extractor]
    cached = cache_path(src.fname)
    if download or os.path.isfile(cached):
        return fetch(src, origin)  # a valid cached file is returned without downloading
    raise WeightsNotFound(
        f"no {extractor} weights: pass weights=PATH, set ${FID_ENV}, put {cached}, "
        "or allow the download")


# ----------------------------------------------------------------------------- LPIPS

def to_unit(images) -> np.ndarray:
    """``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` -> float32 in ``[-1, 1]``."""
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] RGB images, got shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"pixel values must lie in [0, 255], got [{x.min():g}, {x.max():g}]")
    return x / 127.5 - 1.0


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
    if extractor in ("pt_inception", "tf2015"):
        raise ExtractorNotSupported(
            "FID extractor 'pt_inception' (2015-12-05 TF Inception graph, pytorch-fid's "
            f"{SOURCES['pt_inception'].fname}) is not supported yet: its blocks differ "
            "from keras InceptionV3 and need their own Keras port; use 'keras-inceptionv3' "
            "(FIDs not comparable to the paper's)")
    if extractor != "keras-inceptionv3":
        raise ValueError(f"unknown FID extractor {extractor!r}; choose 'keras-inceptionv3'")
    return extractor


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and sample covariance ``[D, D]`` (float64, ``ddof=1``) of ``[N, D]``."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need [N, D] features with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, s1, mu2, s2, eps: float = FID_EPS) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` in float64.

    ``eps`` is added to both covariance diagonals first (keeps a singular covariance,
    N < D, well defined). ``Tr((S1 S2)^{1/2})`` is computed as the sum of the square roots
    of the eigenvalues of ``S1^{1/2} S2 S1^{1/2}`` (similar to ``S1 S2``, symmetric PSD),
    so no complex parts arise. Result >= 0 up to rounding.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, S {s1.shape}/{s2.shape}")
    eye = np.eye(len(s1)) * eps
    s1, s2 = s1 + eye, s2 + eye
    r = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def fid_from_features(f1, f2, eps: float = FID_EPS) -> dict:
    """FID between two feature sets ``[N1, D]`` and ``[N2, D]``.

    Returns ``{"value": float, "n": min(N1, N2), "n1", "n2", "eps", "warning": str|None}``;
    warns :class:`FewSamplesWarning` when a set has fewer than 2048 rows.
    """
    (m1, s1), (m2, s2) = feature_stats(f1), feature_stats(f2)
    n1, n2 = len(f1), len(f2)
    warning = None
    if min(n1, n2) < FID_DIMS:
        warning = (f"FID from N={min(n1, n2)} < {FID_DIMS} images: singular covariances "
                   f"(eps={eps:g} added), value biased upward")
        warnings.warn(warning, FewSamplesWarning, stacklevel=2)
    return {"value": frechet_distance(m1, s1, m2, s2, eps), "n": min(n1, n2), "n1": n1,
            "n2": n2, "eps": eps, "warning": warning}


class InceptionFeatures:
    """A FID feature extractor: ``[N, H, W, 3]`` in ``[0, 255]`` -> pool_3 ``[N, 2048]``.

    ``extractor``: ``"keras-inceptionv3"``; ``weights``: the file used (or random init);
    ``label``: ``"calibrated"``/``"uncalibrated"``. Images are resized bilinearly to
    ``size`` (299, what the weights were trained at; smaller only in tests, >= 75) and
    passed through ``inception_v3.preprocess_input``. Build with :func:`build_fid_extractor`.
    """

    def __init__(self, model, weights: str, calibrated: bool, size: int = 299):
        self.model, self.weights, self.calibrated, self.size = model, weights, calibrated, size
        self.extractor = "keras-inceptionv3"
        self.label = "calibrated" if calibrated else UNCALIBRATED

    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        import tensorflow as tf
        from keras.applications import inception_v3

        x = to_unit(images)  # validates shape and range
        out = []
        for i in range(0, len(x), batch_size):
            b = (x[i:i + batch_size] + 1.0) * 127.5
            b = tf.image.resize(b, (self.size, self.size), method="bilinear")
            b = inception_v3.preprocess_input(np.array(b, np.float32))
            out.append(np.asarray(self.model(b, training=False), np.float64))
        return np.concatenate(out) if out else np.zeros((0, 2048))

    def describe(self) -> str:
        """One line: which extractor and weights produced the numbers."""
        return (f"FID keras-inceptionv3 pool 2048-d at {self.size}px ({self.label}; weights: "
                f"{self.weights}; not comparable to FIDs from the 2015 TF Inception graph)")


def build_fid_extractor(extractor: str = "keras-inceptionv3", weights: str | None = None,
                        allow_uncalibrated: bool = False, download: bool = False,
                        size: int = 299, seed: int = 0) -> InceptionFeatures:
    """The FID feature extractor, with weights from :func:`fid_weights_path`.

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
    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                           input_shape=(size, size, 3))
    if path is None:
        return InceptionFeatures(model, f"random init seed {seed} ({UNCALIBRATED})", False, size)
    model.load_weights(path)
    return InceptionFeatures(model, path, True, size)


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
              fid_extractor: str | None = "keras-inceptionv3", fid_weights: str | None = None,
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
            self._fp.append(self.fid((p + 1) * 127.5))
            self._ft.append(self.fid((t + 1) * 127.5))

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
