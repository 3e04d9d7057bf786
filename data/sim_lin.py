"""Lin et al. (2021) setup: mock SDSS / CFHT ugriz FITS cubes made with GalSim.

``python -m data.simulate --setup lin`` writes the ugriz FITS layout of Lin, Fouchez &
Pasquet (2021) §IV-A (``data.layout``; the same files ``data.download sdss-fits |
cfht-fits | pairs`` make from the real surveys): SDSS (64x64 at 0.396"/px) and CFHT
(136x136 at 0.187"/px) cubes in nanomaggies::

    DIR/{paired_train,paired_test}/{sdss,cfht}/<id>.fits   both members under one id
    DIR/unpaired/sdss/<id>.fits, DIR/unpaired/cfht/<id>.fits   different galaxies
    DIR/paired_test/truth_{sdss,cfht}/<id>.fits   noise-free truth of the test pairs
    DIR/lin_manifest.csv   one row per file: lin_pairs' columns + simulation parameters
    DIR/sim_config.json    the settings, checked on resume

``python -m data.simulate --setup lin [--out DIR] [--n-paired-train N]
[--n-paired-test N] [--n-unpaired-sdss N] [--n-unpaired-cfht N] [--seed S]
[--workers W]``; see :class:`LinSimConfig` for what is simulated (``data.scene``'s
galaxies, native grids, per-image depth and seeing, correlated CFHT noise).
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.io import atomic_write
from data import layout
from data.layout import PAIRED_TEST, PAIRED_TRAIN, UNPAIRED
from data.cube import BANDS, cube_header, stamp_wcs, write_cube
from data.scene import Scene, draw_params, galaxy_flux, moffat_psf, pixel_noise
from data.sim_jobs import CONFIG_FILE, check_config, run_jobs, start_run
from data.sim_luo import SimConfig
from data.surveys import LIN_CFHT_SIZE, LIN_SDSS_SIZE, LIN_SURVEYS, get_survey

#: Bump when a change to this module (or to ``data.scene``) changes the files for the same
#: settings.
LIN_SIM_VERSION = 2
#: Galaxy groups of the Lin setup: name -> (id prefix, subset folder, surveys observed).
#: Every group draws its galaxies from its own block of ``LIN_GROUP_STRIDE`` indices of
#: ``draw_params``, so changing one group's count never changes another group's galaxies,
#: and no galaxy is in two groups: the unpaired SDSS and CFHT galaxies are *different*
#: galaxies, as in the paper (654,764 SDSS and 125,036 CFHT cutouts without partner).
LIN_GROUPS = {
    "paired_train": ("ptrain", PAIRED_TRAIN, LIN_SURVEYS),
    "paired_test": ("ptest", PAIRED_TEST, LIN_SURVEYS),
    "unpaired_sdss": ("usdss", UNPAIRED, ("sdss",)),
    "unpaired_cfht": ("ucfht", UNPAIRED, ("cfht",)),
}
LIN_GROUP_STRIDE = 1_000_000
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
    * **Units**: nanomaggies per pixel, as ``data.cube`` writes both surveys
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
        for b in BANDS:
            out[s]["noise_factor"][b] = 10.0 ** (cfg.depth_dex * rng.standard_normal())
            out[s]["fwhm_factor"][b] = math.exp(cfg.seeing_frac * rng.standard_normal())
    for s in LIN_SURVEYS:
        out[s]["noise_seed"] = int(rng.integers(1, 2**63 - 1))
        sv = get_survey(s)
        scale = getattr(cfg, f"noise_{s}")
        out[s]["sky_sigma"] = {b: pixel_noise(sv, b) * scale * out[s]["noise_factor"][b]
                               for b in BANDS}
        out[s]["fwhm"] = {b: sv.psf_fwhm[b] * out[s]["fwhm_factor"][b]
                          for b in BANDS}
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


def _lin_files(cfg: LinSimConfig, group: str, gid: str) -> list[tuple[str, bool, Path]]:
    """``(survey, is_truth, path)`` of every file of one galaxy."""
    _, subset, obs = LIN_GROUPS[group]
    out = [(s, False, layout.fits_path(cfg.out, subset, s, gid)) for s in obs]
    if cfg.truth and group == "paired_test":
        out += [(s, True, layout.lin_truth_path(cfg.out, subset, s, gid)) for s in obs]
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
        for b in BANDS:
            img = scene.draw(b, moffat_psf(o["fwhm"][b]), size, survey.pixel_scale)
            clean.append(img)
            noisy.append(img + correlated_noise(rng, size, o["sky_sigma"][b], a))
        wcs = stamp_wcs(p["ra"], p["dec"], size, survey.pixel_scale)
        for truth, path in mine:
            if path.exists():
                continue
            cube = np.stack(clean if truth else noisy).astype(np.float32)
            extra = {"SAMPLING": ("native", "drawn on the survey's pixel grid"),
                     "SIMULATD": (True, "GalSim mock (data.simulate --setup lin)"),
                     "SIMSEED": (cfg.seed, "simulation seed"),
                     "SIMINDEX": (index, "galaxy index of draw_params"),
                     "TRUTH": (truth, "noise-free (PSF-convolved) truth")}
            hdr = cube_header(wcs, survey, gid, p["ra"], p["dec"], extra)
            write_cube(path, cube, hdr)
    return True


def _lin_work(args) -> bool:
    cfg, group, k = args
    return make_lin_galaxy(cfg, group, k)


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
        stars = Scene.foreground_stars(p)
        base = {c: p[c] for c in _LIN_PARAM_COLUMNS}
        for b in BANDS:
            base[f"flux_{b}"] = galaxy_flux(p, b)
            base[f"flux_comp_{b}"] = (galaxy_flux(p, b) * 10 ** (
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
                for b in BANDS:
                    row[f"{key}_{b}"] = o[key][b]
            row["noise_corr"] = cfg.cfht_corr if s == "cfht" else 0.0
            rows.append(row)
    return pd.DataFrame(rows)


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
    start_run(cfg, man, {f"--n-{g.replace('_', '-')}": n for g, n in cfg.counts().items()})
    jobs = [(cfg, g, k) for g, k in lin_jobs(cfg)]
    workers = cfg.workers or os.cpu_count() or 1
    run_jobs(_lin_work, jobs, workers, f"simulate {cfg.out.name}", cfg.progress)
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
        check_config(cfg)
    return cfg.out
