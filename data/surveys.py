"""Survey facts: the single source of truth for every survey constant in the project.

Everything that describes a survey (pixel scale, bands, seeing, depth, the Legacy Survey
viewer's layer name and its RGB stretch) lives here and nowhere else. Sources are
``shared/notes/surveys.md`` and ``shared/notes/legacy_survey.md`` (survey papers and the
viewer's public source code), and Luo et al. (2025, §2) for the band choices.

Units: fluxes are in nanomaggies (1 nMgy <-> AB magnitude 22.5) throughout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

#: AB magnitude of a source of 1 nanomaggy.
NMGY_ZEROPOINT = 22.5

#: Luo et al. §2.4: every survey is resampled to HSC's pixel scale, 128x128 px (21.5").
LUO_PIXSCALE = 0.168
LUO_SIZE = 128

#: Lin et al. (2021) §IV.A: SDSS 64x64 px at 0.396"/px and CFHT 136x136 px at 0.187"/px
#: span the same ~25.4" of sky; pairs are matched within 1" and split 2,557 train /
#: 2,500 test (the remaining galaxies form the unpaired training sets).
LIN_SDSS_SIZE = 64
LIN_CFHT_SIZE = 136
LIN_MATCH_ARCSEC = 1.0
LIN_N_PAIRED_TRAIN = 2557
LIN_N_PAIRED_TEST = 2500

#: Q of the viewer's asinh stretch (fixed in ``sdss_rgb``).
RGB_Q = 20.0

#: Order of the Lanczos kernel with which the viewer resamples a coadd onto a cutout's
#: pixel grid (imagine map/views.py ``render_into_wcs`` -> ``resample_with_wcs``,
#: astrometry.net's default L = 3); at 0.168"/px it reads the native-scale bricks, with
#: no binned pyramid level in between.
VIEWER_LANCZOS = 3

#: JPEG quality the viewer encodes cutouts with.
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Survey:
    """Static description of one imaging survey.

    Attributes:
        name: short lower-case key used on disk (``DIR/<split>/<name>/``) and on the CLI.
        pixel_scale: native pixel scale in arcsec/px.
        bands: all bands the survey observes.
        psf_fwhm: median seeing FWHM in arcsec, per band.
        depth: point-source depth in AB mag per band, as the survey quotes it
            (``depth_kind`` says which definition).
        depth_kind: what ``depth`` means (5 sigma, 95 % completeness, ...).
        layer: Legacy Survey viewer layer name for jpeg/fits cutouts (``None``: not in the viewer).
        rgb_bands: bands rendered into the RGB JPEG, ordered (blue, green, red).
        rgb_scales: viewer stretch scale per rendered band (multiplies nanomaggies).
        rgb_m: the viewer's additive softening ``m`` (sets the blank-sky grey level).
        flux_to_nmgy: multiply the survey's native image units by this to get nanomaggies.
        coadd_exposures: exposures averaged into the image the viewer serves, per band.
        coadd_lanczos: order of the Lanczos kernel that resampled each exposure onto the
            coadd's pixel grid (0: the image is not resampled).
    """

    name: str
    pixel_scale: float
    bands: tuple[str, ...]
    psf_fwhm: dict[str, float]
    depth: dict[str, float]
    depth_kind: str
    layer: str | None
    rgb_bands: tuple[str, ...] = ()
    rgb_scales: dict[str, float] = field(default_factory=dict)
    rgb_m: float = 0.03
    flux_to_nmgy: float = 1.0
    coadd_exposures: dict[str, int] = field(default_factory=dict)
    coadd_lanczos: int = 0

    def sky_sigma(self, band: str) -> float:
        """Per-pixel sky noise (nanomaggies/px, native pixels) implied by the band's depth.

        A point source at the depth magnitude is detected at 5 sigma with an optimally
        weighted Gaussian-PSF aperture, whose noise-equivalent area is
        ``NEA = 4 pi sigma_psf^2`` pixels. Then ``f_lim / 5 = sigma_px * sqrt(NEA)``.
        All depths are treated as 5 sigma (SDSS quotes 95 % completeness, which lies close
        to its 5 sigma limit); this is an approximation good to a few tenths of a magnitude.
        """
        f_lim = mag_to_nmgy(self.depth[band])
        sigma_psf_px = self.psf_fwhm[band] / FWHM_PER_SIGMA / self.pixel_scale
        nea = 4.0 * math.pi * sigma_psf_px**2
        return f_lim / (5.0 * math.sqrt(nea))


#: FWHM = 2 sqrt(2 ln 2) sigma for a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def mag_to_nmgy(mag: float) -> float:
    """AB magnitude -> flux in nanomaggies."""
    return 10.0 ** ((NMGY_ZEROPOINT - mag) / 2.5)


def nmgy_to_mag(flux: float) -> float:
    """Flux in nanomaggies (> 0) -> AB magnitude."""
    return NMGY_ZEROPOINT - 2.5 * math.log10(flux)


SDSS = Survey(
    name="sdss",
    pixel_scale=0.396,
    bands=("u", "g", "r", "i", "z"),
    psf_fwhm={"u": 1.47, "g": 1.39, "r": 1.32, "i": 1.27, "z": 1.23},
    depth={"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5},
    depth_kind="95% completeness, point sources",
    layer="sdss",
    # Luo et al. §2.4 render SDSS in g, r, i; the viewer's sdss_rgb defaults are the scales.
    rgb_bands=("g", "r", "i"),
    rgb_scales={"g": 2.5, "r": 1.5, "i": 1.0},
    rgb_m=0.02,
    # The viewer's ``sdss`` layer serves "sdssco" bricks: rerun-301 frames (one epoch
    # outside Stripe 82) resampled onto 0.396" bricks with Lanczos-2 (imagine,
    # map/oldviews.py map_sdss).
    coadd_exposures={b: 1 for b in "ugriz"},
    coadd_lanczos=2,
)

DECALS = Survey(
    name="decals",
    pixel_scale=0.262,
    bands=("g", "r", "z"),
    psf_fwhm={"g": 1.29, "r": 1.18, "z": 1.11},
    depth={"g": 24.65, "r": 23.61, "z": 22.84},
    depth_kind="5 sigma, median 3-pass",
    # Luo et al. say "DR15", which the Legacy Surveys never published; the viewer's
    # newest DECaLS-era grz layer is ls-dr10 (the downloader makes this a flag).
    layer="ls-dr10-grz",
    rgb_bands=("g", "r", "z"),
    rgb_scales={"g": 6.0, "r": 3.4, "z": 2.2},  # dr2_rgb
    rgb_m=0.03,
    # legacypipe coadds.py: every exposure is resampled onto the 0.262" brick grid with
    # Lanczos-3 and the exposures averaged; DECaLS is designed for 3 passes per band
    # (DR9: >= 3 passes over ~16,500 of ~20,000 deg^2 in each of g, r, z).
    coadd_exposures={"g": 3, "r": 3, "z": 3},
    coadd_lanczos=3,
)

#: Typical 5 sigma *PSF* depths of the full-depth DECaLS coadds behind the viewer's
#: ls-dr9/ls-dr10 layers, used by the simulator's sky noise. ``DECALS.depth`` are the
#: DR1/DR2 3-pass medians, which DR3-DR5 repeat and DR9/DR10 no longer quote. The DR9
#: and DR10 description pages show histograms of the Tractor catalogues' 5 sigma
#: point-source depths (files/depth-hist-{g,r,z}-dr9-south.png); for >= 3 exposures
#: their DECaLS peak lies at g 24.7-24.8, r 24.1-24.2, z 23.3-23.4 (a second, deeper
#: peak, g 25.2 / r 25.0 / z 23.9, is the DES area). Remaining doubt: the values are
#: read off the histograms (~0.05 mag) and are the DECaLS mode, not a published median.
#: ``psfdepth`` comes from each exposure's native-pixel noise (legacypipe coadds.py),
#: i.e. from the noise *before* the coadd's resampling (see ``Survey.coadd_lanczos``).
DECALS_PSF_DEPTH = {"g": 24.8, "r": 24.2, "z": 23.3}

HSC = Survey(
    name="hsc",
    pixel_scale=0.168,
    bands=("g", "r", "i", "z", "y"),
    psf_fwhm={"g": 0.79, "r": 0.75, "i": 0.61, "z": 0.68, "y": 0.68},
    # Per-band PDR3 Wide depths (notes/surveys.md marks them as rough; r ~ 26 is quoted
    # by the paper itself, §2.3).
    depth={"g": 26.5, "r": 26.5, "i": 26.2, "z": 25.2, "y": 24.4},
    depth_kind="5 sigma, 2 arcsec aperture (approximate)",
    layer="hsc-dr3",
    # The paper rendered HSC in g, r, i. The viewer's HSC default is g, r, z with red
    # scale 11; we put i on the red plane with that same scale (an assumption: the viewer
    # source gives no HSC i-band scale).
    rgb_bands=("g", "r", "i"),
    rgb_scales={"g": 30.0, "r": 17.0, "i": 11.0},
    rgb_m=0.03,
    flux_to_nmgy=1.0 / 10.0 ** ((27.0 - NMGY_ZEROPOINT) / 2.5),  # coadds use zp = 27
    # HSC-SSP Wide: 10 min in g, r (4 x 150 s) and 20 min in i, z, y (6 exposures; the
    # count is our reading of the survey design, unverified); hscPipe warps each exposure
    # onto the coadd's 0.168" grid with Lanczos-3.
    coadd_exposures={"g": 4, "r": 4, "i": 6, "z": 6, "y": 6},
    coadd_lanczos=3,
)

CFHT = Survey(
    name="cfht",
    pixel_scale=0.187,
    bands=("u", "g", "r", "i", "z"),
    psf_fwhm={"u": 0.85, "g": 0.78, "r": 0.71, "i": 0.64, "z": 0.68},
    depth={"u": 25.2, "g": 25.5, "r": 25.0, "i": 24.8, "z": 23.9},
    depth_kind="80% completeness, point sources",
    layer=None,  # CFHTLS comes from CADC MegaPipe, not the viewer
    flux_to_nmgy=1.0 / 10.0 ** ((30.0 - NMGY_ZEROPOINT) / 2.5),  # stacks use zp = 30
)

SURVEYS: dict[str, Survey] = {s.name: s for s in (SDSS, DECALS, HSC, CFHT)}

#: The three surveys of Luo et al.'s JPEG triplets, in order of increasing quality.
LUO_SURVEYS = ("sdss", "decals", "hsc")
#: The two surveys of Lin et al., in file order (X = SDSS, Y = CFHT).
LIN_SURVEYS = ("sdss", "cfht")


def get_survey(name: str) -> Survey:
    """Look a survey up by name; raise ``ValueError`` naming the valid ones."""
    try:
        return SURVEYS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown survey {name!r}; choose one of {', '.join(SURVEYS)}"
        ) from None

#: Coarse HSC-SSP PDR3 Wide footprint, ``(name, ra_min, ra_max, dec_min, dec_max)`` in
#: degrees (notes/legacy_survey.md), a pre-filter for the Luo et al. sample (§2.4): the
#: SDSS ∩ DECaLS ∩ HSC overlap. Cutouts inside a box may still be blank (HSC holes and
#: edges); the downloader rejects those. The notes give AEGIS only as Dec 48-55; its RA
#: range (205-225, around the field's 214.8) is our assumption.
HSC_WIDE_BOXES = (
    ("fall-east", 320.0, 360.0, -10.0, 10.0),
    ("fall-west", 0.0, 50.0, -10.0, 10.0),
    ("spring", 125.0, 230.0, -10.0, 10.0),
    ("hectomap", 190.0, 260.0, 40.0, 48.0),
    ("aegis", 205.0, 225.0, 48.0, 55.0),
)
