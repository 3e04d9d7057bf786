"""Luo et al. setup: mock SDSS / DECaLS / HSC cutout triplets made with GalSim.

Writes the same on-disk layout as the real downloader (``data.layout``)::

    DIR/<split>/{sdss,decals,hsc}/<id>.jpg   128x128 viewer-style JPEGs at 0.168"/px
    DIR/<split>/truth/<id>.npy               noise-free HSC g,r,i truth (nanomaggies)
    DIR/manifest.csv                         one row per galaxy: id, ra, dec, split, params
    DIR/sim_config.json                      the settings, checked on resume

The galaxies are ``data.scene``'s. The scene is observed by each survey the way the
viewer's JPEGs come about (Luo et al. §2.4): per-band Moffat PSF with the survey's
seeing, drawn at the survey's native pixel scale, Gaussian sky noise from the survey's
depth (``scene.pixel_noise``) resampled like the survey's coadd (``coadd_noise``: each
exposure Lanczos-resampled onto the coadd grid, so the noise is lower per pixel and
correlated), the viewer's Lanczos-3 resampling to 0.168"/px (pixel values, not fluxes,
are interpolated, as in the viewer), ``data.render`` stretch, JPEG. Per-survey defects
mimic the paper's Figs 5-6: satellite streaks, saturated stars, very noisy and blurred
frames.

Galaxy ``i``'s random numbers come from ``(seed, i)`` alone, so the output does not
depend on ``--workers`` and a resumed run rebuilds an identical manifest.

CLI: ``python -m data.simulate --out DIR --n-train N --n-test M --seed S``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import galsim
import numpy as np
import pandas as pd

from common.io import atomic_write
from data import layout, render
from data.scene import Scene, colours_to_fluxes, draw_params, moffat_psf, pixel_noise
from data.sim_jobs import check_config, run_jobs, start_run
from data.surveys import (LUO_PIXSCALE, LUO_SIZE, LUO_SURVEYS, VIEWER_LANCZOS, get_survey,
                          mag_to_nmgy)

#: ``--truth``: the splits that get ``truth/<id>.npy``.
TRUTH_CHOICES = ("test", "all", "none")
#: Bump when a change to this module (or to ``data.scene``) changes the files for the same
#: settings, so that resuming into a folder made by older code fails instead of mixing.
SIM_VERSION = 2
#: Native-pixel margin around the 0.168" field so Lanczos-3 has support at the edges.
MARGIN_PX = 6


@dataclass
class SimConfig:
    """Settings of one simulated dataset (defaults: the embedded default set).

    Rates are probabilities in [0, 1]: extras per galaxy, defects per galaxy *and* per
    survey (each of sdss, decals, hsc independently).
    """

    out: Path = field(default_factory=layout.default_sim_dir)
    n_train: int = 300
    n_test: int = 200
    seed: int = 0
    workers: int | None = None  # None: os.cpu_count()
    truth: str = "test"  # which splits get truth/<id>.npy: test | all | none
    size: int = LUO_SIZE  # output cutout side in 0.168" pixels (Luo et al.: 128)
    rate_companion: float = 0.15  # a second galaxy within ~4-9"
    rate_star: float = 0.30  # >= 1 foreground star in the field
    rate_streak: float = 0.03  # satellite trail (Figs 5, 6 left columns)
    rate_saturated: float = 0.03  # very bright star, saturated + bleed (Fig 5 right)
    rate_noisy: float = 0.03  # sky noise x3-5 (Figs 5, 6 middle)
    rate_blurred: float = 0.03  # PSF FWHM x1.7-2.3 (Fig 6 right)
    # Extra factors on the sky noise of ``pixel_noise`` (1 = the survey's quoted depth).
    noise_sdss: float = 1.0
    noise_decals: float = 1.0
    noise_hsc: float = 1.0
    progress: bool = True  # tqdm bar on stderr

    def __post_init__(self):
        self.out = Path(self.out)
        for name in ("n_train", "n_test", "size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (8 if name == "size" else 0):
                raise ValueError(f"{name} must be an integer >= "
                                 f"{8 if name == 'size' else 0}, got {v!r}")
        if self.truth not in TRUTH_CHOICES:
            raise ValueError(f"truth must be one of {', '.join(TRUTH_CHOICES)}, "
                             f"got {self.truth!r}")
        for name, v in self.rates().items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"rate_{name} must lie in [0, 1], got {v!r}")
        for name in ("noise_sdss", "noise_decals", "noise_hsc"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")

    def rates(self) -> dict[str, float]:
        return {k[5:]: getattr(self, k) for k in self.__dataclass_fields__
                if k.startswith("rate_")}

    def identity(self) -> dict:
        """The fields that determine the files (not where or how fast they are made)."""
        d = dataclasses.asdict(self)
        for k in ("out", "workers", "progress"):
            d.pop(k)
        d["sim_version"] = SIM_VERSION
        return d


# ----------------------------------------------------------------------- observation


def lanczos_weights(order: int, offset: float) -> np.ndarray:
    """``[2 order]`` Lanczos-``order`` weights, normalised to sum 1 (flux-conserving, as
    astrometry.net's ``resample_with_wcs``), that interpolate a row at ``offset`` in
    [0, 1) past pixel ``j``: the weights of pixels ``j - order + 1 .. j + order``."""
    t = offset - np.arange(-order + 1, order + 1)
    w = np.sinc(t) * np.sinc(t / order)
    return w / w.sum()


def _lanczos_shift(a: np.ndarray, order: int, dx: float, dy: float) -> np.ndarray:
    """``a`` ``[n + 2 order - 1]`` square -> ``[n, n]`` resampled at a sub-pixel shift
    ``(dx, dy)`` (VALID separable Lanczos interpolation)."""
    n = a.shape[0] - 2 * order + 1
    wx, wy = lanczos_weights(order, dx), lanczos_weights(order, dy)
    rows = sum(w * a[:, m:m + n] for m, w in enumerate(wx))
    return sum(w * rows[m:m + n] for m, w in enumerate(wy))


def coadd_noise(rng: np.random.Generator, n: int, sigma: float, survey,
                band: str) -> np.ndarray:
    """``[n, n]`` sky noise (nMgy) of the coadd the viewer reads, on its native grid.

    ``sigma`` (``pixel_noise``) is the noise the survey's depth implies *before*
    resampling: DECaLS' ``psfdepth`` comes from each exposure's native pixels, SDSS
    depths from the frames, and HSC's aperture depths are flux sums, which flux-conserving
    resampling leaves unchanged. Each of the band's ``coadd_exposures`` exposures (per-pixel
    std ``sigma sqrt(k)``, so that their mean has ``sigma``) is resampled onto the coadd's
    grid at a random sub-pixel offset with Lanczos-``coadd_lanczos`` weights, which
    lowers its per-pixel variance (by ~0.8 on average for Lanczos-3) and correlates
    neighbours; the exposures are averaged. :func:`sky_noise_model` predicts the result.
    """
    order, k = survey.coadd_lanczos, survey.coadd_exposures.get(band, 1)
    if order == 0:
        return rng.normal(0.0, sigma, (n, n))
    out = np.zeros((n, n))
    for _ in range(k):
        dx, dy = rng.uniform(0.0, 1.0, 2)
        white = rng.normal(0.0, sigma * math.sqrt(k), (n + 2 * order - 1,) * 2)
        out += _lanczos_shift(white, order, dx, dy)
    return out / k


def _same_grid(survey) -> bool:
    return abs(survey.pixel_scale - LUO_PIXSCALE) < 1e-9


def native_size(survey, size: int = LUO_SIZE) -> int:
    """Side in native pixels of the stamp ``observe`` draws for a ``size``-px cutout: the
    cutout's field plus a ``MARGIN_PX`` border for the resampling kernel."""
    if _same_grid(survey):
        return size
    return int(math.ceil(size * LUO_PIXSCALE / survey.pixel_scale)) + 2 * MARGIN_PX


def sky_noise_model(survey, band: str, size: int = LUO_SIZE,
                    n_offsets: int = 64) -> dict[str, float]:
    """What :func:`coadd_noise` followed by the viewer's resampling (``_resample``)
    should give, in expectation over the random exposure offsets.

    The chain is linear and separable, so it is computed in 1-D: the coadd's
    autocovariance ``R(tau) = E_d[sum_m w_m(d) w_{m+tau}(d)]`` (unit input variance),
    then ``C = B R B^T`` for the viewer's Lanczos-3 matrix ``B`` from native pixels to
    the 0.168" grid; 2-D moments are products of the 1-D ones.

    Returns:
        ``rms``: per-pixel std at 0.168"/px, nMgy (mean variance over the cutout);
        ``rms_native``: per-pixel std of the coadd on its native grid;
        ``rho1``: correlation of horizontally adjacent 0.168" pixels;
        ``corr_length``: ``sum_tau rho(tau)`` along one axis, in 0.168" pixels (the
        1-D integral scale; 1 for white noise).
    """
    sigma = pixel_noise(survey, band)
    order = survey.coadd_lanczos
    if order == 0:
        lags, r = np.zeros(1, int), np.ones(1)
    else:
        ws = [lanczos_weights(order, (i + 0.5) / n_offsets) for i in range(n_offsets)]
        lags = np.arange(-(2 * order - 1), 2 * order)
        r = np.array([np.mean([np.sum(w[max(0, -t):len(w) - max(0, t)]
                                      * w[max(0, t):len(w) - max(0, -t)]) for w in ws])
                      for t in lags])
    n = native_size(survey, size)
    cov = np.zeros((n, n))
    for t, v in zip(lags, r):
        cov += v * np.eye(n, k=int(t))
    if _same_grid(survey):
        b = np.eye(n)
    else:  # galsim's Lanczos-3 (conserve_dc), sampled at the output pixel centres
        kernel = galsim.Lanczos(VIEWER_LANCZOS)
        u = (np.arange(size) - (size - 1) / 2) * LUO_PIXSCALE / survey.pixel_scale \
            + (n - 1) / 2
        b = np.vectorize(kernel.xval)(u[:, None] - np.arange(n)[None, :])
    c = b @ cov @ b.T
    var = np.mean(np.diag(c))
    rho = [np.mean(np.diag(c, k)) / var for k in range(size)]
    return {"rms": sigma * var, "rms_native": sigma * r[lags == 0][0],
            "rho1": rho[1], "corr_length": 1.0 + 2.0 * float(np.sum(rho[1:]))}


#: Colours (u-g, g-r, r-i, i-z, z-y) of sunlight reflected by satellites, and of the
#: saturated stars (roughly solar, G-type).
SOLAR_COLOURS = (1.2, 0.45, 0.15, 0.05, 0.03)


def _grid(n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (arcsec from the stamp centre) of an ``n x n`` stamp."""
    ax = (np.arange(n) - (n - 1) / 2) * scale
    return np.meshgrid(ax, ax)


def _streak(n: int, scale: float, p: dict, s: str, band: str, sigma: float) -> np.ndarray:
    """Satellite trail: a straight Gaussian-profile line (nMgy per native pixel).

    ``streak_mag`` is AB mag per arcsec of trail in r, solar colours; the width is the
    survey's seeing (``sigma`` arcsec).
    """
    x, y = _grid(n, scale)
    th = math.radians(p[f"streak_angle_{s}"])
    dist = x * math.sin(th) - y * math.cos(th) - p[f"streak_offset_{s}"]
    lin = colours_to_fluxes(mag_to_nmgy(p[f"streak_mag_{s}"]), SOLAR_COLOURS)[band]
    prof = np.exp(-0.5 * (dist / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)
    return lin * prof * scale**2


def _saturated(n: int, scale: float, p: dict, survey, band: str, psf) -> np.ndarray:
    """A very bright star with a broad halo and a bleed trail along the CCD columns.

    The core saturates the viewer's stretch to white over a few arcsec (the
    "partially overexposed" HSC cutouts of Luo et al. Fig 5). The bleed trail is a
    smooth (Gaussian, 1 native px) column profile at ``v ~ 2`` in stretch units, i.e.
    white; it grows with the star's brightness.
    """
    s = survey.name
    sdx, sdy = p[f"sat_dx_{s}"], p[f"sat_dy_{s}"]
    flux = colours_to_fluxes(mag_to_nmgy(p[f"sat_mag_{s}"]), SOLAR_COLOURS)[band]
    star = galsim.Add([psf.withFlux(0.95), galsim.Moffat(beta=2.0, fwhm=6 * psf.fwhm,
                                                           flux=0.05)])
    img = star.withFlux(flux).shift(sdx, sdy).drawImage(
        nx=n, ny=n, scale=scale).array.astype(np.float64)
    x, y = _grid(n, scale)
    half_len = 1.0 + 1.5 * (13.5 - p[f"sat_mag_{s}"])  # arcsec
    along = np.clip((half_len - np.abs(y - sdy)) / scale, 0.0, 1.0)  # soft ends
    across = np.exp(-0.5 * ((x - sdx) / scale) ** 2)
    img += 2.0 / survey.rgb_scales[band] * along * across
    return img


def observe(scene: Scene, p: dict, survey_name: str, size: int = LUO_SIZE,
            defects: bool = True, noise_scale: float = 1.0) -> np.ndarray:
    """One survey's view of the scene, resampled to 0.168"/px like a viewer cutout.

    Args:
        scene: the sky.
        p: the parameter row (defects, noise seeds).
        survey_name: ``sdss`` | ``decals`` | ``hsc``.
        size: output side in 0.168" px.
        defects: apply the survey's defects listed in ``p``.
        noise_scale: multiplies ``pixel_noise`` (``SimConfig.noise_<survey>``).

    Returns:
        ``[size, size, 3]`` float64 in nanomaggies per *native* pixel (the viewer's
        units), bands in ``survey.rgb_bands`` order (blue, green, red).
    """
    s = get_survey(survey_name)
    on = set(filter(None, p[f"defects_{s.name}"].split(";"))) if defects else set()
    same_grid = _same_grid(s)
    n = native_size(s, size)
    rng = np.random.default_rng((p[f"noise_seed_{s.name}"], 0))
    planes = []
    for band in s.rgb_bands:
        fwhm = s.psf_fwhm[band] * (p[f"blur_factor_{s.name}"] if "blurred" in on else 1.0)
        psf = moffat_psf(fwhm)
        img = scene.draw(band, psf, n, s.pixel_scale)
        if "streak" in on:
            img += _streak(n, s.pixel_scale, p, s.name, band, fwhm / 2.3548)
        if "saturated" in on:
            img += _saturated(n, s.pixel_scale, p, s, band, psf)
        sigma = pixel_noise(s, band) * noise_scale * (
            p[f"noise_factor_{s.name}"] if "noisy" in on else 1.0)
        img += coadd_noise(rng, n, sigma, s, band)
        if not same_grid:
            img = _resample(img, s.pixel_scale, size)
        planes.append(img)
    return np.stack(planes, -1)


def _resample(img: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Lanczos-3 interpolation of pixel values onto the 0.168" grid (viewer-like).

    ``InterpolatedImage`` drawn with ``method='no_pixel'`` samples the interpolated
    surface brightness; multiplying by the native pixel area keeps the values in
    nanomaggies per native pixel, as the viewer's ``resample_with_wcs`` does.
    """
    ii = galsim.InterpolatedImage(galsim.Image(np.ascontiguousarray(img), scale=scale),
                                  x_interpolant="lanczos3", normalization="sb",
                                  calculate_stepk=False, calculate_maxk=False)
    out = ii.drawImage(nx=size, ny=size, scale=LUO_PIXSCALE, method="sb")
    return out.array.astype(np.float64)


def truth_image(scene: Scene, size: int = LUO_SIZE) -> np.ndarray:
    """Noise-free, defect-free HSC view: ``[size, size, 3]`` float32 nMgy per 0.168" px,
    HSC ``rgb_bands`` order (g, r, i), PSF-convolved with HSC's seeing."""
    s = get_survey("hsc")
    return np.stack([scene.draw(b, moffat_psf(s.psf_fwhm[b]), size, LUO_PIXSCALE)
                     for b in s.rgb_bands], -1).astype(np.float32)


# ------------------------------------------------------------------------ dataset


def _wants_truth(cfg: SimConfig, split: str) -> bool:
    return cfg.truth == "all" or cfg.truth == split


def _paths(cfg: SimConfig, p: dict) -> list[Path]:
    out = [layout.image_path(cfg.out, p["split"], s, p["id"]) for s in LUO_SURVEYS]
    if _wants_truth(cfg, p["split"]):
        out.append(layout.truth_path(cfg.out, p["split"], p["id"]))
    return out


def make_galaxy(cfg: SimConfig, index: int) -> bool:
    """Render and write every file of galaxy ``index``; skip it if all exist.

    Returns True if anything was written.
    """
    p = draw_params(cfg.seed, index, cfg)
    paths = _paths(cfg, p)
    if all(q.exists() for q in paths):
        return False
    scene = Scene(p)
    for s, path in zip(LUO_SURVEYS, paths):
        if not path.exists():
            planes = observe(scene, p, s, cfg.size, noise_scale=getattr(cfg, f"noise_{s}"))
            rgb = render.render_planes(planes, get_survey(s))
            render.write_jpeg(path, rgb)
    if len(paths) > 3 and not paths[3].exists():
        truth = truth_image(scene, cfg.size)
        atomic_write(paths[3], lambda tmp: np.save(open(tmp, "wb"), truth))
    return True


def _work(args) -> bool:
    cfg, index = args
    return make_galaxy(cfg, index)


def manifest(cfg: SimConfig) -> pd.DataFrame:
    """The manifest rows, recomputed from the seed (identical on every resume)."""
    rows = [draw_params(cfg.seed, i, cfg) for i in range(cfg.n_train + cfg.n_test)]
    df = pd.DataFrame(rows)
    first = ["id", "ra", "dec", "split"]
    return df[first + [c for c in df.columns if c not in first]]


def simulate(cfg: SimConfig) -> Path:
    """Make (or finish) the dataset described by ``cfg``; return its folder.

    Galaxies whose files all exist are skipped, so a killed run resumes where it
    stopped (its temporaries are removed). ``manifest.csv`` is written last,
    atomically: a folder without it is an incomplete dataset. Bad settings (no
    galaxies, ``out`` a file or another set) raise before anything is written.
    """
    start_run(cfg, layout.manifest_path(cfg.out), {"--n-train": cfg.n_train,
                                                   "--n-test": cfg.n_test})
    n = cfg.n_train + cfg.n_test
    workers = cfg.workers or os.cpu_count() or 1
    jobs = [(cfg, i) for i in range(n)]
    run_jobs(_work, jobs, workers, f"simulate {cfg.out.name}", cfg.progress)
    df = manifest(cfg)
    atomic_write(layout.manifest_path(cfg.out),
                 lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))
    return cfg.out


def ensure_simulated(cfg: SimConfig | None = None) -> Path:
    """The dataset of ``cfg`` (default: the embedded default set), simulated if it has no
    manifest yet (an interrupted simulation is resumed)."""
    cfg = cfg or SimConfig()
    if layout.manifest_path(cfg.out).is_file():
        check_config(cfg)  # a set made by older code or other settings is refused
    else:
        print(f"simulating {cfg.n_train} + {cfg.n_test} galaxies (seed {cfg.seed}) into "
              f"{cfg.out}", file=sys.stderr)
        simulate(cfg)
    return cfg.out

