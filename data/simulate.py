"""Mock SDSS / DECaLS / HSC cutout triplets made with GalSim.

Writes the same on-disk layout as the real downloader (``data.layout``)::

    DIR/<split>/{sdss,decals,hsc}/<id>.jpg   128x128 viewer-style JPEGs at 0.168"/px
    DIR/<split>/truth/<id>.npy               noise-free HSC g,r,i truth (nanomaggies)
    DIR/manifest.csv                         one row per galaxy: id, ra, dec, split, params
    DIR/sim_config.json                      the settings, checked on resume

Each galaxy is a bulge (Sersic) + exponential disk (log-spiral-modulated for a fraction,
drawn on a fine numpy grid and wrapped in ``galsim.InterpolatedImage``) + star-forming
knots (``galsim.RandomKnots``), with optional companion and foreground stars. The scene
is observed by each survey the way the viewer's JPEGs come about (Luo et al. §2.4):
per-band Moffat PSF with the survey's seeing, drawn at the survey's native pixel scale,
Gaussian sky noise from the survey's depth (``pixel_noise``; no source Poisson noise,
which matters only in the brightest cores at these depths) resampled like the survey's
coadd (``coadd_noise``: each exposure Lanczos-resampled onto the coadd grid, so the noise
is lower per pixel and correlated), the viewer's Lanczos-3 resampling to 0.168"/px (pixel
values, not fluxes, are interpolated, as in the viewer), ``data.render`` stretch, JPEG.
Per-survey defects mimic the paper's Figs 5-6: satellite streaks, saturated stars,
very noisy and blurred frames.

Every random number of galaxy ``i`` comes from its own generator seeded with
``(seed, i)``, drawn in a fixed order whatever the rates, so the output does not depend
on ``--workers`` and a resumed run rebuilds an identical manifest.

CLI: ``python -m data.simulate --out DIR --n-train N --n-test M --seed S``.

``--setup lin`` (Lin, Fouchez & Pasquet 2021, §IV-A) instead writes ugriz FITS cubes of
SDSS (64x64 at 0.396"/px) and CFHT (136x136 at 0.187"/px) in nanomaggies, the layout of
the real FITS downloader (``data.layout``)::

    DIR/{paired_train,paired_test}/{sdss,cfht}/<id>.fits   both members under one id
    DIR/unpaired/sdss/<id>.fits, DIR/unpaired/cfht/<id>.fits   different galaxies
    DIR/paired_test/truth_{sdss,cfht}/<id>.fits   noise-free truth of the test pairs
    DIR/lin_manifest.csv   one row per file: lin_pairs' columns + simulation parameters
    DIR/sim_config.json    the settings, checked on resume

``python -m data.simulate --setup lin [--out DIR] [--n-paired-train N]
[--n-paired-test N] [--n-unpaired-sdss N] [--n-unpaired-cfht N] [--seed S]
[--workers W]``; see :class:`LinSimConfig` for what is simulated (same galaxies, native
grids, per-image depth and seeing, correlated CFHT noise).
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import galsim
import numpy as np
import pandas as pd

from common.cli import Parser, positive_int
from common.errors import DataError, run_cli
from common.io import atomic_write, clean_stale_tmp
from data import fits_download, layout, render
from data.surveys import (DECALS_PSF_DEPTH, FWHM_PER_SIGMA, LIN_CFHT_SIZE, LIN_SDSS_SIZE,
                          LUO_PIXSCALE, LUO_SIZE, LUO_SURVEYS, VIEWER_LANCZOS, get_survey,
                          mag_to_nmgy)

#: Bands whose fluxes every galaxy carries, so that any survey can be observed later.
ALL_BANDS = ("u", "g", "r", "i", "z", "y")
DEFECTS = ("streak", "saturated", "noisy", "blurred")
TRUTH_CHOICES = ("test", "all", "none")
CONFIG_FILE = "sim_config.json"
#: Bump when a change to this module changes the files for the same settings, so that
#: resuming into a folder made by older code fails instead of mixing the two.
SIM_VERSION = 2

#: HSC-Wide-like box for the mock coordinates (the RA 125-230 equatorial strip of
#: notes/legacy_survey.md, which overlaps SDSS and DECaLS).
RA_RANGE = (130.0, 220.0)
DEC_RANGE = (-2.0, 2.0)

#: Luo et al. §2.4: SDSS spectroscopic targets, m_r < 17.77; brightest kept ~14.
R_MAG_RANGE = (14.0, 17.77)
#: Petrosian radius >= 3" (§2.4). For exponential-to-de Vaucouleurs profiles the
#: Petrosian radius is ~2 half-light radii (Blanton et al. 2001), so r50 >= 1.5".
MIN_PETRO = 3.0
PETRO_PER_R50 = 2.0
#: Size-magnitude relation of the mock sample: log10(r50 / arcsec) =
#: LOG_R50[0] + LOG_R50[1] (m_r - 17.5) + N(0, LOG_R50[2]).
LOG_R50 = (0.34, -0.145, 0.15)
#: Moffat index of every PSF (ground-based seeing wings).
MOFFAT_BETA = 3.5
#: Grid step of the numpy spiral-arm disk (arcsec); HSC pixels are 0.168".
ARM_GRID = 0.1
#: Native-pixel margin around the 0.168" field so Lanczos-3 has support at the edges.
MARGIN_PX = 6

# Colours (AB, u-g, g-r, r-i, i-z, z-y): red old bulges, bluer disks, blue knots.
# Typical values of SDSS galaxies (e.g. Strateva et al. 2001: u-r ~ 2.6 red / 1.8 blue).
BULGE_COLOURS = ((1.75, 0.10), (0.78, 0.04), (0.40, 0.03), (0.32, 0.04), (0.10, 0.04))
DISK_COLOURS = ((1.25, 0.15), (0.50, 0.08), (0.25, 0.05), (0.15, 0.05), (0.05, 0.04))
KNOT_COLOURS = ((0.90, 0.10), (0.25, 0.06), (0.05, 0.05), (0.00, 0.05), (0.00, 0.04))


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


def galaxy_id(index: int) -> str:
    """0-based index -> ``sim000001``-style id."""
    return f"sim{index + 1:06d}"


def _colours_to_fluxes(r_flux: float, colours: np.ndarray) -> dict[str, float]:
    """r-band flux (nMgy) + (u-g, g-r, r-i, i-z, z-y) -> flux per band of ALL_BANDS."""
    ug, gr, ri, iz, zy = colours
    mags = {"r": 0.0, "g": gr, "u": gr + ug, "i": -ri, "z": -ri - iz, "y": -ri - iz - zy}
    return {b: r_flux * 10 ** (-0.4 * mags[b]) for b in ALL_BANDS}


def _draw_colours(rng, table) -> np.ndarray:
    return np.array([rng.normal(mu, sd) for mu, sd in table])


def draw_params(seed: int, index: int, cfg: SimConfig) -> dict:
    """All random parameters of galaxy ``index`` (a flat dict of scalars = manifest row).

    Every number is drawn, in a fixed order, from ``default_rng(SeedSequence((seed,
    index)))``; rates only decide which of the pre-drawn extras are switched on, so the
    galaxy itself does not change with the rates.
    Lengths in arcsec, angles in degrees, fluxes in nanomaggies.
    """
    rng = np.random.default_rng(np.random.SeedSequence((seed, index)))
    split = "train" if index < cfg.n_train else "test"
    p: dict = {"id": galaxy_id(index), "split": split,
               "ra": rng.uniform(*RA_RANGE), "dec": rng.uniform(*DEC_RANGE)}

    # Magnitude: counts rise towards the m_r = 17.77 limit; dN/dm ~ 10^(0.45 m)
    # (shallower than Euclidean 0.6, as for the SDSS main sample at z <= 0.15).
    a = 0.45
    lo, hi = (10 ** (a * m) for m in R_MAG_RANGE)
    p["r_mag"] = math.log10(lo + rng.random() * (hi - lo)) / a
    # Size-magnitude relation of SDSS main-sample galaxies: r50 ~ 2.2" at m_r = 17.5,
    # ~7" at m_r = 14, lognormal scatter 0.15 dex; truncated by the Petrosian cut.
    mu = LOG_R50[0] + LOG_R50[1] * (p["r_mag"] - 17.5)
    r50 = 10 ** (mu + LOG_R50[2] * rng.standard_normal())
    p["r50"] = max(r50, MIN_PETRO / PETRO_PER_R50)
    p["petro_theta"] = PETRO_PER_R50 * p["r50"]

    # Type: ~25 % bulge-dominated (early types), the rest disks with small bulges.
    early = rng.random() < 0.25
    p["bulge_frac"] = rng.uniform(0.65, 0.95) if early else rng.beta(2.0, 5.0)
    bf = p["bulge_frac"]
    p["n_sersic"] = float(rng.choice([2.0, 3.0, 4.0]) if not early else 4.0)
    p["hlr_bulge"] = p["r50"] * (0.25 + 0.7 * bf) * rng.uniform(0.85, 1.15)
    p["hlr_disk"] = p["r50"] * (1.05 + 0.3 * bf) * rng.uniform(0.9, 1.1)
    # Inclination: cos i uniform, intrinsic thickness q0 = 0.15.
    cos_i = rng.random()
    p["q"] = math.sqrt(cos_i**2 * (1 - 0.15**2) + 0.15**2)
    p["q_bulge"] = rng.uniform(0.6, 1.0) if not early else rng.uniform(0.45, 1.0)
    p["pa"] = rng.uniform(0.0, 180.0)
    p["dx"], p["dy"] = rng.uniform(-0.5, 0.5, 2) * LUO_PIXSCALE  # sub-pixel centring

    # Spiral arms: half the disk galaxies.
    arms = (not early) and rng.random() < 0.55
    p["has_arms"] = int(arms)
    p["arm_m"] = int(rng.choice([2, 2, 2, 3, 4]))
    p["arm_pitch"] = rng.uniform(10.0, 30.0)
    p["arm_amp"] = rng.uniform(0.4, 0.9)
    p["arm_phase"] = rng.uniform(0.0, 360.0)
    # Star-forming knots in the disk.
    nk = int(rng.integers(5, 60))
    p["n_knots"] = 0 if early else nk
    p["knot_frac"] = rng.uniform(0.05, 0.25) if p["n_knots"] else 0.0
    p["knot_seed"] = int(rng.integers(1, 2**31 - 1))

    r_flux = mag_to_nmgy(p["r_mag"])
    comp_fluxes = {
        "bulge": _colours_to_fluxes(r_flux * bf, _draw_colours(rng, BULGE_COLOURS)),
        "disk": _colours_to_fluxes(r_flux * (1 - bf) * (1 - p["knot_frac"]),
                                   _draw_colours(rng, DISK_COLOURS)),
        "knots": _colours_to_fluxes(r_flux * (1 - bf) * p["knot_frac"],
                                    _draw_colours(rng, KNOT_COLOURS)),
    }
    for c, fl in comp_fluxes.items():
        for b in ALL_BANDS:
            p[f"flux_{c}_{b}"] = fl[b]

    # Companion: fainter, smaller, 4-9" away.
    comp = rng.random() < cfg.rate_companion
    p["companion"] = int(comp)
    dist, ang = rng.uniform(4.0, 9.0), rng.uniform(0, 2 * math.pi)
    p["comp_dx"], p["comp_dy"] = dist * math.cos(ang), dist * math.sin(ang)
    p["comp_r_mag"] = p["r_mag"] + rng.uniform(0.5, 3.0)
    p["comp_hlr"] = rng.uniform(0.5, 1.0) * p["r50"] * 10 ** (-0.2 * (p["comp_r_mag"] - p["r_mag"]))
    p["comp_bulge_frac"] = rng.random()
    p["comp_q"] = rng.uniform(0.3, 1.0)
    p["comp_pa"] = rng.uniform(0.0, 180.0)
    # Foreground stars: count, then positions/brightness from their own seed.
    has_star = rng.random() < cfg.rate_star
    p["n_stars"] = int(1 + rng.poisson(0.5)) if has_star else 0
    p["star_seed"] = int(rng.integers(1, 2**31 - 1))

    # Per-survey defects (each survey independently) and their parameters.
    for s in LUO_SURVEYS:
        on = [d for d in DEFECTS if rng.random() < getattr(cfg, f"rate_{d}")]
        p[f"defects_{s}"] = ";".join(on)
        p[f"streak_angle_{s}"] = rng.uniform(0.0, 180.0)
        p[f"streak_offset_{s}"] = rng.uniform(-8.0, 8.0)
        p[f"streak_mag_{s}"] = rng.uniform(18.5, 21.0)  # AB per arcsec of trail, r band
        p[f"sat_mag_{s}"] = rng.uniform(11.0, 13.5)
        sd, sa = rng.uniform(5.0, 9.5), rng.uniform(0, 2 * math.pi)
        p[f"sat_dx_{s}"], p[f"sat_dy_{s}"] = sd * math.cos(sa), sd * math.sin(sa)
        p[f"noise_factor_{s}"] = rng.uniform(3.0, 5.0)
        p[f"blur_factor_{s}"] = rng.uniform(1.7, 2.3)
        p[f"noise_seed_{s}"] = int(rng.integers(1, 2**31 - 1))
    return p


# ----------------------------------------------------------------------------- scene


def _arm_disk(p: dict) -> galsim.GSObject:
    """Unit-flux, face-on exponential disk modulated by an m-armed log spiral.

    ``I(r, t) = exp(-r / h) * (1 + A cos(m (t - ln(r) / tan(pitch)) + phase))`` on a
    numpy grid of step ``ARM_GRID``; the arms fade in over the inner scale length so the
    centre stays smooth.
    """
    h = p["hlr_disk"] / 1.678  # exponential scale length from half-light radius
    half = min(6.0 * h, 16.0)
    n = 2 * int(math.ceil(half / ARM_GRID))
    ax = (np.arange(n) - (n - 1) / 2) * ARM_GRID
    x, y = np.meshgrid(ax, ax)
    r = np.hypot(x, y)
    t = np.arctan2(y, x)
    spiral = np.cos(p["arm_m"] * (t - np.log(np.maximum(r, 1e-3) / h)
                                  / math.tan(math.radians(p["arm_pitch"])))
                    + math.radians(p["arm_phase"]))
    amp = p["arm_amp"] * (1 - np.exp(-((r / h) ** 2)))
    img = np.exp(-r / h) * (1 + amp * spiral)
    return galsim.InterpolatedImage(galsim.Image(img, scale=ARM_GRID), flux=1.0)


class Scene:
    """The galaxy (+ companion, + stars) of one parameter row, as GalSim profiles.

    ``draw(band, psf, n, scale)`` images the sky in one band.
    """

    def __init__(self, p: dict):
        self.p = p
        shear = galsim.Shear(q=p["q"], beta=p["pa"] * galsim.degrees)
        self.bulge = galsim.Sersic(p["n_sersic"], half_light_radius=p["hlr_bulge"]).shear(
            q=p["q_bulge"], beta=p["pa"] * galsim.degrees)
        disk = _arm_disk(p) if p["has_arms"] else galsim.Exponential(
            half_light_radius=p["hlr_disk"])
        self.disk = disk.shear(shear)
        self.knots = None
        if p["n_knots"]:
            self.knots = galsim.RandomKnots(
                p["n_knots"], half_light_radius=p["hlr_disk"], flux=1.0,
                rng=galsim.BaseDeviate(p["knot_seed"])).shear(shear)
        self.comp = None
        if p["companion"]:
            cb = p["comp_bulge_frac"]
            self.comp = galsim.Add([
                galsim.DeVaucouleurs(half_light_radius=0.6 * p["comp_hlr"], flux=cb),
                galsim.Exponential(half_light_radius=p["comp_hlr"], flux=1 - cb),
            ]).shear(q=p["comp_q"], beta=p["comp_pa"] * galsim.degrees).shift(
                p["comp_dx"], p["comp_dy"])
        self.stars = self._stars(p)

    @staticmethod
    def _stars(p: dict) -> list[tuple[float, float, dict[str, float]]]:
        """(dx, dy, flux per band) of each foreground star, from ``star_seed``."""
        rng = np.random.default_rng(p["star_seed"])
        half = LUO_SIZE * LUO_PIXSCALE / 2
        out = []
        for _ in range(p["n_stars"]):
            dx, dy = rng.uniform(-0.9 * half, 0.9 * half, 2)
            r_mag = rng.uniform(17.0, 23.0)
            gr = rng.uniform(0.3, 1.4)  # roughly along the stellar locus
            colours = (1.0 + 0.9 * gr, gr, 0.45 * gr - 0.05, 0.25 * gr, 0.1 * gr)
            out.append((dx, dy, _colours_to_fluxes(mag_to_nmgy(r_mag), colours)))
        return out

    def parts(self, band: str) -> list[galsim.GSObject]:
        """The extended sources in ``band``: profiles before PSF, nanomaggies.

        Drawing the parts one by one and adding the arrays is linear, hence the same
        image, but each part gets its own (small) FFT: a Sum of a wide Sersic bulge and
        point-like knots would need one big FFT grid.
        """
        p = self.p
        shift = galsim.PositionD(p["dx"], p["dy"])
        parts = [self.bulge.withFlux(p[f"flux_bulge_{band}"]).shift(shift),
                 self.disk.withFlux(p[f"flux_disk_{band}"]).shift(shift)]
        if self.knots is not None:
            parts.append(self.knots.withFlux(p[f"flux_knots_{band}"]).shift(shift))
        if self.comp is not None:
            ratio = 10 ** (-0.4 * (p["comp_r_mag"] - p["r_mag"]))
            tot = sum(p[f"flux_{c}_{band}"] for c in ("bulge", "disk", "knots"))
            parts.append(self.comp.withFlux(tot * ratio).shift(shift))
        return parts

    def draw(self, band: str, psf: galsim.GSObject, n: int, scale: float) -> np.ndarray:
        """``[n, n]`` float64: the scene in ``band`` convolved with ``psf`` and the pixel,
        nanomaggies per pixel of side ``scale`` arcsec, centred on the stamp."""
        objs = [galsim.Convolve(part, psf) for part in self.parts(band)]
        objs += [psf.withFlux(f[band]).shift(dx, dy) for dx, dy, f in self.stars]
        img = np.zeros((n, n))
        for obj in objs:
            img += obj.drawImage(nx=n, ny=n, scale=scale).array
        return img


# ----------------------------------------------------------------------- observation

#: SDSS quotes 95 % completeness for point sources (surveys.py ``depth``), which is
#: brighter than its 5 sigma PSF limit. From SDSS dark-sky brightness (g 22.0, r 21.0,
#: i 20.3 mag/arcsec^2), ~1000/950/700 e- per nMgy in 53.9 s, the per-pixel sky noise is
#: ~0.016/0.026/0.041 nMgy, i.e. 5 sigma depths ~1.2/0.8/1.2 mag fainter than the 95 %
#: points; we take 1.0 mag for all bands.
SDSS_5SIGMA_MINUS_95PCT = 1.0
#: HSC PDR depths are 5 sigma in a 2" diameter aperture, not PSF-weighted.
HSC_APERTURE_DIAMETER = 2.0


def pixel_noise(survey, band: str) -> float:
    """Gaussian sky noise per native pixel (nMgy) implied by the survey's quoted depth.

    ``Survey.sky_sigma`` treats every depth as a 5 sigma PSF-weighted limit. Two of the
    quoted depths are defined otherwise, and we convert them:

    * HSC (5 sigma in a 2" aperture): ``sigma = f_lim / (5 sqrt(A_ap))`` with ``A_ap``
      the aperture area in pixels (0.52-0.67 x ``sky_sigma``);
    * SDSS (95 % completeness): the 5 sigma limit is ``SDSS_5SIGMA_MINUS_95PCT`` fainter
      (0.40 x ``sky_sigma``);
    * DECaLS: the quoted 3-pass medians (``DECALS.depth``) are shallower than the
      full-depth coadds the viewer shows; we use ``surveys.DECALS_PSF_DEPTH`` (5 sigma
      PSF), i.e. 0.87/0.58/0.65 x ``sky_sigma`` in g/r/z.
    """
    if survey.name == "hsc":
        area = math.pi * (HSC_APERTURE_DIAMETER / 2 / survey.pixel_scale) ** 2
        return mag_to_nmgy(survey.depth[band]) / (5.0 * math.sqrt(area))
    if survey.name == "sdss":
        return survey.sky_sigma(band) * 10 ** (-0.4 * SDSS_5SIGMA_MINUS_95PCT)
    if survey.name == "decals":
        sigma_psf = survey.psf_fwhm[band] / FWHM_PER_SIGMA / survey.pixel_scale
        nea = 4.0 * math.pi * sigma_psf**2  # as Survey.sky_sigma
        return mag_to_nmgy(DECALS_PSF_DEPTH[band]) / (5.0 * math.sqrt(nea))
    return survey.sky_sigma(band)



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


def _psf(fwhm: float) -> galsim.GSObject:
    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm)


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
    lin = _colours_to_fluxes(mag_to_nmgy(p[f"streak_mag_{s}"]), SOLAR_COLOURS)[band]
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
    flux = _colours_to_fluxes(mag_to_nmgy(p[f"sat_mag_{s}"]), SOLAR_COLOURS)[band]
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
        psf = _psf(fwhm)
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
    return np.stack([scene.draw(b, _psf(s.psf_fwhm[b]), size, LUO_PIXSCALE)
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


def _check_config(cfg: SimConfig | LinSimConfig) -> None:
    """Refuse to resume into a folder simulated with other settings; record ours (this
    creates the folder)."""
    path = cfg.out / CONFIG_FILE
    mine = cfg.identity()
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable ({e})") from None
        if old != mine:
            diff = ", ".join(f"{k}={old.get(k)!r} (now {mine.get(k)!r})"
                             for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k))
            raise DataError(f"{cfg.out} was simulated with other settings: {diff}; "
                                   f"delete it to simulate it anew, or use another --out")
        return
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(mine, indent=1)))


def _start(cfg: SimConfig | LinSimConfig, man: Path, counts: dict[str, int]) -> None:
    """Check what can be checked before anything is written (``counts``: galaxies per
    CLI flag, not all 0; ``cfg.out`` a folder, not a downloaded set, made with these
    settings if simulated before), then record the settings and remove the temporaries
    of a killed run. ``ValueError`` / ``DataError`` name the culprit."""
    if not any(counts.values()):
        raise ValueError(f"nothing to simulate: {' = '.join(counts)} = 0")
    if cfg.out.exists() and not cfg.out.is_dir():
        raise DataError(f"--out {cfg.out} exists and is not a folder")
    if man.exists() and not (cfg.out / CONFIG_FILE).exists():
        raise DataError(f"{cfg.out} holds a {man.name} but no {CONFIG_FILE}: a set "
                               "that was not simulated; use another --out")
    _check_config(cfg)
    for d in (cfg.out, *cfg.out.glob("*/*")):  # every folder of both layouts
        if d.is_dir():
            clean_stale_tmp(d)


def simulate(cfg: SimConfig) -> Path:
    """Make (or finish) the dataset described by ``cfg``; return its folder.

    Galaxies whose files all exist are skipped, so a killed run resumes where it
    stopped (its temporaries are removed). ``manifest.csv`` is written last,
    atomically: a folder without it is an incomplete dataset. Bad settings (no
    galaxies, ``out`` a file or another set) raise before anything is written.
    """
    _start(cfg, layout.manifest_path(cfg.out), {"--n-train": cfg.n_train,
                                                 "--n-test": cfg.n_test})
    n = cfg.n_train + cfg.n_test
    workers = cfg.workers or os.cpu_count() or 1
    jobs = [(cfg, i) for i in range(n)]
    _run_jobs(_work, jobs, workers, f"simulate {cfg.out.name}", cfg.progress)
    df = manifest(cfg)
    atomic_write(layout.manifest_path(cfg.out),
                        lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))
    return cfg.out


def ensure_simulated(cfg: SimConfig | None = None) -> Path:
    """The dataset of ``cfg`` (default: the embedded default set), simulated if it has no
    manifest yet (an interrupted simulation is resumed)."""
    cfg = cfg or SimConfig()
    if layout.manifest_path(cfg.out).is_file():
        _check_config(cfg)  # a set made by older code or other settings is refused
    else:
        print(f"simulating {cfg.n_train} + {cfg.n_test} galaxies (seed {cfg.seed}) into "
              f"{cfg.out}", file=sys.stderr)
        simulate(cfg)
    return cfg.out


# ------------------------------------------------------------ Lin et al. (2021) setup
#
# ``python -m data.simulate --setup lin`` writes the ugriz FITS layout of Lin, Fouchez &
# Pasquet (2021) §IV-A (``data.layout``; the same files ``data.download sdss-fits |
# cfht-fits | pairs`` make from the real surveys), see :class:`LinSimConfig`.

#: Bump when a change to the Lin setup changes the files for the same settings.
LIN_SIM_VERSION = 2
#: The two surveys of Lin et al., in file order (X = SDSS, Y = CFHT).
LIN_SURVEYS = ("sdss", "cfht")
#: Galaxy groups of the Lin setup: name -> (id prefix, subset folder, surveys observed).
#: Every group draws its galaxies from its own block of ``LIN_GROUP_STRIDE`` indices of
#: ``draw_params``, so changing one group's count never changes another group's galaxies,
#: and no galaxy is in two groups: the unpaired SDSS and CFHT galaxies are *different*
#: galaxies, as in the paper (654,764 SDSS and 125,036 CFHT cutouts without partner).
LIN_GROUPS = {
    "paired_train": ("ptrain", "paired_train", LIN_SURVEYS),
    "paired_test": ("ptest", "paired_test", LIN_SURVEYS),
    "unpaired_sdss": ("usdss", "unpaired", ("sdss",)),
    "unpaired_cfht": ("ucfht", "unpaired", ("cfht",)),
}
LIN_GROUP_STRIDE = 1_000_000
#: Noise-free truth of paired_test: ``ROOT/paired_test/truth_<survey>/<id>.fits``.
LIN_TRUTH_PREFIX = "truth_"
#: First columns of ``lin_manifest.csv``: those ``data.lin_pairs`` writes.
LIN_MANIFEST_COLUMNS = ("id", "survey", "subset", "source_id", "ra", "dec",
                        "match_sep_arcsec", "peak_sep_arcsec")
#: Galaxy parameters of ``draw_params`` copied into ``lin_manifest.csv`` (the Luo-only
#: defect parameters and the y band are left out).
_LIN_PARAM_COLUMNS = (
    "r_mag", "r50", "petro_theta", "bulge_frac", "n_sersic", "hlr_bulge", "hlr_disk", "q",
    "q_bulge", "pa", "dx", "dy", "has_arms", "arm_m", "arm_pitch", "arm_amp", "arm_phase",
    "n_knots", "knot_frac", "companion", "comp_dx", "comp_dy", "comp_r_mag", "comp_hlr",
    "comp_bulge_frac", "comp_q", "comp_pa", "n_stars")


def default_lin_dir() -> Path:
    """Where the default simulated Lin et al. set lives: ``<data_root>/sim-lin``."""
    return layout.data_root() / "sim-lin"


@dataclass
class LinSimConfig:
    """Settings of one simulated Lin et al. (2021) ugriz FITS set.

    Defaults are sized for the CPU experiments (the paper: 2,557 / 2,500 pairs and
    654,764 / 125,036 unpaired SDSS / CFHT cutouts, §IV-A).

    What is simulated (Lin et al. §IV-A, notes/lin2021.md):

    * **Galaxies**: ``draw_params`` / ``Scene``, the Luo et al. sample (SDSS spectroscopic
      like, m_r < 17.77), companions and foreground stars at ``rate_companion`` /
      ``rate_star``. No defects (streaks, saturated stars, bad frames): Lin et al. select
      clean cutouts with a galaxy at the centre, and the noise emulator should learn the
      sky noise, not rare artefacts.
    * **Geometry**: drawn directly at each survey's native scale, no resampling: SDSS
      ``sdss_size`` (64) px at 0.396"/px, CFHT ``cfht_size`` (136) px at 0.187"/px, the
      same ~25.4" of sky centred on the galaxy (FITS pixel (size+1)/2, as ``stamp_wcs``).
    * **PSF**: Moffat (beta ``MOFFAT_BETA``) with the survey's median FWHM per band
      (``surveys.SDSS/CFHT.psf_fwhm``) times a per-image, per-band seeing factor
      ``exp(seeing_frac * N(0, 1))`` (~10 % scatter).
    * **Noise** (background subtracted: zero-mean Gaussian sky noise, so negative pixels
      occur, cf. the paper's Fig. 3 caption): per-pixel sigma ``pixel_noise(survey, band)
      * noise_<survey> * 10**(depth_dex * N(0, 1))`` -- the depth factor (0.2 dex) stands
      for the image-to-image changes of observing conditions that the paper's noise
      emulator models with its random amplitude z1 (§III-D). SDSS noise is white. CFHTLS
      MegaPipe stacks are resampled, so their noise is spatially correlated: white noise
      convolved with the separable 3x3 kernel ``[a, 1, a] x [a, 1, a] / (1 + 2 a^2)``,
      ``a = cfht_corr`` (0.1), which keeps the per-pixel sigma and gives a correlation
      of ``2a / (1 + 2a^2)`` (0.196) between horizontal or vertical neighbours and
      ``(2a / (1 + 2a^2))^2`` (0.038) between diagonal ones. No source Poisson noise.
    * **Units**: nanomaggies per pixel, as ``data.fits_download`` writes both surveys
      (SDSS frames are nanomaggies; CFHT stacks have zero point 30, so raw / 1000 =
      nanomaggies: the paper's "raw CFHT divided by 1000").

    The depth and seeing factors, the resulting ``sky_sigma_<band>`` and ``fwhm_<band>``
    are recorded per file in ``lin_manifest.csv``. Sizes are in pixels; counts >= 0.
    """

    out: Path = field(default_factory=default_lin_dir)
    n_paired_train: int = 200
    n_paired_test: int = 100
    n_unpaired_sdss: int = 400
    n_unpaired_cfht: int = 400
    seed: int = 0
    workers: int | None = None  # None: os.cpu_count()
    sdss_size: int = LIN_SDSS_SIZE  # §IV-A: 64x64 px at 0.396"/px
    cfht_size: int = LIN_CFHT_SIZE  # §IV-A: 136x136 px at 0.187"/px
    truth: bool = True  # paired_test/truth_{sdss,cfht}/<id>.fits (noise-free cubes)
    rate_companion: float = 0.15
    rate_star: float = 0.30
    depth_dex: float = 0.2  # sd of log10(sky-sigma factor), per image and band
    seeing_frac: float = 0.1  # sd of ln(FWHM factor), per image and band
    cfht_corr: float = 0.1  # neighbour weight a of the CFHT noise kernel (0: white)
    noise_sdss: float = 1.0  # overall factors on the depth-derived sky noise
    noise_cfht: float = 1.0
    progress: bool = True  # tqdm bar on stderr

    def __post_init__(self):
        self.out = Path(self.out)
        for name in ("n_paired_train", "n_paired_test", "n_unpaired_sdss",
                     "n_unpaired_cfht", "sdss_size", "cfht_size"):
            v = getattr(self, name)
            lo = 4 if name.endswith("size") else 0
            hi = LIN_GROUP_STRIDE if name.startswith("n_") else 4096
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        for name in ("rate_companion", "rate_star"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("depth_dex", "seeing_frac", "noise_sdss", "noise_cfht"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.cfht_corr <= 1.0:
            raise ValueError(f"cfht_corr must lie in [0, 1], got {self.cfht_corr!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed!r}")

    def counts(self) -> dict[str, int]:
        """Galaxies per group of ``LIN_GROUPS``."""
        return {g: getattr(self, f"n_{g}") for g in LIN_GROUPS}

    def size(self, survey: str) -> int:
        return getattr(self, f"{survey}_size")

    def identity(self) -> dict:
        """The fields that determine the files (not where or how fast they are made)."""
        d = dataclasses.asdict(self)
        for k in ("out", "workers", "progress"):
            d.pop(k)
        return {"setup": "lin", **d, "sim_version": LIN_SIM_VERSION}

    def luo_view(self) -> SimConfig:
        """A ``SimConfig`` for ``draw_params``: our extra rates, no defects."""
        return SimConfig(out=self.out, n_train=0, n_test=0, rate_companion=self.rate_companion,
                         rate_star=self.rate_star, rate_streak=0.0, rate_saturated=0.0,
                         rate_noisy=0.0, rate_blurred=0.0, progress=False)


def lin_jobs(cfg: LinSimConfig) -> list[tuple[str, int]]:
    """``(group, k)`` of every galaxy, in manifest order."""
    return [(g, k) for g, n in cfg.counts().items() for k in range(n)]


def lin_galaxy_id(group: str, k: int) -> str:
    """``(group, 0-based k)`` -> ``ptrain000001``-style id."""
    return f"{LIN_GROUPS[group][0]}{k + 1:06d}"


def lin_observing(cfg: LinSimConfig, index: int) -> dict:
    """Per-image observing conditions of galaxy ``index`` for both surveys.

    Drawn in a fixed order (survey, band: depth factor, seeing factor; then one noise
    seed per survey) from ``default_rng(SeedSequence((seed, index, 1)))``, a stream of
    the galaxy's own seed separate from ``draw_params``; a survey that does not observe
    the galaxy (unpaired) is drawn too, so nothing depends on the group.

    Returns ``{survey: {"noise_factor": {band: x}, "fwhm_factor": {band: x},
    "sky_sigma": {band: nMgy/px}, "fwhm": {band: arcsec}, "noise_seed": int}}``.
    """
    rng = np.random.default_rng(np.random.SeedSequence((cfg.seed, index, 1)))
    out = {}
    for s in LIN_SURVEYS:
        out[s] = {"noise_factor": {}, "fwhm_factor": {}}
        for b in fits_download.BANDS:
            out[s]["noise_factor"][b] = 10.0 ** (cfg.depth_dex * rng.standard_normal())
            out[s]["fwhm_factor"][b] = math.exp(cfg.seeing_frac * rng.standard_normal())
    for s in LIN_SURVEYS:
        out[s]["noise_seed"] = int(rng.integers(1, 2**63 - 1))
        sv = get_survey(s)
        scale = getattr(cfg, f"noise_{s}")
        out[s]["sky_sigma"] = {b: pixel_noise(sv, b) * scale * out[s]["noise_factor"][b]
                               for b in fits_download.BANDS}
        out[s]["fwhm"] = {b: sv.psf_fwhm[b] * out[s]["fwhm_factor"][b]
                          for b in fits_download.BANDS}
    return out


def correlated_noise(rng: np.random.Generator, n: int, sigma: float, a: float) -> np.ndarray:
    """``[n, n]`` Gaussian noise of per-pixel std ``sigma``, correlated over neighbours.

    White N(0, 1) noise on an ``(n+2) x (n+2)`` grid is convolved (VALID) with the
    separable kernel ``k = [a, 1, a] x [a, 1, a]``, then divided by ``sum(k^2)^(1/2) =
    1 + 2 a^2`` so each pixel keeps variance ``sigma^2``; the correlation between
    horizontal (or vertical) neighbours is ``2a / (1 + 2a^2)``. ``a = 0``: white noise.
    """
    if a == 0.0:
        return rng.normal(0.0, sigma, (n, n))
    w = rng.standard_normal((n + 2, n + 2))
    w = a * w[:, :-2] + w[:, 1:-1] + a * w[:, 2:]
    w = a * w[:-2] + w[1:-1] + a * w[2:]
    return w * (sigma / (1.0 + 2.0 * a * a))


def lin_truth_path(root: Path | str, subset: str, survey: str, gid: str) -> Path:
    """``ROOT/<subset>/truth_<survey>/<id>.fits``: a simulated image's noise-free cube."""
    return layout.fits_path(root, subset, LIN_TRUTH_PREFIX + survey, gid)


def _lin_files(cfg: LinSimConfig, group: str, gid: str) -> list[tuple[str, bool, Path]]:
    """``(survey, is_truth, path)`` of every file of one galaxy."""
    _, subset, obs = LIN_GROUPS[group]
    out = [(s, False, layout.fits_path(cfg.out, subset, s, gid)) for s in obs]
    if cfg.truth and group == "paired_test":
        out += [(s, True, lin_truth_path(cfg.out, subset, s, gid)) for s in obs]
    return out


def _lin_params(cfg: LinSimConfig, group: str, k: int) -> tuple[int, str, dict]:
    index = list(LIN_GROUPS).index(group) * LIN_GROUP_STRIDE + k
    p = draw_params(cfg.seed, index, cfg.luo_view())
    gid = lin_galaxy_id(group, k)
    p["id"] = gid
    return index, gid, p


def make_lin_galaxy(cfg: LinSimConfig, group: str, k: int) -> bool:
    """Draw and write every file of galaxy ``k`` of ``group``; skip it if all exist.

    Per survey observing it: for each band u..z the scene is drawn with the image's
    PSF on the native grid (``Scene.draw``: nMgy per pixel), noise is added
    (:func:`correlated_noise`, ``a = 0`` for SDSS); the noise-free planes are the truth.
    Returns True if anything was written.
    """
    index, gid, p = _lin_params(cfg, group, k)
    files = _lin_files(cfg, group, gid)
    if all(path.exists() for _, _, path in files):
        return False
    obs = lin_observing(cfg, index)
    scene = Scene(p)
    for s in LIN_GROUPS[group][2]:
        mine = [(t, path) for sv, t, path in files if sv == s]
        if all(path.exists() for _, path in mine):
            continue
        survey, size, o = get_survey(s), cfg.size(s), obs[s]
        a = cfg.cfht_corr if s == "cfht" else 0.0
        rng = np.random.default_rng(o["noise_seed"])
        clean, noisy = [], []
        for b in fits_download.BANDS:
            img = scene.draw(b, _psf(o["fwhm"][b]), size, survey.pixel_scale)
            clean.append(img)
            noisy.append(img + correlated_noise(rng, size, o["sky_sigma"][b], a))
        wcs = fits_download.stamp_wcs(p["ra"], p["dec"], size, survey.pixel_scale)
        for truth, path in mine:
            if path.exists():
                continue
            cube = np.stack(clean if truth else noisy).astype(np.float32)
            extra = {"SAMPLING": ("native", "drawn on the survey's pixel grid"),
                     "SIMULATD": (True, "GalSim mock (data.simulate --setup lin)"),
                     "SIMSEED": (cfg.seed, "simulation seed"),
                     "SIMINDEX": (index, "galaxy index of draw_params"),
                     "TRUTH": (truth, "noise-free (PSF-convolved) truth")}
            hdr = fits_download.cube_header(wcs, survey, gid, p["ra"], p["dec"], extra)
            fits_download.write_cube(path, cube, hdr)
    return True


def _lin_work(args) -> bool:
    cfg, group, k = args
    return make_lin_galaxy(cfg, group, k)


def _total_flux(p: dict, band: str) -> float:
    return sum(p[f"flux_{c}_{band}"] for c in ("bulge", "disk", "knots"))


def lin_manifest(cfg: LinSimConfig) -> pd.DataFrame:
    """The rows of ``lin_manifest.csv``, recomputed from the seed (no drawing).

    One row per observed file, in the order ``data.lin_pairs`` writes them (paired_train
    then paired_test, SDSS then CFHT per id; unpaired SDSS; unpaired CFHT). Columns:
    ``LIN_MANIFEST_COLUMNS`` (``source_id`` = ``id``; both separations 0 for pairs, as
    the two images of a simulated pair are centred on the same galaxy by construction,
    NaN for unpaired galaxies, which never had a candidate partner), then ``group``,
    ``index`` (of ``draw_params``), ``has_truth``, the galaxy parameters
    (``_LIN_PARAM_COLUMNS``; lengths arcsec, angles degrees), ``flux_<b>`` (the galaxy:
    bulge + disk + knots, nMgy, before the PSF), ``flux_comp_<b>`` (companion) and
    ``flux_stars_<b>`` (foreground stars) for b in ugriz, and the file's observing
    conditions ``noise_factor_<b>``, ``sky_sigma_<b>`` (nMgy/px), ``fwhm_factor_<b>``,
    ``fwhm_<b>`` (arcsec) and ``noise_corr`` (the kernel weight ``a``).
    """
    rows = []
    for group, k in lin_jobs(cfg):
        index, gid, p = _lin_params(cfg, group, k)
        obs = lin_observing(cfg, index)
        _, subset, surveys_ = LIN_GROUPS[group]
        paired = len(surveys_) == 2
        stars = Scene._stars(p)
        base = {c: p[c] for c in _LIN_PARAM_COLUMNS}
        for b in fits_download.BANDS:
            base[f"flux_{b}"] = _total_flux(p, b)
            base[f"flux_comp_{b}"] = (_total_flux(p, b) * 10 ** (
                -0.4 * (p["comp_r_mag"] - p["r_mag"])) if p["companion"] else 0.0)
            base[f"flux_stars_{b}"] = sum(f[b] for _, _, f in stars)
        for s in surveys_:
            o = obs[s]
            row = {"id": gid, "survey": s, "subset": subset, "source_id": gid,
                   "ra": p["ra"], "dec": p["dec"],
                   "match_sep_arcsec": 0.0 if paired else np.nan,
                   "peak_sep_arcsec": 0.0 if paired else np.nan,
                   "group": group, "index": index,
                   "has_truth": int(cfg.truth and group == "paired_test"), **base}
            for key in ("noise_factor", "sky_sigma", "fwhm_factor", "fwhm"):
                for b in fits_download.BANDS:
                    row[f"{key}_{b}"] = o[key][b]
            row["noise_corr"] = cfg.cfht_corr if s == "cfht" else 0.0
            rows.append(row)
    return pd.DataFrame(rows)


#: ``prctl`` option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int | None) -> None:
    """Pool initializer: end this worker when the simulating process dies, even by
    ``kill -9`` (else it would be reparented and go on writing, then idle forever).
    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; elsewhere a thread polls the parent
    pid. ``parent``: the pid our parent must have (``None``: not our direct parent,
    as under forkserver), to catch a parent that died before ``prctl`` took effect."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) == 0
    except (AttributeError, OSError, TypeError):  # no prctl (not Linux)
        ok = False
    if not ok:
        ppid = os.getppid()

        def watch():
            while os.getppid() == ppid:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _run_jobs(work, jobs: list, workers: int, desc: str, progress: bool) -> None:
    """Run ``work(job)`` for every job, in processes when ``workers > 1``, with a bar.
    Worker processes die with this one (:func:`_die_with_parent`)."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=desc, unit="gal", file=sys.stderr)
    n = len(jobs)
    if workers == 1 or n <= 1:
        for job in jobs:
            work(job)
            bar is not None and bar.update()
    else:
        direct = multiprocessing.get_start_method() in ("fork", "spawn")
        with ProcessPoolExecutor(workers, initializer=_die_with_parent,
                                 initargs=(os.getpid() if direct else None,)) as ex:
            for _ in ex.map(work, jobs, chunksize=max(1, min(8, n // (4 * workers)))):
                bar is not None and bar.update()
    if bar is not None:
        bar.close()


def simulate_lin(cfg: LinSimConfig) -> Path:
    """Make (or finish) the Lin et al. set described by ``cfg``; return its folder.

    Writes ``ROOT/{paired_train,paired_test}/{sdss,cfht}/<id>.fits``,
    ``ROOT/unpaired/{sdss,cfht}/<id>.fits``, ``ROOT/paired_test/truth_{sdss,cfht}/<id>.fits``
    (``cfg.truth``), ``ROOT/sim_config.json`` (first; checked on resume: other settings
    are refused with one ``DataError``) and ``ROOT/lin_manifest.csv`` (last, atomically:
    a folder without it is unfinished). Galaxies whose files all exist are skipped, so a
    killed run continues where it stopped; every file is written atomically, and a
    killed run's temporaries are removed. Bad settings raise before anything is written.
    """
    man = cfg.out / layout.LIN_MANIFEST
    _start(cfg, man, {f"--n-{g.replace('_', '-')}": n for g, n in cfg.counts().items()})
    jobs = [(cfg, g, k) for g, k in lin_jobs(cfg)]
    workers = cfg.workers or os.cpu_count() or 1
    _run_jobs(_lin_work, jobs, workers, f"simulate {cfg.out.name}", cfg.progress)
    df = lin_manifest(cfg)
    # %.10g keeps ra/dec to ~1e-7 deg (0.0004"), far below a pixel.
    atomic_write(man, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g"))
    return cfg.out


def ensure_lin_simulated(cfg: LinSimConfig | None = None) -> Path:
    """The Lin et al. set of ``cfg`` (default: ``LinSimConfig()``), simulated if it has
    no ``lin_manifest.csv`` yet (an interrupted simulation is resumed). A finished
    simulated folder made with other settings raises ``DataError``."""
    cfg = cfg or LinSimConfig()
    if not (cfg.out / layout.LIN_MANIFEST).is_file():
        c = cfg.counts()
        print(f"simulating {c['paired_train']} + {c['paired_test']} pairs, "
              f"{c['unpaired_sdss']} + {c['unpaired_cfht']} unpaired SDSS + CFHT galaxies "
              f"(seed {cfg.seed}) into {cfg.out}", file=sys.stderr)
        simulate_lin(cfg)
    elif (cfg.out / CONFIG_FILE).is_file():
        _check_config(cfg)
    return cfg.out


# ---------------------------------------------------------------------------- CLI


def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate {text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {text!r} must lie in [0, 1]")
    return v


def _factor(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"factor {text!r} is not a number") from None
    if not v >= 0.0:
        raise argparse.ArgumentTypeError(f"factor {text!r} must be >= 0")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


#: What each ``--rate-<name>`` switches on (per galaxy; defects per galaxy and survey).
_RATE_HELP = {"companion": "a second galaxy 4-9\" away", "star": ">= 1 foreground star",
              "streak": "a satellite trail, per survey",
              "saturated": "a saturated bright star, per survey",
              "noisy": "x3-5 sky noise, per survey",
              "blurred": "x1.7-2.3 PSF FWHM, per survey"}

#: ``--setup`` choices: ``luo`` (Luo et al. JPEG triplets, the default) or ``lin``.
SETUPS = ("luo", "lin")


def _setup_of(argv: list[str] | None) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--setup", choices=SETUPS, default="luo")
    return pre.parse_known_args(argv)[0].setup


def parse_args(argv: list[str] | None = None) -> SimConfig | LinSimConfig:
    """Command line -> ``SimConfig`` (``--setup luo``, the default) or ``LinSimConfig``
    (``--setup lin``); bad values end in a one-line argparse error."""
    if _setup_of(argv) == "lin":
        return parse_lin_args(argv)
    d = SimConfig.__dataclass_fields__
    ap = Parser(prog="python -m data.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", choices=SETUPS, default="luo",
                    help="luo: Luo et al. JPEG triplets; lin: Lin et al. ugriz FITS "
                         "(see --setup lin --help)")
    ap.add_argument("--out", type=Path, default=layout.default_sim_dir(),
                    help="dataset folder")
    ap.add_argument("--n-train", type=_count, default=d["n_train"].default, metavar="N",
                    help="training galaxies")
    ap.add_argument("--n-test", type=_count, default=d["n_test"].default, metavar="N",
                    help="test galaxies")
    ap.add_argument("--seed", type=int, default=d["seed"].default,
                    help="every random number derives from it (default: %(default)s)")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="processes (default: all CPUs)")
    ap.add_argument("--truth", choices=TRUTH_CHOICES, default=d["truth"].default,
                    help="splits that get noise-free truth/<id>.npy")
    ap.add_argument("--size", type=positive_int, default=d["size"].default,
                    help="cutout side in 0.168\" pixels")
    for name in SimConfig().rates():
        ap.add_argument(f"--rate-{name}", type=_rate, default=d[f"rate_{name}"].default,
                        metavar="P", help=f"probability of {_RATE_HELP[name]}")
    for s in LUO_SURVEYS:
        ap.add_argument(f"--noise-{s}", type=_factor, default=d[f"noise_{s}"].default,
                        metavar="X", help=f"multiply {s}'s depth-derived sky noise")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    a = ap.parse_args(argv)
    if a.size < 8:
        ap.error(f"argument --size: {a.size} must be >= 8")
    kw = {k: v for k, v in vars(a).items() if k not in ("no_progress", "setup")}
    return SimConfig(progress=not a.no_progress, **kw)


def parse_lin_args(argv: list[str] | None = None) -> LinSimConfig:
    """``--setup lin`` command line -> ``LinSimConfig``."""
    d = LinSimConfig.__dataclass_fields__
    ap = Parser(
        prog="python -m data.simulate --setup lin",
        description="Mock SDSS / CFHT ugriz FITS cubes for Lin et al. (2021): paired\n"
                    "train/test and unpaired sets in the layout of data.layout.")
    ap.add_argument("--setup", choices=SETUPS, default="lin",
                    help="lin: these ugriz FITS sets; luo: see --help")
    ap.add_argument("--out", type=Path, default=default_lin_dir(), help="dataset folder")
    for g in LIN_GROUPS:
        ap.add_argument(f"--n-{g.replace('_', '-')}", dest=f"n_{g}", type=_count,
                        default=d[f"n_{g}"].default, metavar="N",
                        help=f"galaxies in {g.replace('_', ' ')}")
    ap.add_argument("--seed", type=_count, default=d["seed"].default,
                    help="every random number derives from it (default: %(default)s)")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="processes (default: all CPUs)")
    ap.add_argument("--sdss-size", type=positive_int, default=d["sdss_size"].default,
                    help="SDSS stamp side in 0.396\" pixels")
    ap.add_argument("--cfht-size", type=positive_int, default=d["cfht_size"].default,
                    help="CFHT stamp side in 0.187\" pixels")
    ap.add_argument("--no-truth", action="store_true",
                    help="no noise-free paired_test/truth_{sdss,cfht}/ cubes")
    for name in ("companion", "star"):
        ap.add_argument(f"--rate-{name}", type=_rate, default=d[f"rate_{name}"].default,
                        metavar="P", help=f"probability of {_RATE_HELP[name]}")
    ap.add_argument("--depth-dex", type=_factor, default=d["depth_dex"].default,
                    metavar="X", help="scatter (dex) of the per-image sky-noise factor")
    ap.add_argument("--seeing-frac", type=_factor, default=d["seeing_frac"].default,
                    metavar="X", help="scatter (ln) of the per-image PSF FWHM factor")
    ap.add_argument("--cfht-corr", type=_rate, default=d["cfht_corr"].default,
                    metavar="A", help="neighbour weight of the CFHT noise kernel (0: white)")
    for s in LIN_SURVEYS:
        ap.add_argument(f"--noise-{s}", type=_factor, default=d[f"noise_{s}"].default,
                        metavar="X", help=f"multiply {s}'s depth-derived sky noise")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    a = ap.parse_args(argv)
    for s in LIN_SURVEYS:
        if getattr(a, f"{s}_size") < 4:
            ap.error(f"argument --{s}-size: must be >= 4")
    kw = {k: v for k, v in vars(a).items()
          if k not in ("no_progress", "no_truth", "setup")}
    return LinSimConfig(progress=not a.no_progress, truth=not a.no_truth, **kw)


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (bad input: one ``error:`` line, 2)."""
    def job():
        cfg = parse_args(argv)  # in here: a value argparse lets through is one line too
        if isinstance(cfg, LinSimConfig):
            out = simulate_lin(cfg)
            c = cfg.counts()
            what = (f"{c['paired_train']} + {c['paired_test']} pairs (paired_train, "
                    f"paired_test), {c['unpaired_sdss']} unpaired SDSS + "
                    f"{c['unpaired_cfht']} unpaired CFHT galaxies")
            man = out / layout.LIN_MANIFEST
        else:
            out = simulate(cfg)
            what = (f"{cfg.n_train + cfg.n_test} galaxies ({cfg.n_train} train, "
                    f"{cfg.n_test} test)")
            man = layout.manifest_path(out)
        print(f"wrote {what}, seed {cfg.seed}, to {out} (manifest: {man})")
    return run_cli(job)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
