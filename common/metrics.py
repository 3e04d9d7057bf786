"""Pixel image-quality metrics of Luo et al. (2025) Table 1: RMSE, PSNR and SSIM.

Conventions (``shared/notes/metrics.md``):

* Every metric is computed **per image** on pixel values in ``[0, 255]`` (uint8 or float;
  use :func:`common.images.denormalize` on generator output first) and the test-set value
  is the **mean of the per-image values**. For PSNR this differs from the PSNR of the
  pooled (test-set mean) MSE, which :meth:`MetricSet.pooled_psnr` gives for comparison;
  by Jensen's inequality the per-image mean is the larger of the two.
* RMSE (Luo eq. 9) is over all ``M x N x C`` values of one image.
* PSNR (Luo eq. 10) uses ``MAX = 255`` and each image's own MSE. Identical images have
  MSE = 0 and PSNR = ``+inf``; a set containing one then has an infinite mean PSNR
  (reported as is, never silently clipped).
* SSIM (Luo eq. 11) is Wang et al. (2004): ``L = 255``, ``K1 = 0.01``, ``K2 = 0.03``, an 11x11
  Gaussian window with sigma = 1.5, population (co)variances, ``VALID`` windows only,
  averaged over positions and then over channels. This is ``tf.image.ssim(max_val=255)``;
  scikit-image matches it only with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255``.

LPIPS and FID need pretrained weights; they live in :mod:`common.lpips` and
:mod:`common.fid` and are used through :class:`common.perceptual.PerceptualSet` (same
``update(pred, target)`` / ``result()`` pattern on ``[0, 255]`` images; "unavailable
(no weights)" when none are found).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf

#: Dynamic range L of 8-bit images (Luo eq. 10's MAX and Luo eq. 11's L).
MAX_VAL = 255.0

#: Metric names in Table 1 order, as keys of :meth:`MetricSet.result`.
NAMES = ("rmse", "psnr", "ssim")

#: tf.image.ssim's window is 11x11; images must be at least this large.
_SSIM_WINDOW = 11


def _as_batch(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Check a pair of images/batches and return both as float64 ``[N, H, W, C]``."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if p.ndim == 3:
        p, t = p[None], t[None]
    if p.ndim != 4:
        raise ValueError(f"expected [N, H, W, C] or [H, W, C] images, got shape {p.shape}")
    for name, x in (("pred", p), ("target", t)):
        if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > MAX_VAL):
            raise ValueError(
                f"{name} values must lie in [0, 255] (got [{x.min():g}, {x.max():g}]); "
                "denormalize [-1, 1] model output with common.images.denormalize"
            )
    return p, t


def mse(pred, target) -> np.ndarray:
    """Per-image mean squared error over ``H x W x C``.

    Args:
        pred, target: ``[N, H, W, C]`` or ``[H, W, C]`` arrays/tensors in ``[0, 255]``.
    Returns:
        float64 ``[N]`` (``N = 1`` for a single image).
    """
    p, t = _as_batch(pred, target)
    return np.mean((p - t) ** 2, axis=(1, 2, 3))


def rmse(pred, target) -> np.ndarray:
    """Per-image RMSE, Luo eq. 9: ``sqrt(sum_ijk (I_ijk - K_ijk)^2 / (M N C))``.

    Args/returns as :func:`mse`; values in ``[0, 255]``, 0 for identical images.
    """
    return np.sqrt(mse(pred, target))


def psnr_from_mse(mse_values, max_val: float = MAX_VAL) -> np.ndarray:
    """Luo eq. 10, ``10 log10(MAX^2 / MSE)`` in dB, elementwise; ``MSE = 0`` gives ``+inf``."""
    m = np.asarray(mse_values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(max_val**2 / m)


def psnr(pred, target, max_val: float = MAX_VAL) -> np.ndarray:
    """Per-image PSNR in dB (Luo eq. 10) from each image's own MSE.

    Args/returns as :func:`mse`; identical images give ``+inf``.
    """
    return psnr_from_mse(mse(pred, target), max_val)


def ssim(pred, target) -> np.ndarray:
    """Per-image SSIM (Luo eq. 11; Wang et al. 2004), averaged over channels.

    ``L = 255, K1 = 0.01, K2 = 0.03``, 11x11 Gaussian window, sigma = 1.5, computed by
    ``tf.image.ssim`` (float32 internally: agrees with scikit-image to ~1e-5).

    Args:
        pred, target: ``[N, H, W, C]`` or ``[H, W, C]`` in ``[0, 255]``, ``H, W >= 11``.
    Returns:
        float64 ``[N]`` in ``[-1, 1]``; 1 for identical images.
    """
    p, t = _as_batch(pred, target)
    if min(p.shape[1:3]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} "
                         f"pixels, got {p.shape[1]}x{p.shape[2]}")
    values = tf.image.ssim(tf.constant(p, tf.float32), tf.constant(t, tf.float32),
                           max_val=MAX_VAL, filter_size=_SSIM_WINDOW, filter_sigma=1.5,
                           k1=0.01, k2=0.03)
    return values.numpy().astype(np.float64)


class MetricSet:
    """Streaming accumulator of per-image RMSE, PSNR and SSIM over a test set.

    Feed it batches with :meth:`update`; only the per-image scalars are kept (three
    float64 numbers per image), never the images, so any number of images fits.

    >>> ms = MetricSet()
    >>> for pred, target in batches:      # each [B, H, W, C] in [0, 255]
    ...     ms.update(pred, target)
    >>> ms.result()["psnr"]               # {"mean": ..., "std": ..., "n": ...}
    """

    def __init__(self) -> None:
        self._mse: list[np.ndarray] = []
        self._ssim: list[np.ndarray] = []

    def update(self, pred, target) -> None:
        """Add a batch: ``[B, H, W, C]`` (or one ``[H, W, C]`` image) in ``[0, 255]``."""
        m = mse(pred, target)
        s = ssim(pred, target)
        self._mse.append(m)
        self._ssim.append(s)

    @property
    def n(self) -> int:
        """Number of images seen so far."""
        return int(sum(len(m) for m in self._mse))

    def values(self) -> dict[str, np.ndarray]:
        """Per-image values, float64 ``[n]`` each, keyed ``rmse``, ``psnr``, ``ssim``."""
        m = np.concatenate(self._mse) if self._mse else np.zeros(0)
        s = np.concatenate(self._ssim) if self._ssim else np.zeros(0)
        return {"rmse": np.sqrt(m), "psnr": psnr_from_mse(m), "ssim": s}

    def result(self) -> dict[str, dict[str, float]]:
        """Per metric: ``mean`` of per-image values (Table 1's number), sample ``std``
        (ddof = 1; NaN for fewer than two images) and ``n``. Raises if nothing was seen.
        """
        if self.n == 0:
            raise ValueError("MetricSet.result() called before any update()")
        out = {}
        for name, v in self.values().items():
            with np.errstate(invalid="ignore"):  # inf - inf in std when PSNR = inf
                std = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
            out[name] = {"mean": float(np.mean(v)), "std": std, "n": len(v)}
        return out

    def pooled_psnr(self) -> float:
        """PSNR of the test-set mean MSE (not what Table 1 reports; for comparison)."""
        if self.n == 0:
            raise ValueError("MetricSet.pooled_psnr() called before any update()")
        return float(psnr_from_mse(np.mean(np.concatenate(self._mse))))


def accumulate(batches: Iterable) -> MetricSet:
    """Run a :class:`MetricSet` over an iterable of ``(pred, target)`` batches in [0, 255]."""
    ms = MetricSet()
    for pred, target in batches:
        ms.update(pred, target)
    return ms


#: Faintest fraction of each target image (by smoothed luminance) taken as sky, and the
#: brightest fraction taken as the galaxy, by :class:`SkyColour`.
SKY_FRACTION = 0.5
GALAXY_FRACTION = 0.05


def _smoothed_luminance(t: np.ndarray, box: int = 5) -> np.ndarray:
    """``[N, H, W]``: the channel mean of ``t`` ``[N, H, W, C]``, box-averaged over
    ``box x box`` pixels so that single noise pixels do not decide the masks."""
    lum = tf.reduce_mean(tf.constant(t, tf.float32), -1, keepdims=True)
    return tf.nn.avg_pool2d(lum, box, 1, "SAME").numpy()[..., 0]


class SkyColour:
    """Streaming sky offset and colour bias of predictions against their targets.

    Per image, masks come from the *target* alone: sky = the faintest ``SKY_FRACTION``
    of pixels, galaxy = the brightest ``GALAXY_FRACTION`` (by 5x5-smoothed luminance).
    Grey levels on [0, 255], RGB planes as rendered (Luo et al.: R = i, G = r, B = g):

    * ``sky``: mean of ``pred - target`` over sky pixels, per channel ``(R, G, B)``;
    * ``colour``: over galaxy pixels, the bias of the two colours ``B - G`` (g - r) and
      ``G - R`` (r - i): ``mean((pred_B - pred_G) - (target_B - target_G))``, ...

    Same ``update(pred, target)`` / ``result()`` pattern as :class:`MetricSet`.
    """

    def __init__(self) -> None:
        self._sky: list[np.ndarray] = []
        self._colour: list[np.ndarray] = []

    def update(self, pred, target) -> None:
        """Add a batch: ``[B, H, W, 3]`` (or one ``[H, W, 3]``) in ``[0, 255]``."""
        p, t = _as_batch(pred, target)
        lum = _smoothed_luminance(t).reshape(len(t), -1)
        d = (p - t).reshape(len(t), -1, p.shape[-1])
        lo = lum <= np.quantile(lum, SKY_FRACTION, axis=1, keepdims=True)
        hi = lum >= np.quantile(lum, 1.0 - GALAXY_FRACTION, axis=1, keepdims=True)
        self._sky.append(np.stack([d[i][lo[i]].mean(0) for i in range(len(t))]))
        core = np.stack([d[i][hi[i]].mean(0) for i in range(len(t))])  # [B, (R, G, B)]
        self._colour.append(np.stack([core[:, 2] - core[:, 1],
                                      core[:, 1] - core[:, 0]], -1))

    def result(self) -> dict[str, list[float] | float]:
        """``sky``: mean offset per channel (R, G, B); ``sky_abs``: the mean of their
        absolute values; ``colour``: mean bias of (g - r, r - i); ``colour_abs``: the
        mean of their absolute values. All in grey levels."""
        if not self._sky:
            raise ValueError("SkyColour.result() called before any update()")
        sky = np.concatenate(self._sky).mean(0)
        colour = np.concatenate(self._colour).mean(0)
        return {"sky": sky.tolist(), "sky_abs": float(np.abs(sky).mean()),
                "colour": colour.tolist(), "colour_abs": float(np.abs(colour).mean())}
