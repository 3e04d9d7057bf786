"""The ugriz FITS cube format of the Lin et al. (2021) sets, and how a stamp is cut.

One cube per galaxy (``data.layout.fits_path``; the downloads write them under
``ROOT/pool/<survey>/``): one primary HDU, float32 ``[5, H, W]`` (u, g, r, i, z) in
nanomaggies, the stamp's TAN WCS (``WCSAXES = 2``), and ``BANDS = 'ugriz'``,
``BAND0..BAND4``, ``BUNIT``, ``SURVEY``, ``OBJID``, ``RA``/``DEC`` of the request,
``PIXSCALE``, ``SAMPLING`` and the source (run/camcol/field or tile). :func:`write_cube`
is the one writer and :func:`read_cube` the one reader (the downloaders ``data.sdss`` /
``data.cfht``, the simulator, ``data.lin_pairs``, ``noise_gan.predict``).

How a stamp is cut (:func:`sample_nearest`): the output grid is a north-up, east-left
TAN grid centred on the galaxy (:func:`stamp_wcs`; the centre is the middle of the
stamp, FITS pixel ``(size + 1) / 2``, so flips and 90 degree rotations keep it) at the
survey's pixel scale; every output pixel takes the value of the source pixel nearest to
its sky position. No interpolation: pixel values and their noise are kept as observed
(only picked; on a rotated SDSS frame a few are picked twice), positions are exact to
half a source pixel, and all five bands share one WCS although the SDSS frames of one
field are not aligned with each other. The SDSS scans are not north-up, hence the
regridding; pairs then match pixel by pixel. On an aligned grid of the same scale the
stamp is an exact shifted cut; MegaPipe's native 0.186"/px against the 0.187"/px grid
means about one CFHT row and one column of the 136 are picked twice.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from common.errors import DataError
from common.io import atomic_path
from data import surveys
from data.layout import data_root

BANDS = ("u", "g", "r", "i", "z")
#: Folder of a dataset root holding the downloaded cubes and their state logs.
POOL = "pool"


class CutoutError(Exception):
    """One galaxy's stamp cannot be made; ``str(err)`` is the one-line reason."""


def default_out() -> Path:
    """Default dataset root for the Lin et al. FITS sets: ``<data_root>/lin2021``."""
    return data_root() / "lin2021"


# --------------------------------------------------------------------------- stamps
def stamp_wcs(ra: float, dec: float, size: int, pixscale: float) -> WCS:
    """North-up, east-left TAN WCS of a ``size x size`` stamp centred on ``(ra, dec)``
    (degrees) with ``pixscale`` arcsec/px; ``(ra, dec)`` is at FITS pixel
    ``((size + 1) / 2, (size + 1) / 2)``, the middle of the stamp."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [float(ra), float(dec)]
    w.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]
    w.wcs.cdelt = [-pixscale / 3600.0, pixscale / 3600.0]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.wcs.set()
    return w


_TIE = 1e-6


def sample_nearest(image: np.ndarray, src: WCS, dst: WCS, size: int) -> np.ndarray:
    """Nearest-pixel regridding of ``image`` (``[h, w]``, WCS ``src``) onto the
    ``size x size`` grid of ``dst``; returns ``[size, size]`` float64 in the image's units.

    Raises ``CutoutError`` ("... does not cover ...") if any output pixel falls outside
    ``image``.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ra, dec = dst.pixel_to_world_values(xx, yy)
    sx, sy = src.world_to_pixel_values(ra, dec)
    if not (np.all(np.isfinite(sx)) and np.all(np.isfinite(sy))):
        raise CutoutError("stamp does not map onto the image (bad WCS)")
    # Round half down, with a margin far above the WCS round-off (~1e-9 px): a grid at
    # exactly half a pixel's phase would otherwise round some pixels up and some down,
    # picking one source column twice and skipping its neighbour.
    ix = np.floor(np.asarray(sx) + (0.5 - _TIE)).astype(np.int64)
    iy = np.floor(np.asarray(sy) + (0.5 - _TIE)).astype(np.int64)
    h, w = image.shape
    outside = (ix < 0) | (ix >= w) | (iy < 0) | (iy >= h)
    if outside.any():
        raise CutoutError(f"the {h}x{w} px image does not cover the {size}x{size} stamp "
                          f"({int(outside.sum())} px outside)")
    return np.asarray(image, np.float64)[iy, ix]


def check_stamp(stamp: np.ndarray, band: str, size: int) -> None:
    """Raise ``CutoutError`` for a wrong shape, NaN / inf pixels or a blank band."""
    if stamp.shape != (size, size):
        raise CutoutError(f"wrong shape {stamp.shape} in band {band} "
                          f"(expected {size}x{size})")
    n_nan = int(np.isnan(stamp).sum())
    if n_nan:
        raise CutoutError(f"NaN pixels in band {band} ({n_nan} of {stamp.size})")
    n_inf = int(np.isinf(stamp).sum())
    if n_inf:
        raise CutoutError(f"inf pixels in band {band} ({n_inf} of {stamp.size})")
    if not np.any(stamp):
        raise CutoutError(f"blank band {band} (all pixels 0)")


def image_hdu(raw: bytes, what: str) -> tuple[np.ndarray, fits.Header, WCS]:
    """First 2-D image HDU of downloaded FITS bytes (a survey frame or cutout), with its
    celestial WCS; ``CutoutError`` naming ``what`` for anything else."""
    if not raw.startswith(b"SIMPLE"):
        text = " ".join(raw[:60].decode("latin-1").split())
        raise CutoutError(f"{what} is not FITS (starts {text!r})")
    try:
        with fits.open(io.BytesIO(raw), memmap=False) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    data = np.asarray(hdu.data)
                    hdr = hdu.header.copy()
                    break
            else:
                raise CutoutError(f"{what} holds no image")
    except (OSError, ValueError, TypeError) as err:
        raise CutoutError(f"{what} is corrupt FITS ({' '.join(str(err).split())})")
    if data.ndim != 2:
        raise CutoutError(f"wrong shape {data.shape} in {what} (expected a 2-D image)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(hdr, naxis=2)
        except Exception as err:  # astropy raises several kinds for a broken header
            raise CutoutError(f"{what} has an unreadable WCS ({err})") from None
    if not wcs.has_celestial:
        raise CutoutError(f"{what} has no celestial WCS")
    return data, hdr, wcs


# --------------------------------------------------------------------------- cubes
def make_cube(stamps: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Stack checked per-band stamps into ``[5, size, size]`` float32 (u, g, r, i, z)."""
    for b in BANDS:
        if b not in stamps:
            raise CutoutError(f"missing band {b}")
        check_stamp(stamps[b], b, size)
    cube = np.stack([stamps[b] for b in BANDS]).astype(np.float32)
    if not np.all(np.isfinite(cube)):
        raise CutoutError("pixels overflow float32")
    return cube


def cube_header(wcs: WCS, survey: surveys.Survey, gid: str, ra: float, dec: float,
                extra: dict | None = None) -> fits.Header:
    """FITS header of a cube: the stamp WCS plus BANDS/BAND0..4, units and provenance."""
    hdr = wcs.to_header()
    hdr["BANDS"] = ("".join(BANDS), "bands along axis 3 (numpy axis 0)")
    for k, b in enumerate(BANDS):
        hdr[f"BAND{k}"] = (b, f"band of plane {k}")
    hdr["BUNIT"] = ("nanomaggy", "1 nMgy = AB mag 22.5")
    hdr["SURVEY"] = survey.name
    hdr["PIXSCALE"] = (survey.pixel_scale, "arcsec/px")
    hdr["OBJID"] = gid
    hdr["RA"] = (float(ra), "requested centre [deg]")
    hdr["DEC"] = (float(dec), "requested centre [deg]")
    hdr["SAMPLING"] = ("nearest", "nearest source pixel, no interpolation")
    for k, v in (extra or {}).items():
        hdr[k] = v
    return hdr


def write_cube(path: Path, cube: np.ndarray, header: fits.Header) -> Path:
    """Write ``cube`` (``[5, H, W]`` float32) atomically as a one-HDU FITS file."""
    if cube.ndim != 3 or cube.shape[0] != len(BANDS) or cube.dtype != np.float32:
        raise ValueError(f"{path}: cube must be [5, H, W] float32, got "
                         f"{cube.shape} {cube.dtype}")
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(cube, header).writeto(tmp, overwrite=True)
    return path


def read_cube(path: Path | str, *, wcs: bool = True
              ) -> tuple[np.ndarray, WCS | None, fits.Header]:
    """Read a cube written by :func:`write_cube`: ``([5, H, W] float32, WCS, header)``.

    ``wcs=False`` skips building the WCS (``None`` in its place; 5 ms of 6 ms per file)
    for readers that need the pixels only. Raises ``DataError`` naming ``path`` for a
    missing or unreadable file or anything but a ``[5, H, W]`` cube.
    """
    try:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[0].data
            data = None if data is None else np.asarray(data, np.float32)
            hdr = hdul[0].header.copy()
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise DataError(f"{path}: not a readable FITS cube ({' '.join(str(err).split())})"
                        ) from None
    if data is None or data.ndim != 3 or data.shape[0] != len(BANDS):
        shape = None if data is None else data.shape
        raise DataError(f"{path}: expected a [5, H, W] ugriz cube, got shape {shape}")
    if not wcs:
        return data, None, hdr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return data, WCS(hdr, naxis=2), hdr
