"""Hallucination flag: structure in a pseudo-HSC image that the input does not support
(issue 16).

Both images are r-band flux in the same units on the same 0.168" grid (nMgy per 0.168"
px: ``experiments.photometry.to_flux`` of the JPEGs; DECaLS/SDSS r and HSC r are close
enough that a smooth body cancels). A constant background cancels in the band-pass.

1. Band-pass at a PSF: ``bp_s(a) = G_s(a - G_3s(a))``, ``s`` the PSF sigma in pixels
   (HSC r 0.75" for the prediction, the input survey's r seeing for the input, from
   :mod:`data.surveys`). Smoothing with the PSF is the matched filter of a point source;
   removing the image smoothed over 3 PSF sigmas takes away the galaxy's smooth body,
   so knots and arms on it become local peaks (the high-pass of
   ``experiments.photometry.hallucination``'s ``true_peaks``).
2. Noise: 1.4826 MAD of the whole band-passed image after 3-sigma clipping (robust to
   the galaxy's structure, which covers a minority of pixels, and right for correlated
   noise: measured after the filter, not scaled from a pixel sigma). With ``pred_sigma``
   (the model spread per pixel) the prediction's noise is ``sqrt(sky_bp^2 +
   G_s(pred_sigma)^2)``: the spread smoothed as if fully correlated over the PSF, which
   is what a knot present in some ensemble members and not in others looks like (it
   overstates a white spread, so it flags less, never more).
3. Peaks: local maxima of the prediction's ``bp`` above ``k`` times its noise.
4. Counterpart: each peak is modelled as a point source of flux ``F`` (its ``bp``
   divided by the band-pass response to a unit PSF); the prediction *without* it,
   blurred to the input's PSF, is subtracted from the input, and the knot's S/N in the
   input is that residual's band-pass (plus the ``F`` the model removed, so a knot the
   input shows adds back to ``F``) over the residual's noise, the best within
   ``radius`` px. A peak is flagged when that S/N is below ``k_input``. Why not look
   for a peak of the input alone: at the input's wider PSF a knot on the galaxy's
   slope is a shoulder, not a local maximum, and the band-passed body itself is
   positive over ~15 px around the core; the residual against the prediction's own
   body removes both.

:func:`flag_peaks` returns the peaks with their S/N, :func:`flag_unsupported` a mask with
a disk around each flagged one. Purity and completeness against the simulator's
noise-free truth: ``experiments.photometry.hallucination_scores``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from data.surveys import FWHM_PER_SIGMA, HSC, LUO_PIXSCALE, get_survey

#: Prediction threshold in sigmas of its band-passed noise. 5 sigma, as
#: ``experiments.photometry.hallucination``'s ``k_peak``: a 128 x 128 stamp holds
#: ~128^2 / (4 pi s^2) ~ 360 independent PSF-smoothed elements (HSC s = 1.9 px) and the
#: one-sided Gaussian tail above 5 sigma is 2.9e-7, so pure noise gives ~1e-4 false
#: peaks per stamp.
K_PRED = 5.0
#: An input counterpart must reach 3 sigma of the input's band-passed residual noise:
#: the best of a disk of radius HWHM (~1 independent element of the input's PSF) is
#: above 3 sigma by chance for ~0.3 % of peaks, while a knot the input shows at its
#: own lower S/N (>= 3) still counts.
K_INPUT = 3.0
#: Minimum distance (px) between two peaks, as ``experiments.photometry``'s peak counts.
MIN_DIST = 3
#: Peaks closer than this (px) to the edge are ignored (the filters reflect there).
EDGE = 2
#: The smooth part removed by the band-pass: the image smoothed by this many PSF sigmas.
WIDE = 3.0
#: Clipping of the robust noise estimate (sigmas) and its iterations.
CLIP, CLIP_ITERS = 3.0, 5


def psf_sigma_px(survey: str, band: str = "r") -> float:
    """Gaussian sigma (0.168" px) of a survey's median seeing in ``band``."""
    return get_survey(survey).psf_fwhm[band] / FWHM_PER_SIGMA / LUO_PIXSCALE


def psf_fwhm_px(survey: str, band: str = "r") -> float:
    """A survey's median seeing FWHM in ``band``, in 0.168" px."""
    return get_survey(survey).psf_fwhm[band] / LUO_PIXSCALE


def band_pass(img: np.ndarray, s: float) -> np.ndarray:
    """``G_s(img - G_{WIDE s}(img))``: PSF-scale structure, smooth body and background
    removed. ``[H, W]`` -> ``[H, W]`` float64, same units."""
    a = np.asarray(img, np.float64)
    return ndimage.gaussian_filter(a - ndimage.gaussian_filter(a, WIDE * s), s)


def robust_sigma(a: np.ndarray) -> float:
    """1.4826 MAD about the median, iterated with ``CLIP``-sigma clipping: the noise of
    an image whose sources cover a minority of pixels."""
    v = np.asarray(a, np.float64).ravel()
    v = v[np.isfinite(v)]
    sig = 0.0
    for _ in range(CLIP_ITERS):
        med = np.median(v)
        sig = 1.4826 * float(np.median(np.abs(v - med)))
        keep = np.abs(v - med) <= CLIP * sig
        if sig == 0 or keep.all():
            break
        v = v[keep]
    return sig


def _r_plane(a: np.ndarray, what: str) -> np.ndarray:
    """2-D images are the r band; ``[H, W, 3]`` stacks give their r plane (index 1 in
    every Luo survey's ``rgb_bands``: g, r, i or g, r, z)."""
    a = np.asarray(a, np.float64)
    if a.ndim == 3 and a.shape[-1] == 3:
        return a[..., HSC.rgb_bands.index("r")]
    if a.ndim != 2:
        raise ValueError(f"{what} must be [H, W] (r band) or [H, W, 3], got {a.shape}")
    return a


def _point_kernel(s_src: float, s_bp: float, r: int | None = None) -> np.ndarray:
    """``bp_{s_bp}`` of a unit-flux Gaussian of sigma ``s_src`` at the centre of a grid
    (computed with the same filters, so it matches them exactly); the central
    ``[2r+1, 2r+1]`` window, or the whole grid when ``r`` is None."""
    h = int(np.ceil(6 * WIDE * max(s_src, s_bp)))
    d = np.zeros((2 * h + 1, 2 * h + 1))
    d[h, h] = 1.0
    k = band_pass(ndimage.gaussian_filter(d, s_src), s_bp)
    return k if r is None else k[h - r:h + r + 1, h - r:h + r + 1]


def _point_response(s_src: float, s_bp: float) -> float:
    """Central value of :func:`_point_kernel`: a unit point source's band-passed peak."""
    return float(_point_kernel(s_src, s_bp, 0)[0, 0])


def flag_peaks(pred_flux: np.ndarray, input_flux: np.ndarray, *,
               pred_sigma: np.ndarray | None = None, input_survey: str = "decals",
               k: float = K_PRED, k_input: float = K_INPUT, radius: float | None = None
               ) -> dict:
    """Peaks of the prediction and whether the input supports them.

    Args:
        pred_flux: pseudo-HSC, ``[H, W]`` r band or ``[H, W, 3]`` (g, r, i), nMgy per
            0.168" px (background need not be removed).
        input_flux: the input on the same grid and in the same units, ``[H, W]`` r or
            ``[H, W, 3]`` (DECaLS g, r, z or SDSS g, r, i).
        pred_sigma: per-pixel standard deviation of the prediction (same shape and units
            as ``pred_flux``), or None: the noise is then measured from the image.
        input_survey: survey of the input (``decals`` or ``sdss``): its r seeing sets
            the input's filter and the default ``radius``.
        k: prediction threshold in sigmas (:data:`K_PRED`).
        k_input: input support threshold in sigmas (:data:`K_INPUT`).
        radius: search radius (px) for the counterpart; default half the input's r PSF
            FWHM (3.5 px for DECaLS: the knot's position is known from the sharper
            prediction, so only a sub-PSF offset between the grids is allowed for).

    Returns:
        dict: ``peaks`` ``[N, 2]`` int (y, x) of every peak above ``k``; ``snr`` ``[N]``
        their prediction S/N; ``flux`` ``[N]`` their point-source flux; ``input_snr``
        ``[N]`` the knot's S/N in the input; ``flagged`` ``[N]`` bool (``input_snr <
        k_input``); ``sigma_pred`` and ``sigma_input``, the band-passed noises.
    """
    from skimage.feature import peak_local_max
    p = _r_plane(pred_flux, "pred_flux")
    x = _r_plane(input_flux, "input_flux")
    if p.shape != x.shape:
        raise ValueError(f"pred_flux {p.shape} and input_flux {x.shape} differ in shape")
    s_p, s_x = psf_sigma_px("hsc"), psf_sigma_px(input_survey)
    radius = psf_fwhm_px(input_survey) / 2 if radius is None else float(radius)
    bp_p = band_pass(p, s_p)
    sig_p = robust_sigma(bp_p)
    noise = np.full(p.shape, sig_p)
    if pred_sigma is not None:
        ps = _r_plane(pred_sigma, "pred_sigma")
        if ps.shape != p.shape:
            raise ValueError(f"pred_sigma {ps.shape} and pred_flux {p.shape} differ")
        noise = np.hypot(noise, ndimage.gaussian_filter(ps, s_p))
    snr_map = bp_p / np.maximum(noise, 1e-30)
    pk = peak_local_max(snr_map, min_distance=MIN_DIST, threshold_abs=k,
                        exclude_border=EDGE).reshape(-1, 2)
    # the input minus the prediction seen through the input's PSF (Gaussians add in
    # quadrature; an input sharper than HSC is compared unblurred)
    blur = np.sqrt(max(s_x**2 - s_p**2, 0.0))
    res = band_pass(x - (ndimage.gaussian_filter(p, blur) if blur else p), s_x)
    sig_x = robust_sigma(res)
    flux = bp_p[pk[:, 0], pk[:, 1]] / _point_response(s_p, s_p)
    # residual + the knot put back as the input would see it (the prediction's knot,
    # blurred and band-passed at the input's PSF) = the input's own knot; its best value
    # within ``radius`` of the peak
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = np.hypot(yy, xx) <= radius
    tmpl = _point_kernel(max(s_x, s_p), s_x, r)
    pad = np.pad(res, r, mode="edge")
    knot_in = np.array([(pad[y:y + 2 * r + 1, x0:x0 + 2 * r + 1] + f * tmpl)[disk].max()
                        for (y, x0), f in zip(pk, flux)]).reshape(-1)
    snr_in = knot_in / max(sig_x, 1e-30)
    return dict(peaks=pk, snr=snr_map[pk[:, 0], pk[:, 1]], flux=flux, input_snr=snr_in,
                flagged=snr_in < k_input, sigma_pred=sig_p, sigma_input=sig_x)


def peak_mask(shape, peaks: np.ndarray, radius: float) -> np.ndarray:
    """``[H, W]`` bool: disks of ``radius`` px around ``peaks`` ``[N, 2]`` (y, x)."""
    m = np.zeros(shape, bool)
    m[tuple(np.asarray(peaks, int).reshape(-1, 2).T)] = True
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    if not m.any():
        return m
    return ndimage.binary_dilation(m, structure=np.hypot(yy, xx) <= radius)


def flag_unsupported(pred_flux: np.ndarray, input_flux: np.ndarray, *,
                     pred_sigma: np.ndarray | None = None, input_survey: str = "decals",
                     k: float = K_PRED, k_input: float = K_INPUT,
                     radius: float | None = None, mask_radius: float | None = None
                     ) -> np.ndarray:
    """``[H, W]`` bool: True on a disk around every peak of the prediction that the
    input does not support (see :func:`flag_peaks` for the arguments). ``mask_radius``
    (px): the disk, default the HSC r PSF FWHM (4.5 px), the size of an unresolved knot.
    """
    out = flag_peaks(pred_flux, input_flux, pred_sigma=pred_sigma,
                     input_survey=input_survey, k=k, k_input=k_input, radius=radius)
    shape = _r_plane(pred_flux, "pred_flux").shape
    mr = psf_fwhm_px("hsc") if mask_radius is None else float(mask_radius)
    return peak_mask(shape, out["peaks"][out["flagged"]], mr)
