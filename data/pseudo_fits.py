"""The multi-extension FITS format of a pseudo-HSC image (issue 16): flux units and WCS.

One file per galaxy. :func:`write_pseudo_hsc` is the one writer, :func:`read_pseudo_hsc`
the one reader (``pix2wgan.predict`` / ``cascade.predict`` with ``--format fits``).

* Primary HDU: float32 ``[3, H, W]`` (g, r, i: HSC ``rgb_bands``, blue to red) in
  nanomaggies per 0.168" pixel (``BUNIT = 'nanomaggy'``, 1 nMgy = AB mag 22.5);
  ``BANDS = 'gri'``, ``BAND0..2``, ``PIXSCALE``, ``SURVEY = 'pseudo-hsc'``, the stamp's
  celestial TAN WCS when given (``WCSAXES = 2``, as :mod:`data.cube`), the caller's
  cards (model hash, software version, :func:`stretch_cards`), and HISTORY lines that
  say where the flux comes from and where it cannot be trusted.
* ``SIGMA``: float32 ``[3, H, W]``, per-pixel standard deviation in the same units
  (only when given).
* ``HALLUC``: uint8 ``[H, W]``, 1 = structure the input does not support
  (``pix2wgan.hallucination.flag_unsupported``; only when given).

Every extension carries the same WCS. Where the flux comes from: the network makes an
8-bit viewer-stretched RGB image; :func:`data.render.inverse_render` undoes the viewer's
asinh stretch. That inverse is exact up to the 1/255 quantisation except where a plane
was clipped at 255 (saturated cores: flux underestimated) or where ``v = flux * scale + m
<= 0`` (noise dips below ``-m / scale``, written as ``FLOOR_<band>``: the pixel reads
exactly that floor, the information is gone).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from common.errors import DataError
from common.io import atomic_path
from data.surveys import HSC, LUO_PIXSCALE, RGB_Q, Survey

#: Value of the ``SURVEY`` card; the reader refuses a file without it.
SURVEY_CARD = "pseudo-hsc"
SIGMA, HALLUC = "SIGMA", "HALLUC"
BANDS = HSC.rgb_bands

HISTORY = (
    "Flux = data.render.inverse_render of the network's 8-bit viewer RGB: the",
    "Legacy Survey viewer asinh stretch (sdss_rgb, Q=STR_Q, m=STR_M, scales",
    "STRSC_*) inverted. Not recoverable: planes clipped at 255 (saturated cores,",
    "flux underestimated) and noise below -m/scale (pixel reads FLOOR_<band>).",
    "Quantisation: 1/255 of a stretched plane. Pseudo-HSC is a model prediction,",
    "not an observation; SIGMA (if present) is the model spread, HALLUC = 1 flags",
    "structure the input does not support.",
)


def stretch_cards(survey: Survey = HSC) -> dict[str, tuple]:
    """Header cards of the viewer stretch the flux was inverted through (data.render):
    ``STR_Q`` (asinh Q), ``STR_M`` (softening m), ``STRSC_<band>`` (scale per band) and
    ``FLOOR_<band>`` = ``-m / scale`` nMgy/px, the lowest flux the stretch keeps.
    Values come from :mod:`data.surveys` (one source of truth)."""
    cards = {"STR_Q": (RGB_Q, "viewer asinh stretch Q"),
             "STR_M": (survey.rgb_m, "viewer stretch softening m")}
    for b in survey.rgb_bands:
        s = survey.rgb_scales[b]
        cards[f"STRSC_{b.upper()}"] = (s, f"viewer stretch scale, {b} band")
        cards[f"FLOOR_{b.upper()}"] = (-survey.rgb_m / s,
                                       f"{b}: lowest recoverable nMgy/px")
    return cards


def _cube(a, name: str, path, shape=None) -> np.ndarray:
    """``[H, W, 3]`` -> float32 ``[3, H, W]``; ValueError naming ``path`` otherwise."""
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != len(BANDS) or (shape and a.shape != shape):
        want = shape or f"[H, W, {len(BANDS)}]"
        raise ValueError(f"{path}: {name} must be {want} (g, r, i), got {a.shape}")
    return np.ascontiguousarray(np.moveaxis(a.astype(np.float32), -1, 0))


def _card(hdr: fits.Header, key: str, value) -> None:
    """``value`` or ``(value, comment)``; long keys become HIERARCH cards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # HIERARCH notice
        hdr[key] = value


def write_pseudo_hsc(path: Path | str, flux: np.ndarray, sigma: np.ndarray | None = None,
                     halluc: np.ndarray | None = None, *, wcs: WCS | None = None,
                     header_extra: Mapping | None = None) -> Path:
    """Write one pseudo-HSC image as multi-extension FITS, atomically.

    Args:
        path: output file.
        flux: ``[H, W, 3]`` float nMgy per 0.168" px, HSC ``rgb_bands`` order (g, r, i).
        sigma: same shape and units (per-pixel standard deviation), or None.
        halluc: ``[H, W]`` bool/int (nonzero = flagged), or None.
        wcs: celestial WCS of the stamp (e.g. ``data.cube.stamp_wcs``), or None.
        header_extra: extra primary cards, ``key -> value`` or ``(value, comment)``
            (model hash, version, :func:`stretch_cards`).

    Returns:
        ``path``.
    """
    data = _cube(flux, "flux", path)
    h, w = data.shape[1:]
    wcs_hdr = fits.Header() if wcs is None else _wcs_header(wcs, path)
    hdr = wcs_hdr.copy()
    hdr["BANDS"] = ("".join(BANDS), "bands along axis 3 (numpy axis 0)")
    for k, b in enumerate(BANDS):
        hdr[f"BAND{k}"] = (b, f"band of plane {k}")
    hdr["BUNIT"] = ("nanomaggy", "per pixel; 1 nMgy = AB mag 22.5")
    hdr["PIXSCALE"] = (LUO_PIXSCALE, "arcsec/px")
    hdr["SURVEY"] = (SURVEY_CARD, "model prediction of HSC, not an observation")
    for k, v in (header_extra or {}).items():
        _card(hdr, k, v)
    for line in HISTORY:
        hdr.add_history(line)
    hdus = [fits.PrimaryHDU(data, hdr)]
    if sigma is not None:
        ext = wcs_hdr.copy()
        ext["BUNIT"] = ("nanomaggy", "per-pixel standard deviation")
        hdus.append(fits.ImageHDU(_cube(sigma, "sigma", path, (h, w, 3)), ext, name=SIGMA))
    if halluc is not None:
        m = np.asarray(halluc)
        if m.shape != (h, w):
            raise ValueError(f"{path}: halluc must be [{h}, {w}], got {m.shape}")
        ext = wcs_hdr.copy()
        ext["COMMENT"] = "1 = structure the input does not support (hallucination flag)"
        hdus.append(fits.ImageHDU((m != 0).astype(np.uint8), ext, name=HALLUC))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return Path(path)


def _wcs_header(wcs: WCS, path) -> fits.Header:
    if not isinstance(wcs, WCS) or not wcs.has_celestial:
        raise ValueError(f"{path}: wcs must be a celestial astropy WCS, got {wcs!r}")
    return wcs.celestial.to_header()


def read_pseudo_hsc(path: Path | str):
    """Read a file written by :func:`write_pseudo_hsc`.

    Returns:
        ``(flux, sigma, halluc, wcs, header)``: flux ``[H, W, 3]`` float32 nMgy per
        0.168" px (g, r, i); sigma the same or None; halluc ``[H, W]`` bool or None; the
        celestial WCS or None; the primary header.

    Raises ``DataError`` naming ``path`` for a missing or unreadable file or anything but
    a pseudo-HSC file.
    """
    try:
        with fits.open(path, memmap=False) as hdul:
            hdr = hdul[0].header.copy()
            data = hdul[0].data
            data = None if data is None else np.asarray(data, np.float32)
            ext = {h.name: np.asarray(h.data) for h in hdul[1:] if h.data is not None}
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise DataError(f"{path}: not a readable FITS file ({' '.join(str(err).split())})"
                        ) from None
    if hdr.get("SURVEY") != SURVEY_CARD:
        raise DataError(f"{path}: not a pseudo-HSC file (SURVEY = {hdr.get('SURVEY')!r}, "
                        f"expected {SURVEY_CARD!r})")
    if data is None or data.ndim != 3 or data.shape[0] != len(BANDS):
        shape = None if data is None else data.shape
        raise DataError(f"{path}: expected a [3, H, W] gri cube, got shape {shape}")
    flux = np.moveaxis(data, 0, -1)
    sigma = ext.get(SIGMA)
    if sigma is not None:
        if sigma.shape != data.shape:
            raise DataError(f"{path}: {SIGMA} has shape {sigma.shape}, flux {data.shape}")
        sigma = np.moveaxis(sigma.astype(np.float32), 0, -1)
    halluc = ext.get(HALLUC)
    if halluc is not None:
        if halluc.shape != data.shape[1:]:
            raise DataError(f"{path}: {HALLUC} has shape {halluc.shape}, expected "
                            f"{data.shape[1:]}")
        halluc = halluc != 0
    wcs = None
    if "CTYPE1" in hdr:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdr, naxis=2)
    return flux, sigma, halluc, wcs, hdr
