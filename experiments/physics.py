"""Physical fidelity of pseudo-HSC images (beyond Luo et al.): photometry and morphology.

    python experiments/physics.py                  # cpu preset: Table 1's two models
    python experiments/physics.py --preset paper
    python experiments/physics.py --data DIR --max-galaxies 100 --no-statmorph

The paper judges pseudo-HSC images by eye and by image metrics, and claims (§4.3) they
"closely resemble the actual observed HSC images in terms of galaxy structure,
morphology, and color". This script measures that in the linear flux domain. For each
test galaxy and each image kind

    sdss, pseudo2 (Cascade Pix2WGAN G2∘G1 on SDSS), decals, pseudo1 (Pix2WGAN on
    DECaLS), hsc, and, on simulated sets, truth (noise-free HSC, ``truth/<id>.npy``)

it inverts the viewer stretch (``data.render.inverse_render``; JPEG -> nanomaggies per
native pixel, then x (0.168 / native scale)^2 -> nanomaggies per 0.168" pixel),
subtracts the background (border median outside the grown segment; the truth gets
the same treatment, so kind - truth differs by noise and model only) and measures, in
apertures defined once per galaxy on the real HSC image (forced photometry, so every
kind is measured over the same pixels; on truth-only inputs the truth defines them):

* ``flux_g``, ``flux_r`` (nMgy) in a circle of radius ``R_ap = 2 r_Petrosian``
  (eta = 0.2, as SDSS), ``mag_r`` (AB, 22.5 - 2.5 log10 f) and colour ``g_r``;
* ``hlr`` (arcsec): radius enclosing half the aperture flux (curve of growth);
* ``e`` = 1 - b/a and ``pa`` (deg, from the +x axis towards +y, [0, 180)): flux-
  weighted second moments over the segment (pixels > 1.5 sigma after a 1 px Gaussian
  smoothing, connected to the centre, inside the aperture);
* ``C`` (Conselice 5 log10 r80/r20) and ``A`` (rotational asymmetry) from statmorph
  (Rodriguez-Gomez et al. 2019) on the r band with that segment; ``--no-statmorph``
  or a statmorph failure: our own C (same definition, apertures to 1.5 r_P) and A
  (sum |I - I_180| / sum |I| about the centroid, minus the same for a border sky box).

Outputs (``results/``): ``physics.csv`` / ``physics.md`` (median bias and robust
scatter 1.4826 MAD of each quantity, kind vs HSC and kind vs truth, plus manifest
totals), ``physics_galaxies.csv`` (every measurement), ``physics_hallucination.csv``
(per galaxy, see :func:`hallucination`), ``physics_vs_hsc.{png,pdf}`` and
``physics_vs_truth.{png,pdf}`` (scatter plots).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.render import inverse_render  # noqa: E402
from data.surveys import LUO_PIXSCALE, get_survey  # noqa: E402
from common.cli import Parser, positive_int  # noqa: E402
from experiments import luo_common as lc  # noqa: E402

#: Image kinds: name -> (survey whose stretch rendered it, model key or None).
KINDS = {"sdss": ("sdss", None), "pseudo2": ("hsc", "cascade"),
         "decals": ("decals", None), "pseudo1": ("hsc", "pix2wgan"),
         "hsc": ("hsc", None)}
LABEL = {"sdss": "SDSS", "pseudo2": "pseudo-HSC² (cascade, SDSS)", "decals": "DECaLS",
         "pseudo1": "pseudo-HSC¹ (Pix2WGAN, DECaLS)", "hsc": "HSC",
         "truth": "truth (noise-free HSC)",
         "truth_jpeg": "truth as an 8-bit HSC JPEG (no noise)"}
QUANTITIES = ("mag_r", "g_r", "hlr", "e", "pa", "C", "A")
#: Petrosian eta (SDSS: 0.2), aperture = PETRO_N x r_P (SDSS: 2).
PETRO_ETA, PETRO_N = 0.2, 2.0
#: Segment: pixels above SEG_K sigma of the 1 px-smoothed image.
SEG_K = 1.5
#: Border strip (px) for the background and sky sigma.
BORDER = 12
#: JPEG grey level from which a pixel counts as saturated (255 before JPEG compression,
#: which spreads clipped cores to ~250-255).
CLIP_LEVEL = 250
PAPER = ("The paper measures no photometry or morphology. It states (§4.3) that "
         "pseudo-HSC images 'closely resemble the actual observed HSC images in terms "
         "of galaxy structure, morphology, and color' and 'will serve as reliable data "
         "sources for future research in galaxy morphology classification'.")


# ------------------------------------------------------------------ flux domain
def band_index(survey: str, band: str) -> int:
    return get_survey(survey).rgb_bands.index(band)


def to_flux(rgb: np.ndarray, survey: str) -> np.ndarray:
    """Viewer JPEG ``[H, W, 3]`` uint8 (R, G, B) -> ``[H, W, 3]`` float64 nanomaggies per
    0.168" pixel, planes in ``survey.rgb_bands`` order (blue, green, red).

    ``inverse_render`` returns nMgy per *native* pixel (the viewer interpolates pixel
    values); the area factor (0.168 / native)^2 turns them into flux per output pixel,
    so that sums over pixels are fluxes."""
    s = get_survey(survey)
    return inverse_render(rgb, s).astype(np.float64) * (LUO_PIXSCALE / s.pixel_scale) ** 2


def sky(img: np.ndarray, exclude: np.ndarray | None = None) -> tuple[float, float]:
    """``(median, robust sigma)`` of the border strips of a 2-D image, pixels in
    ``exclude`` left out (falls back to all border pixels if too few remain)."""
    m = np.zeros(img.shape, bool)
    m[:BORDER], m[-BORDER:], m[:, :BORDER], m[:, -BORDER:] = True, True, True, True
    use = m & ~exclude if exclude is not None else m
    if use.sum() < 50:
        use = m
    v = img[use]
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)))


# ------------------------------------------------------------------ apertures
@dataclass
class Reference:
    """Per-galaxy measurement geometry (pixels): centre ``(y, x)``, Petrosian radius,
    aperture radius, segment ``[H, W]`` bool, and the sky sigma it was made with."""
    cy: float
    cx: float
    r_petro: float
    r_ap: float
    seg: np.ndarray
    sigma: float


def _radii(shape, cy, cx) -> np.ndarray:
    yy, xx = np.indices(shape)
    return np.hypot(yy - cy, xx - cx)


def centroid(img: np.ndarray, start=None, radius: float = 8.0, iters: int = 5):
    """Flux-weighted centroid ``(y, x)`` iterated within ``radius`` px (positive
    pixels), starting from the smoothed peak nearest the stamp centre."""
    h, w = img.shape
    if start is None:
        sm = ndimage.gaussian_filter(img, 2.0)
        r = _radii(img.shape, (h - 1) / 2, (w - 1) / 2)
        sm = np.where(r < min(h, w) / 6, sm, -np.inf)
        start = np.unravel_index(np.argmax(sm), sm.shape)
    cy, cx = map(float, start)
    yy, xx = np.indices(img.shape)
    for _ in range(iters):
        wgt = np.where(_radii(img.shape, cy, cx) < radius, np.maximum(img, 0), 0)
        if wgt.sum() <= 0:
            break
        cy, cx = float((wgt * yy).sum() / wgt.sum()), float((wgt * xx).sum() / wgt.sum())
    return cy, cx


def petrosian_radius(img: np.ndarray, cy: float, cx: float, eta: float = PETRO_ETA,
                     rmax: float | None = None) -> float:
    """Petrosian radius (px): smallest r where the surface brightness in the annulus
    [0.8 r, 1.25 r] falls to ``eta`` times the mean surface brightness inside r
    (SDSS's definition). ``rmax`` if never reached."""
    r = _radii(img.shape, cy, cx)
    rmax = rmax or min(img.shape) / 2 - 1
    for rad in np.arange(1.5, rmax, 0.5):
        ann = (r >= 0.8 * rad) & (r < 1.25 * rad)
        inside = r < rad
        if ann.sum() == 0 or inside.sum() == 0:
            continue
        mean_in = img[inside].mean()
        if mean_in > 0 and img[ann].mean() <= eta * mean_in:
            return float(rad)
    return float(rmax)


def segment(img: np.ndarray, sigma: float, cy: float, cx: float, r_ap: float,
            k: float = SEG_K) -> np.ndarray:
    """Pixels above ``k`` x (sigma of the 1 px-smoothed noise) in the smoothed image,
    the connected region holding the centre, inside the aperture. ``sigma``: per-pixel
    sky sigma of the unsmoothed image (a Gaussian of width 1 px divides white noise by
    2 sqrt(pi))."""
    sm = ndimage.gaussian_filter(img, 1.0)
    thr = k * sigma / (2 * math.sqrt(math.pi))
    r = _radii(img.shape, cy, cx)
    mask = (sm > thr) & (r <= r_ap)
    lab, _ = ndimage.label(mask)
    c = lab[int(round(cy)), int(round(cx))]
    if c == 0:  # centre below threshold (a very faint image): the central 3 px
        return r <= 3
    return lab == c


def make_reference(r_img: np.ndarray, sigma: float) -> Reference:
    """The galaxy's geometry, measured once on the reference r image (nMgy/px,
    background subtracted): centroid, Petrosian radius, ``R_ap = 2 r_P`` (capped at
    the stamp), segment."""
    cy, cx = centroid(r_img)
    edge = min(cy, cx, r_img.shape[0] - 1 - cy, r_img.shape[1] - 1 - cx)
    rp = petrosian_radius(r_img, cy, cx, rmax=edge)
    r_ap = float(min(PETRO_N * rp, edge))
    return Reference(cy, cx, rp, r_ap, segment(r_img, sigma, cy, cx, r_ap), sigma)


# ------------------------------------------------------------------ measurements
def aperture_flux(img: np.ndarray, ref: Reference) -> float:
    return float(img[_radii(img.shape, ref.cy, ref.cx) <= ref.r_ap].sum())


def half_light_radius(img: np.ndarray, ref: Reference, frac: float = 0.5) -> float:
    """Radius (px) enclosing ``frac`` of the flux inside the aperture (curve of growth
    over pixel centres, linearly interpolated); NaN if that flux is not positive."""
    r = _radii(img.shape, ref.cy, ref.cx)
    inside = r <= ref.r_ap
    order = np.argsort(r[inside], kind="mergesort")
    rs, cum = r[inside][order], np.cumsum(img[inside][order])
    total = cum[-1]
    if not total > 0:
        return float("nan")
    # enclosed flux at R = sum over pixel centres within R; first crossing, interpolated
    i = int(np.argmax(cum >= frac * total))
    if i == 0:
        return float(rs[0])
    f0, f1 = cum[i - 1], cum[i]
    t = (frac * total - f0) / (f1 - f0) if f1 != f0 else 0.0
    return float(rs[i - 1] + t * (rs[i] - rs[i - 1]))


def moments(img: np.ndarray, ref: Reference) -> tuple[float, float]:
    """``(e, pa)`` from flux-weighted second moments over the segment: e = 1 - b/a,
    pa in degrees from +x (columns) towards +y (rows), in [0, 180)."""
    yy, xx = np.indices(img.shape)
    w = np.where(ref.seg, np.maximum(img, 0), 0)
    if w.sum() <= 0:
        return float("nan"), float("nan")
    dy, dx = yy - ref.cy, xx - ref.cx
    mxx, myy, mxy = ((w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum())
    mxx, myy, mxy = mxx / w.sum(), myy / w.sum(), mxy / w.sum()
    tr, det = mxx + myy, mxx * myy - mxy**2
    disc = math.sqrt(max(tr**2 / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, max(tr / 2 - disc, 0.0)
    e = 1 - math.sqrt(l2 / l1) if l1 > 0 else float("nan")
    pa = math.degrees(0.5 * math.atan2(2 * mxy, mxx - myy)) % 180.0
    return float(e), float(pa)


def own_concentration(img: np.ndarray, ref: Reference) -> float:
    """Conselice C = 5 log10(r80 / r20), curve of growth to 1.5 r_P (statmorph's
    extent)."""
    sub = Reference(ref.cy, ref.cx, ref.r_petro, min(1.5 * ref.r_petro, ref.r_ap + 1e9),
                    ref.seg, ref.sigma)
    r20, r80 = half_light_radius(img, sub, 0.2), half_light_radius(img, sub, 0.8)
    return float(5 * math.log10(r80 / r20)) if r20 > 0 and r80 > 0 else float("nan")


def own_asymmetry(img: np.ndarray, ref: Reference) -> float:
    """A = sum |I - I_180| / sum |I| within 1.5 r_P, rotated about the centroid (a sub-
    pixel shift to the array centre then a 180 degree flip), minus the same ratio of a
    sky box (border strip), the usual background correction."""
    h, w = img.shape
    sh = ndimage.shift(img, ((h - 1) / 2 - ref.cy, (w - 1) / 2 - ref.cx), order=1,
                       mode="nearest")
    rot = sh[::-1, ::-1]
    ap = _radii(img.shape, (h - 1) / 2, (w - 1) / 2) <= 1.5 * ref.r_petro
    den = np.abs(sh[ap]).sum()
    if den <= 0:
        return float("nan")
    a_gal = np.abs(sh - rot)[ap].sum() / den
    box = img[:BORDER, :BORDER]
    a_sky = np.abs(box - box[::-1, ::-1]).sum() / den * (ap.sum() / box.size)
    return float(a_gal - a_sky)


def statmorph_ca(img: np.ndarray, ref: Reference) -> tuple[float, float, int]:
    """``(C, A, flag)`` from statmorph on the r image with the reference segment (only
    the properties C and A need are evaluated: the Sersic fits are skipped)."""
    import statmorph

    class _CA(statmorph.SourceMorphology):
        def _calculate_morphology(self):
            for q in ("concentration", "asymmetry"):
                _ = self[q]

    weight = np.full(img.shape, max(ref.sigma, 1e-6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _CA(img, ref.seg.astype(np.int32), 1, weightmap=weight)
    return float(m.concentration), float(m.asymmetry), int(m.flag)


def measure(planes: np.ndarray, survey: str, ref: Reference, use_statmorph: bool = True,
            noise_free: bool = False) -> dict:
    """All quantities of one image: ``planes`` ``[H, W, 3]`` nMgy per 0.168" px in
    ``survey``'s band order, background already subtracted. Returns a dict with
    flux_g, flux_r, mag_r, g_r, hlr (arcsec), e, pa (deg), C, A, morph ('statmorph'
    | 'own' | 'own (statmorph failed: ...)'), statmorph_flag, morph_ok (C and A
    usable: statmorph flag < 2, or our own measurement; on a ``noise_free`` image
    statmorph's flag 2 only means |sky mean| > sky sigma = 0, so it is not held
    against it)."""
    g = planes[..., band_index(survey, "g")]
    r = planes[..., band_index(survey, "r")]
    fg, fr = aperture_flux(g, ref), aperture_flux(r, ref)
    out = dict(flux_g=fg, flux_r=fr,
               mag_r=22.5 - 2.5 * math.log10(fr) if fr > 0 else float("nan"),
               g_r=-2.5 * math.log10(fg / fr) if fg > 0 and fr > 0 else float("nan"),
               hlr=half_light_radius(r, ref) * LUO_PIXSCALE)
    out["e"], out["pa"] = moments(r, ref)
    out["morph"], out["statmorph_flag"] = "own", -1
    if use_statmorph:
        try:
            out["C"], out["A"], out["statmorph_flag"] = statmorph_ca(r, ref)
            out["morph"] = "statmorph"
        except Exception as err:  # noqa: BLE001 - a failed fit falls back, and says so
            out["morph"] = f"own (statmorph failed: {type(err).__name__})"
    if out["morph"] != "statmorph":
        out["C"], out["A"] = own_concentration(r, ref), own_asymmetry(r, ref)
    out["morph_ok"] = bool(np.isfinite(out["C"]) and np.isfinite(out["A"]) and (
        out["statmorph_flag"] < 2 or noise_free))
    return out


# ------------------------------------------------------------------ hallucination
def hallucination(img_r: np.ndarray, truth_r: np.ndarray, sigma: float,
                  psf_sigma_px: float, k_support: float = 1.0, k_peak: float = 5.0,
                  invalid: np.ndarray | None = None) -> dict:
    """How much of an image's r-band structure is real, against the noise-free truth.

    All inputs in nMgy per 0.168" px (``img_r`` background-subtracted); ``sigma``: the
    real HSC image's per-pixel sky sigma, so every kind is judged at the same flux
    thresholds. Residuals are smoothed with the HSC PSF (Gaussian ``psf_sigma_px``) and
    ``sigma_s`` is the noise sigma after that smoothing (sigma / (2 sqrt(pi) s)).

    * ``support``: truth > ``k_support`` x sigma;
    * ``rms_out``: RMS of (img - truth) outside the support, in units of sigma (HSC:
      ~1, its sky noise; a denoising model: < 1);
    * ``false_flux_out``: flux of the smoothed residual above 3 sigma_s outside the
      support, as a fraction of the truth's flux (light added where there is none);
    * ``false_peaks_in`` / ``_out``: local maxima of the smoothed residual above
      ``k_peak`` sigma_s inside / outside the support: knots or arms that are not there;
    * ``missed_peaks``: local maxima of the smoothed (truth - img) above ``k_peak``
      sigma_s inside the support: real structure that is missing;
    * ``true_peaks``: maxima of the truth's own high-pass structure (truth - truth
      smoothed by 3 PSF sigmas) above ``k_peak`` sigma_s (how many knots there are);
    * ``struct_corr``: Pearson correlation of the high-pass images (img and truth)
      inside the support (1: the small-scale structure is the real one).

    ``invalid``: ``[H, W]`` bool, pixels left out of every count (saturated in the
    8-bit JPEG of the image or of the rendered truth, where no flux can be recovered:
    a clipped core would otherwise read as a large "missing" residual).
    """
    from skimage.feature import peak_local_max
    valid = np.ones(truth_r.shape, bool) if invalid is None else ~invalid
    support = (truth_r > k_support * sigma) & valid
    res = np.where(valid, img_r - truth_r, 0.0)
    sm = ndimage.gaussian_filter(res, psf_sigma_px)
    sig_s = sigma / (2 * math.sqrt(math.pi) * psf_sigma_px)
    out = {"support_px": int(support.sum()), "invalid_px": int((~valid).sum())}
    outside = ~support & valid
    out["rms_out"] = (float(np.sqrt(np.mean(res[outside] ** 2)) / sigma)
                      if outside.any() else float("nan"))
    tot = float(truth_r.sum())
    hot = outside & (sm > 3 * sig_s)
    out["false_flux_out"] = float(sm[hot].sum() / tot) if tot > 0 else float("nan")

    def peaks(a, where):
        pk = peak_local_max(a, min_distance=3, threshold_abs=k_peak * sig_s,
                            exclude_border=2)
        return int(sum(where[y, x] for y, x in pk))
    out["false_peaks_in"] = peaks(sm, support)
    out["false_peaks_out"] = peaks(sm, outside)
    out["missed_peaks"] = peaks(-sm, support)
    hp_t = truth_r - ndimage.gaussian_filter(truth_r, 3 * psf_sigma_px)
    hp_i = img_r - ndimage.gaussian_filter(img_r, 3 * psf_sigma_px)
    out["true_peaks"] = peaks(ndimage.gaussian_filter(hp_t, psf_sigma_px), support)
    if support.sum() > 3 and hp_t[support].std() > 0 and hp_i[support].std() > 0:
        out["struct_corr"] = float(np.corrcoef(hp_i[support], hp_t[support])[0, 1])
    else:
        out["struct_corr"] = float("nan")
    return out


# ------------------------------------------------------------------ driver
def _minus_sky(planes: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Each plane minus its border median (pixels in ``exclude`` left out)."""
    out = planes.astype(np.float64).copy()
    for b in range(out.shape[-1]):
        out[..., b] -= sky(out[..., b], exclude)[0]
    return out


def galaxy_measurements(images: dict, truth: np.ndarray | None,
                        use_statmorph: bool = True) -> tuple[list[dict], list[dict]]:
    """Measure every kind of one galaxy.

    Args:
        images: kind -> ``[H, W, 3]`` uint8 viewer JPEG (kinds of :data:`KINDS`; must
            hold "hsc" unless ``truth`` is given, which then defines the geometry).
        truth: ``[H, W, 3]`` nMgy per 0.168" px (HSC g, r, i) or None.
    Returns:
        (rows of :func:`measure` + kind + geometry, rows of :func:`hallucination`).
    """
    flux = {}
    for kind, rgb in images.items():
        survey = KINDS[kind][0]
        planes = to_flux(rgb, survey)
        flux[kind] = (survey, planes)
    ri = band_index("hsc", "r")
    if "hsc" in flux:
        hr = flux["hsc"][1][..., ri]
        bg, sigma = sky(hr)
        ref0 = make_reference(hr - bg, sigma)
        bg, sigma = sky(hr, ndimage.binary_dilation(ref0.seg, iterations=3))
        ref = make_reference(hr - bg, sigma)
    else:
        from data.simulate import pixel_noise
        sigma = pixel_noise(get_survey("hsc"), "r")
        ref = make_reference(truth[..., ri].astype(np.float64), sigma)
    grown = ndimage.binary_dilation(ref.seg, iterations=3)
    rows, hall = [], []
    sub = {}
    for kind, (survey, planes) in flux.items():
        planes = _minus_sky(planes, grown)
        sub[kind] = planes
        rows.append(dict(kind=kind, **measure(planes, survey, ref, use_statmorph),
                         sky_sigma_r=sky(planes[..., band_index(survey, "r")], grown)[1]))
    if truth is not None:
        from data.render import render_planes
        t_raw = truth.astype(np.float64)
        # the truth as an 8-bit viewer JPEG would hold it (no noise): what the stretch's
        # clipping and quantisation alone cost
        t_rgb = render_planes(t_raw, get_survey("hsc"))
        # the same background estimate as the observed images (galaxy wings reach the
        # border of big galaxies): kind - truth then differs by noise and model only
        t = _minus_sky(t_raw, grown)
        tj = _minus_sky(to_flux(t_rgb, "hsc"), grown)
        rows.append(dict(kind="truth", **measure(t, "hsc", ref, use_statmorph, True),
                         sky_sigma_r=0.0))
        rows.append(dict(kind="truth_jpeg", **measure(tj, "hsc", ref, use_statmorph,
                                                      True), sky_sigma_r=0.0))
        psf_s = get_survey("hsc").psf_fwhm["r"] / 2.3548 / LUO_PIXSCALE
        clip_t = t_rgb.max(-1) >= CLIP_LEVEL
        for kind in ("pseudo1", "pseudo2", "hsc"):
            if kind in sub:
                bad = ndimage.binary_dilation(
                    clip_t | (images[kind].max(-1) >= CLIP_LEVEL), iterations=2)
                hall.append(dict(kind=kind, **hallucination(
                    sub[kind][..., ri], t[..., ri], ref.sigma, psf_s, invalid=bad)))
    for r in rows:
        r.update(r_ap_px=ref.r_ap, r_petro_px=ref.r_petro, hsc_sigma_r=ref.sigma)
    return rows, hall


def _wrap_pa(d):
    return (np.asarray(d) + 90.0) % 180.0 - 90.0


def differences(meas: pd.DataFrame, ref_kind: str, kind: str) -> pd.DataFrame:
    """Per galaxy: ``kind`` minus ``ref_kind`` for every quantity (mag and colour in
    mag, hlr as a fraction, pa wrapped to [-90, 90) and only where the reference e >
    0.2, C and A where statmorph's flag < 2 for both)."""
    a = meas[meas.kind == kind].set_index("id")
    b = meas[meas.kind == ref_kind].set_index("id")
    ids = a.index.intersection(b.index)
    a, b = a.loc[ids], b.loc[ids]
    d = pd.DataFrame(index=ids)
    d["mag_r"] = a.mag_r - b.mag_r
    d["g_r"] = a.g_r - b.g_r
    d["hlr"] = a.hlr / b.hlr - 1
    d["e"] = a.e - b.e
    d["pa"] = np.where(b.e > 0.2, _wrap_pa(a.pa - b.pa), np.nan)
    ok = a.morph_ok.astype(bool) & b.morph_ok.astype(bool)
    d["C"] = np.where(ok, a.C - b.C, np.nan)
    d["A"] = np.where(ok, a.A - b.A, np.nan)
    return d


def robust(x) -> tuple[float, float, int]:
    """``(median, 1.4826 MAD, N)`` of the finite values."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan"), 0
    med = float(np.median(x))
    return med, float(1.4826 * np.median(np.abs(x - med))), len(x)


def summary(meas: pd.DataFrame, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """Bias (median) and scatter (robust sigma) of every quantity: each kind against
    HSC, each kind against the truth, and (simulated) r magnitude and hlr against the
    manifest's known totals (galaxy without companion, intrinsic i.e. before the PSF)."""
    rows = []
    kinds = [k for k in KINDS if k in set(meas.kind)]
    pairs = [(k, "hsc") for k in kinds if k != "hsc"]
    if "truth" in set(meas.kind):
        pairs += [(k, "truth") for k in kinds + ["truth_jpeg"]]
    for kind, ref in pairs:
        d = differences(meas, ref, kind)
        for q in QUANTITIES:
            med, sig, n = robust(d[q])
            rows.append(dict(kind=kind, reference=ref, quantity=q, bias=med,
                             scatter=sig, n=n))
    if manifest is not None and {"flux_bulge_r", "r50"} <= set(manifest.columns):
        man = manifest.set_index("id")
        tot = sum(man[f"flux_{c}_r"] for c in ("bulge", "disk", "knots"))
        for kind in kinds + (["truth", "truth_jpeg"] if "truth" in set(meas.kind)
                             else []):
            a = meas[meas.kind == kind].set_index("id")
            ids = a.index.intersection(man.index)
            mag = 22.5 - 2.5 * np.log10(tot.loc[ids])
            for q, vals in (("mag_r", a.loc[ids, "mag_r"] - mag),
                            ("hlr", a.loc[ids, "hlr"] / man.loc[ids, "r50"] - 1)):
                med, sig, n = robust(vals)
                rows.append(dict(kind=kind, reference="manifest", quantity=q, bias=med,
                                 scatter=sig, n=n))
    return pd.DataFrame(rows)


UNITS = dict(mag_r="mag", g_r="mag", hlr="fraction", e="", pa="deg", C="", A="")


def markdown(summ: pd.DataFrame, hall: pd.DataFrame | None, header: list[str]) -> str:
    lines = header + ["", "Bias = median of (kind − reference), scatter = 1.4826 × MAD; "
                          "hlr as a fractional difference; pa only where the reference "
                          "e > 0.2.", ""]
    for ref in summ.reference.unique():
        s = summ[summ.reference == ref]
        kinds = list(dict.fromkeys(s.kind))
        lines += [f"### against {LABEL.get(ref, ref)}", "",
                  "| quantity | " + " | ".join(LABEL.get(k, k) for k in kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for q in dict.fromkeys(s.quantity):
            cells = []
            for k in kinds:
                r = s[(s.kind == k) & (s.quantity == q)]
                cells.append("" if r.empty else
                             f"{r.bias.iloc[0]:+.3f} ± {r.scatter.iloc[0]:.3f} "
                             f"(N {int(r.n.iloc[0])})")
            unit = f" [{UNITS[q]}]" if UNITS.get(q) else ""
            lines.append(f"| {q}{unit} | " + " | ".join(cells) + " |")
        lines.append("")
    if hall is not None and len(hall):
        cols = ["rms_out", "false_flux_out", "false_peaks_in", "false_peaks_out",
                "missed_peaks", "true_peaks", "struct_corr"]
        lines += ["### against the truth: real structure or hallucination (r band)", "",
                  "Per-galaxy means (median in brackets); see "
                  "`experiments/physics.py:hallucination` for the definitions.", "",
                  "| kind | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for k, g in hall.groupby("kind", sort=False):
            lines.append(f"| {LABEL.get(k, k)} | " + " | ".join(
                f"{g[c].mean():.3f} ({g[c].median():.3f})" for c in cols) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def scatter_figure(meas: pd.DataFrame, ref: str, kinds, title: str):
    """One panel per quantity: x = the reference's value, y = each kind's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = dict(sdss="#e8a0a0", pseudo2="#c0392b", decals="#999999",
                  pseudo1="#1f5fbf", hsc="k")
    qs = ("mag_r", "g_r", "hlr", "e", "C", "A")
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    b = meas[meas.kind == ref].set_index("id")
    for ax, q in zip(axes.ravel(), qs):
        lo, hi = np.inf, -np.inf
        for k in kinds:
            a = meas[meas.kind == k].set_index("id")
            ids = a.index.intersection(b.index)
            x, y = b.loc[ids, q].to_numpy(float), a.loc[ids, q].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.any():
                ax.scatter(x[ok], y[ok], s=9, alpha=0.7, color=colors.get(k),
                           label=LABEL.get(k, k))
                lo, hi = min(lo, np.percentile(x[ok], 1), np.percentile(y[ok], 1)), \
                    max(hi, np.percentile(x[ok], 99), np.percentile(y[ok], 99))
        if np.isfinite(lo):
            pad = 0.05 * (hi - lo + 1e-9)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(f"{q} ({LABEL.get(ref, ref)})", fontsize=8)
        ax.set_ylabel(q, fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/physics.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    p.add_argument("--max-galaxies", type=positive_int,
                   help="only the first N test galaxies")
    p.add_argument("--no-statmorph", action="store_true",
                   help="our own C and A instead of statmorph's")
    return p


def run(args) -> pd.DataFrame:
    from common.io import atomic_write_text
    from data.layout import truth_path
    t0 = time.time()
    root = lc.ensure_data(args)
    man = lc.test_manifest(root)
    ids = [g for g, _ in lc.chosen_or_given(
        args, man, lambda d: [(g, "test split") for g in d["id"]])]
    if args.max_galaxies:
        ids = ids[:args.max_galaxies]
    models = {}
    notes = []
    for key in ("pix2wgan", "cascade"):
        fn, note = lc.get_model(args, root, key)
        models[key] = fn
        notes.append(note)
    use_sm = not args.no_statmorph
    if use_sm:
        try:
            import statmorph  # noqa: F401
        except ImportError:
            print("note: statmorph not importable: own C and A")
            use_sm = False
    all_rows, all_hall = [], []
    batch = 16
    for lo in range(0, len(ids), batch):
        chunk = ids[lo:lo + batch]
        raw = {s: np.stack([lc.load_rgb(root, s, g) for g in chunk])
               for s in ("sdss", "decals", "hsc")}
        raw["pseudo1"] = lc.translate(models["pix2wgan"], raw["decals"])
        raw["pseudo2"] = lc.translate(models["cascade"], raw["sdss"])
        for j, gid in enumerate(chunk):
            tp = truth_path(root, "test", gid)
            truth = np.load(tp) if tp.is_file() else None
            rows, hall = galaxy_measurements({k: raw[k][j] for k in KINDS}, truth,
                                             use_sm)
            all_rows += [dict(id=gid, **r) for r in rows]
            all_hall += [dict(id=gid, **h) for h in hall]
        if not args.quiet:
            print(f"  measured {min(lo + batch, len(ids))}/{len(ids)} galaxies "
                  f"({time.time() - t0:.0f} s)", flush=True)
    meas = pd.DataFrame(all_rows)
    hall = pd.DataFrame(all_hall) if all_hall else None
    summ = summary(meas, man)
    simulated = (root / "sim_config.json").is_file()
    n_sm = int((meas.morph == "statmorph").sum())
    header = ["# Physical fidelity of pseudo-HSC images", "",
              f"- data: `{root}` ({'SIMULATED' if simulated else 'as given'}), "
              f"{len(ids)} test galaxies; preset {args.preset}",
              *(f"- model: {n}" for n in notes),
              "- flux domain: viewer stretch inverted (data.render.inverse_render), "
              "x (0.168/native)^2; border-median background removed from every image, truth included",
              f"- apertures from the real HSC r image: R_ap = {PETRO_N:g} r_P "
              f"(eta {PETRO_ETA}), segment > {SEG_K} sigma (smoothed)",
              f"- C, A: statmorph {n_sm}/{len(meas)} images, own fallback for the rest",
              f"- paper: {PAPER}",
              f"- wall time {time.time() - t0:.0f} s"]
    md = markdown(summ, hall, header)
    res = Path(args.results)
    suffix = "_custom" if args.galaxy else ""
    res.mkdir(parents=True, exist_ok=True)
    atomic_write_text(res / f"physics{suffix}.csv", summ.to_csv(index=False,
                                                                float_format="%.5f"))
    atomic_write_text(res / f"physics{suffix}.md", md)
    atomic_write_text(res / f"physics{suffix}_galaxies.csv",
                      meas.to_csv(index=False, float_format="%.6g"))
    paths = [res / f"physics{suffix}.{e}" for e in ("csv", "md")]
    paths.append(res / f"physics{suffix}_galaxies.csv")
    if hall is not None:
        atomic_write_text(res / f"physics{suffix}_hallucination.csv",
                          hall.to_csv(index=False, float_format="%.6g"))
        paths.append(res / f"physics{suffix}_hallucination.csv")
    fig = scatter_figure(meas, "hsc", ["decals", "pseudo1", "sdss", "pseudo2"],
                         "Measured on each image vs on the real HSC image")
    paths += lc.save_figure(fig, res, f"physics{suffix}_vs_hsc")
    if "truth" in set(meas.kind):
        fig = scatter_figure(meas, "truth", ["decals", "pseudo1", "pseudo2", "hsc"],
                             "Measured on each image vs on the noise-free truth")
        paths += lc.save_figure(fig, res, f"physics{suffix}_vs_truth")
    print(md)
    lc.wrote(paths)
    return summ


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
