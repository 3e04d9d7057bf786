"""The simulated sky both setups observe: galaxies, GalSim profiles, PSF, sky noise.

Each galaxy (:func:`draw_params`, one flat dict of scalars) is a bulge (Sersic) +
exponential disk (log-spiral-modulated for a fraction, drawn on a fine numpy grid and
wrapped in ``galsim.InterpolatedImage``) + star-forming knots (``galsim.RandomKnots``),
with optional companion and foreground stars (:class:`Scene`). It is the Luo et al. §2.4
sample (SDSS spectroscopic targets, m_r < 17.77, Petrosian radius >= 3"); Lin et al.
(2021) draw the same galaxies with the defects off (``data.sim_lin``).

Shared observing facts: every PSF is a Moffat of index ``MOFFAT_BETA``
(:func:`moffat_psf`), and :func:`pixel_noise` turns a survey's quoted depth into the
Gaussian sky noise per native pixel (no source Poisson noise, which matters only in the
brightest cores at these depths). How each setup observes the scene lives in
``data.sim_luo`` (viewer JPEG triplets) and ``data.sim_lin`` (ugriz FITS cubes).

Every random number of galaxy ``i`` comes from its own generator seeded with
``(seed, i)``, drawn in a fixed order whatever the rates.
"""
from __future__ import annotations

import math

import galsim
import numpy as np

from data.surveys import (DECALS_PSF_DEPTH, FWHM_PER_SIGMA, LUO_PIXSCALE, LUO_SIZE,
                          LUO_SURVEYS, mag_to_nmgy)

#: Bands whose fluxes every galaxy carries, so that any survey can be observed later.
ALL_BANDS = ("u", "g", "r", "i", "z", "y")
DEFECTS = ("streak", "saturated", "noisy", "blurred")

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

# Colours (AB, u-g, g-r, r-i, i-z, z-y): red old bulges, bluer disks, blue knots.
# Typical values of SDSS galaxies (e.g. Strateva et al. 2001: u-r ~ 2.6 red / 1.8 blue).
BULGE_COLOURS = ((1.75, 0.10), (0.78, 0.04), (0.40, 0.03), (0.32, 0.04), (0.10, 0.04))
DISK_COLOURS = ((1.25, 0.15), (0.50, 0.08), (0.25, 0.05), (0.15, 0.05), (0.05, 0.04))
KNOT_COLOURS = ((0.90, 0.10), (0.25, 0.06), (0.05, 0.05), (0.00, 0.05), (0.00, 0.04))


def galaxy_id(index: int) -> str:
    """0-based index -> ``sim000001``-style id."""
    return f"sim{index + 1:06d}"


def colours_to_fluxes(r_flux: float, colours: np.ndarray) -> dict[str, float]:
    """r-band flux (nMgy) + (u-g, g-r, r-i, i-z, z-y) -> flux per band of ALL_BANDS."""
    ug, gr, ri, iz, zy = colours
    mags = {"r": 0.0, "g": gr, "u": gr + ug, "i": -ri, "z": -ri - iz, "y": -ri - iz - zy}
    return {b: r_flux * 10 ** (-0.4 * mags[b]) for b in ALL_BANDS}


def _draw_colours(rng, table) -> np.ndarray:
    return np.array([rng.normal(mu, sd) for mu, sd in table])


def draw_params(seed: int, index: int, cfg) -> dict:
    """All random parameters of galaxy ``index`` (a flat dict of scalars = manifest row).

    Every number is drawn, in a fixed order, from ``default_rng(SeedSequence((seed,
    index)))``; rates only decide which of the pre-drawn extras are switched on, so the
    galaxy itself does not change with the rates. ``cfg``: a ``data.sim_luo.SimConfig``
    (``n_train``: indices below it are ``train``; ``rate_<extra>`` and
    ``rate_<defect>`` for the extras and each of ``DEFECTS``).
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
        "bulge": colours_to_fluxes(r_flux * bf, _draw_colours(rng, BULGE_COLOURS)),
        "disk": colours_to_fluxes(r_flux * (1 - bf) * (1 - p["knot_frac"]),
                                   _draw_colours(rng, DISK_COLOURS)),
        "knots": colours_to_fluxes(r_flux * (1 - bf) * p["knot_frac"],
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


def galaxy_flux(p: dict, band: str) -> float:
    """The galaxy's total flux in ``band`` (bulge + disk + knots, nMgy, before the PSF)."""
    return sum(p[f"flux_{c}_{band}"] for c in ("bulge", "disk", "knots"))


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
        self.stars = self.foreground_stars(p)

    @staticmethod
    def foreground_stars(p: dict) -> list[tuple[float, float, dict[str, float]]]:
        """(dx, dy, flux per band) of each foreground star, from ``star_seed``."""
        rng = np.random.default_rng(p["star_seed"])
        half = LUO_SIZE * LUO_PIXSCALE / 2
        out = []
        for _ in range(p["n_stars"]):
            dx, dy = rng.uniform(-0.9 * half, 0.9 * half, 2)
            r_mag = rng.uniform(17.0, 23.0)
            gr = rng.uniform(0.3, 1.4)  # roughly along the stellar locus
            colours = (1.0 + 0.9 * gr, gr, 0.45 * gr - 0.05, 0.25 * gr, 0.1 * gr)
            out.append((dx, dy, colours_to_fluxes(mag_to_nmgy(r_mag), colours)))
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
            parts.append(self.comp.withFlux(galaxy_flux(p, band) * ratio).shift(shift))
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



def moffat_psf(fwhm: float) -> galsim.GSObject:
    """Moffat PSF (index ``MOFFAT_BETA``) of FWHM ``fwhm`` arcsec, unit flux."""
    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm)
