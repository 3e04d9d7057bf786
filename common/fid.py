"""FID (Heusel et al. 2017), Luo et al. (2025) Table 1's distribution distance.

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


Weights: ``pt_inception``: ``weights=PATH`` > ``$FID_WEIGHTS`` >
``$KERAS_HOME/models/pt_inception-2015-12-05-6726825d.npz``, made once from pytorch-fid's
``.pth`` (sha256 checked against the ``6726825d`` its name publishes) by
``tools/convert_fid_weights.py`` (needs torch; :mod:`common.inception`).
``keras-inceptionv3``: ``weights=PATH`` > ``$FID_WEIGHTS`` > ``$KERAS_HOME/models/<Keras'
own file name>`` (a pre-placed file skips the download) > with ``download=True``,
``keras.utils.get_file`` from the Keras URL, md5-checked. The file is Keras'
``..._notop.h5`` or any ``.weights.h5`` saved from
``keras.applications.InceptionV3(include_top=False)``. Build the extractor with
:func:`build_fid_extractor`; Table 1 uses it through
:class:`common.perceptual.PerceptualSet`.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from common.inception import PT_INCEPTION_NPZ, build_pt_inception, load_pt_inception
from common.weights import (SOURCES, UNCALIBRATED, WeightsNotFound, cache_path, fetch,
                            given_weights)

#: Environment variable naming a local FID weights file.
FID_ENV = "FID_WEIGHTS"
#: Fewer images than features: singular covariances, biased FID.
FID_DIMS = 2048
#: Default epsilon added to covariance diagonals: none. Our trace term is exact for
#: singular covariances; pytorch-fid adds 1e-6 only when its ``sqrtm`` is not finite.
FID_EPS = 0.0
#: FID extractors; the first is the default (the one published FIDs use).
FID_EXTRACTORS = ("pt_inception", "keras-inceptionv3")
#: Other names of an extractor.
FID_ALIASES = {"tf2015": "pt_inception"}


class FewSamplesWarning(UserWarning):
    """FID from fewer than 2048 images per set (singular covariances, upward bias)."""


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


def _check_extractor(extractor: str) -> str:
    """The canonical extractor name (aliases resolved); ``ValueError`` if unknown."""
    name = FID_ALIASES.get(extractor, extractor)
    if name not in FID_EXTRACTORS:
        raise ValueError(f"unknown FID extractor {extractor!r}; choose one of "
                         f"{FID_EXTRACTORS} (or an alias: {sorted(FID_ALIASES)})")
    return name


def fid_weights_path(extractor: str = FID_EXTRACTORS[0], weights: str | None = None,
                     download: bool = False, origin: str | None = None) -> str:
    """Path of the FID extractor weights: ``weights`` > ``$FID_WEIGHTS`` > the Keras cache
    file (``pt_inception``: :data:`common.inception.PT_INCEPTION_NPZ`;
    ``keras-inceptionv3``: Keras' own file name) > for ``keras-inceptionv3`` with
    ``download=True``, :func:`common.weights.fetch` from ``origin`` or the Keras URL.

    Raises :class:`common.weights.WeightsNotFound` (one line) when none is found.
    ``pt_inception`` cannot be downloaded ready to use: its ``.pth`` needs a one-time
    conversion with torch (``tools/convert_fid_weights.py``), which the message names.
    """
    extractor = _check_extractor(extractor)
    given = given_weights(weights, FID_ENV, "FID")
    if given:
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

    With no weights found: :class:`common.weights.WeightsNotFound`, unless
    ``allow_uncalibrated`` builds a random-init network labelled ``"uncalibrated"``.
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
