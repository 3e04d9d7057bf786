"""Photometry and morphology of one galaxy image in the linear flux domain (library of
``experiments/physics.py``).

Images are 2-D ``[H, W]`` float64 planes in nanomaggies per 0.168" pixel (background
subtracted where said), or ``[H, W, 3]`` stacks in a survey's ``rgb_bands`` order.

* :func:`to_flux`: viewer JPEG -> nMgy per 0.168" px; :func:`sky`: border median and
  robust sigma;
* :class:`Reference` / :func:`make_reference`: the geometry measured once per galaxy
  (centroid, Petrosian radius with eta = 0.2 as SDSS, aperture ``R_ap = 2 r_P``,
  segment), so every image kind is measured over the same pixels (forced photometry);
* :func:`measure`: aperture fluxes (photutils), magnitude, colour, half-light radius,
  ellipticity and position angle (second moments), and Conselice C and rotational
  asymmetry A from statmorph (Rodriguez-Gomez et al. 2019);
* :func:`draw_measurements`: flux and half-light radius of every draw of a
  translation (the spread behind the pulls of ``physics.py``);
* :func:`hallucination`: real structure against the noise-free truth.

What the libraries do not provide is ours, and says why where it is defined: the
iterated centroid, the Petrosian radius, the segment, the curve of growth, the moments
about the reference centre, and C and A when statmorph fails (or ``--no-statmorph``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from data.render import inverse_render
from data.surveys import LUO_PIXSCALE, get_survey

#: Petrosian eta (SDSS: 0.2), aperture = PETRO_N x r_P (SDSS: 2).
PETRO_ETA, PETRO_N = 0.2, 2.0
#: Segment: pixels above SEG_K sigma of the 1 px-smoothed image.
SEG_K = 1.5
#: Border strip (px) for the background and sky sigma.
BORDER = 12

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


# Ours: photutils' centroids are one-shot over the whole stamp; this one iterates within
# a radius from the smoothed peak nearest the centre, so a companion cannot pull it.
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


# Ours: photutils has no Petrosian radius, and statmorph's comes only out of a full
# morphology run about its own centre.
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
    """Sum of the pixels whose centre lies within ``R_ap`` of the reference centre
    (photutils' ``center`` method: no partial pixels, as the curve of growth)."""
    from photutils.aperture import CircularAperture
    aperture = CircularAperture((ref.cx, ref.cy), ref.r_ap)
    return float(aperture.do_photometry(img, method="center")[0][0])


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


# Ours: photutils' SourceCatalog takes its moments about its own centroid, with negative
# pixels; these are about the reference centre (forced), negative pixels clipped.
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


# Our own C and A: statmorph's definitions, used where statmorph gives no value (its fit
# raised) or is not asked for (--no-statmorph); photutils has neither quantity.
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


# ------------------------------------------------------------------ error bars
def draw_measurements(draws: np.ndarray, survey: str, ref: Reference,
                      exclude: np.ndarray | None = None) -> np.ndarray:
    """r-band flux and size of every draw of a translation (the pulls of physics.py).

    Args:
        draws: ``[K, H, W, 3]`` viewer pixels in [0, 255] (R, G, B; float, unrounded,
            as ``pix2wgan.uncertainty.Sampler.draws`` gives them), rendered with
            ``survey``'s stretch.
        ref: the galaxy's geometry (forced photometry, as :func:`measure`).
        exclude: ``[H, W]`` bool, pixels left out of the border background.
    Returns:
        ``[K, 2]`` float64: ``flux_r`` (nMgy in the ``R_ap`` aperture, background
        subtracted as in :func:`measure`'s callers) and ``hlr`` (arcsec) per draw.
    """
    ri = band_index(survey, "r")
    out = np.empty((len(draws), 2))
    for k, d in enumerate(draws):
        r = to_flux(d, survey)[..., ri]
        r = r - sky(r, exclude)[0]
        out[k] = aperture_flux(r, ref), half_light_radius(r, ref) * LUO_PIXSCALE
    return out


# ------------------------------------------------------------------ hallucination
def _smoothed_residual(img_r, truth_r, sigma, psf_sigma_px, invalid):
    """``(valid, residual, residual smoothed by the PSF, its noise sigma_s)``."""
    valid = np.ones(truth_r.shape, bool) if invalid is None else ~invalid
    res = np.where(valid, img_r - truth_r, 0.0)
    sm = ndimage.gaussian_filter(res, psf_sigma_px)
    return valid, res, sm, sigma / (2 * math.sqrt(math.pi) * psf_sigma_px)


def peak_positions(a: np.ndarray, threshold: float) -> np.ndarray:
    """``[N, 2]`` (y, x) local maxima of ``a`` above ``threshold``, at least 3 px apart
    and 2 px from the edge: the peaks every count of :func:`hallucination` uses."""
    from skimage.feature import peak_local_max
    return peak_local_max(a, min_distance=3, threshold_abs=threshold,
                          exclude_border=2).reshape(-1, 2)


def false_peaks(img_r: np.ndarray, truth_r: np.ndarray, sigma: float,
                psf_sigma_px: float, k_peak: float = 5.0,
                invalid: np.ndarray | None = None) -> np.ndarray:
    """``[N, 2]`` (y, x) of the peaks :func:`hallucination` counts as
    ``false_peaks_in + false_peaks_out`` (same arguments): structure the truth lacks."""
    valid, _, sm, sig_s = _smoothed_residual(img_r, truth_r, sigma, psf_sigma_px, invalid)
    pk = peak_positions(sm, k_peak * sig_s)
    return pk[valid[pk[:, 0], pk[:, 1]]]


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
    valid, res, sm, sig_s = _smoothed_residual(img_r, truth_r, sigma, psf_sigma_px,
                                               invalid)
    support = (truth_r > k_support * sigma) & valid
    out = {"support_px": int(support.sum()), "invalid_px": int((~valid).sum())}
    outside = ~support & valid
    out["rms_out"] = (float(np.sqrt(np.mean(res[outside] ** 2)) / sigma)
                      if outside.any() else float("nan"))
    tot = float(truth_r.sum())
    hot = outside & (sm > 3 * sig_s)
    out["false_flux_out"] = float(sm[hot].sum() / tot) if tot > 0 else float("nan")

    def peaks(a, where):
        return int(sum(where[y, x] for y, x in peak_positions(a, k_peak * sig_s)))
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


# ------------------------------------------------------------------ the flag's scores
#: Saturation level of a JPEG plane (a pixel with a plane at or above it is "clipped"),
#: as ``experiments/physics.py``'s ``CLIP_LEVEL``.
FLAG_CLIP = 250


def galaxy_flag_scores(images: dict, truth: np.ndarray, source: str = "decals",
                       match: float | None = None, **flag_kw) -> dict:
    """Score ``pix2wgan.hallucination.flag_peaks`` on one simulated galaxy.

    Args:
        images: ``source`` (the input), ``"pseudo"`` and ``"hsc"`` -> ``[H, W, 3]``
            uint8 viewer JPEGs (the real HSC sets the geometry and the sky sigma, as
            ``experiments/physics.py`` does).
        truth: ``[H, W, 3]`` noise-free HSC, nMgy per 0.168" px (g, r, i).
        source: survey of the input (``decals`` or ``sdss``).
        match: px; a flagged peak and a false peak of :func:`false_peaks` within it are
            the same structure (default the HSC r PSF FWHM, 4.5 px).
        flag_kw: passed to ``flag_peaks`` (``k``, ``k_input``, ``radius``).

    Returns:
        dict of counts: ``flagged`` (flagged peaks on valid pixels), ``flagged_true``
        (those with a false peak within ``match``: a TRUE hallucination), ``false``
        (false peaks of the prediction against the truth), ``false_found`` (those with
        a flagged peak within ``match``), ``peaks`` (all peaks the flag looked at),
        ``flagged_invalid`` (flagged peaks on clipped pixels, where the truth cannot
        judge: left out of the scores).
    """
    from data.render import render_planes
    from pix2wgan.hallucination import flag_peaks, psf_fwhm_px, psf_sigma_px
    ri = band_index("hsc", "r")
    hr = to_flux(images["hsc"], "hsc")[..., ri]
    bg, sigma = sky(hr)
    ref = make_reference(hr - bg, sigma)
    grown = ndimage.binary_dilation(ref.seg, iterations=3)
    bg, sigma = sky(hr, grown)
    ref = make_reference(hr - bg, sigma)
    grown = ndimage.binary_dilation(ref.seg, iterations=3)
    pr = to_flux(images["pseudo"], "hsc")[..., ri]
    pr = pr - sky(pr, grown)[0]
    tr = truth[..., ri].astype(np.float64)
    tr = tr - sky(tr, grown)[0]
    clip = (images["pseudo"].max(-1) >= FLAG_CLIP) | (
        render_planes(truth.astype(np.float64), get_survey("hsc")).max(-1) >= FLAG_CLIP)
    bad = ndimage.binary_dilation(clip, iterations=2)
    fp = false_peaks(pr, tr, ref.sigma, psf_sigma_px("hsc"), invalid=bad)
    inp = to_flux(images[source], source)[..., band_index(source, "r")]
    out = flag_peaks(pr, inp, input_survey=source, **flag_kw)
    fl = out["peaks"][out["flagged"]]
    ok = ~bad[fl[:, 0], fl[:, 1]]
    match = psf_fwhm_px("hsc") if match is None else float(match)
    d = np.hypot(fl[ok][:, None, 0] - fp[None, :, 0], fl[ok][:, None, 1] - fp[None, :, 1])
    return dict(peaks=len(out["peaks"]), flagged=int(ok.sum()),
                flagged_invalid=int((~ok).sum()), false=len(fp),
                flagged_true=int((d <= match).any(1).sum()),
                false_found=int((d <= match).any(0).sum()))


def hallucination_scores(root, fn, *, source: str = "decals", split: str = "test",
                         ids=None, batch: int = 16, **kw):
    """Purity and completeness of the hallucination flag on a simulated set (issue 16;
    ``experiments/calibration.py`` reports them).

    Args:
        root: simulated Luo set (manifest, JPEGs, ``truth/`` arrays of ``split``).
        fn: the model, ``[B, 128, 128, 3]`` in [-1, 1] -> same (Luo eq. 8), e.g.
            ``pix2wgan.trainer.load_generator(run)`` or ``pix2wgan.model.chain(nets)``.
        source: input survey (``decals`` for Pix2WGAN, ``sdss`` for the cascade).
        ids: galaxy ids (default every ``split`` galaxy with a truth array).
        kw: passed to :func:`galaxy_flag_scores` (``match``, ``k``, ``k_input``,
            ``radius``).

    Returns:
        ``(summary, per_galaxy)``: summary dict with ``galaxies``, the summed counts of
        :func:`galaxy_flag_scores`, ``purity`` = flagged_true / flagged (NaN if
        nothing is flagged) and ``completeness`` = false_found / false (NaN if no false
        peak); per_galaxy a ``pandas.DataFrame`` (one row per galaxy, with ``id``).
    """
    import pandas as pd

    from data.layout import read_manifest, truth_path
    from experiments.luo_common import load_rgb, translate
    if ids is None:
        man = read_manifest(root)
        ids = [g for g in man.loc[man["split"] == split, "id"]
               if truth_path(root, split, g).is_file()]
    rows = []
    for lo in range(0, len(ids), batch):
        chunk = list(ids[lo:lo + batch])
        raw = {s: np.stack([load_rgb(root, s, g, split) for g in chunk])
               for s in (source, "hsc")}
        raw["pseudo"] = translate(fn, raw[source])
        for j, gid in enumerate(chunk):
            truth = np.load(truth_path(root, split, gid))
            rows.append(dict(id=gid, **galaxy_flag_scores(
                {k: v[j] for k, v in raw.items()}, truth, source, **kw)))
    per = pd.DataFrame(rows)
    keys = ("peaks", "flagged", "flagged_true", "flagged_invalid", "false", "false_found")
    summ = {"galaxies": len(per), **{k: int(per[k].sum()) if len(per) else 0 for k in keys}}
    summ["purity"] = (summ["flagged_true"] / summ["flagged"] if summ["flagged"]
                      else float("nan"))
    summ["completeness"] = (summ["false_found"] / summ["false"] if summ["false"]
                            else float("nan"))
    return summ, per
