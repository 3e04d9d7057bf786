"""Nanomaggies -> viewer RGB JPEG, and back (approximately).

The Legacy Survey viewer renders every layer with ``sdss_rgb`` (legacysurvey/imagine,
``map/views.py``; summarised in ``shared/notes/legacy_survey.md``), with Q fixed at 20:

* per band ``v = img * scale + m``;
* ``I = mean over the rendered bands of max(0, v)``;
* ``fI = asinh(Q * I) / sqrt(Q)``;
* each plane ``= v * fI / I`` (``I == 0`` guarded), clipped to [0, 1], then x255.

Luo et al. (§2.4) downloaded exactly these JPEGs (SDSS and HSC in g, r, i; DECaLS in
g, r, z), so the simulator renders its nanomaggy images through this module to make files
that look like the viewer's.

Plane order: ``Survey.rgb_bands`` lists bands as (blue, green, red); JPEG arrays are
(R, G, B). ``render`` takes care of the flip; ``inverse_render`` returns the
``rgb_bands`` order (blue, green, red), the order of the simulator's truth arrays.

Units: the viewer resamples a cutout to another pixel scale by interpolating pixel
values (Lanczos-3), without rescaling by pixel area, so the stretch always sees
"nanomaggies per native pixel". ``inverse_render`` gives back those units.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from common.io import atomic_write
from data.surveys import JPEG_QUALITY, RGB_Q, Survey


def asinh_stretch(planes: np.ndarray, scales, m: float, q: float = RGB_Q) -> np.ndarray:
    """The viewer's ``sdss_rgb`` on stacked planes, before quantisation.

    Args:
        planes: ``[H, W, C]`` float, nanomaggies per native pixel (any C >= 1; every
            plane takes part in the mean intensity ``I``).
        scales: length-C sequence, the per-plane stretch scale.
        m: additive softening (sets the grey level of zero flux).
        q: asinh Q (the viewer fixes 20).

    Returns:
        ``[H, W, C]`` float32 in [0, 1], same plane order as ``planes``.
    """
    x = np.asarray(planes, np.float64)
    v = x * np.asarray(scales, np.float64) + m
    inten = np.maximum(v, 0.0).mean(axis=-1, keepdims=True)
    f = np.arcsinh(q * inten) / np.sqrt(q)
    inten = np.where(inten == 0.0, 1e-6, inten)  # the viewer's guard against I = 0
    return np.clip(v * f / inten, 0.0, 1.0).astype(np.float32)


def _scales(survey: Survey) -> list[float]:
    return [survey.rgb_scales[b] for b in survey.rgb_bands]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """``[..] float in [0, 1]`` -> ``uint8`` in [0, 255] (x255, rounded)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_planes(planes: np.ndarray, survey: Survey) -> np.ndarray:
    """Render stacked band images with the survey's viewer stretch.

    Args:
        planes: ``[H, W, 3]`` float, nanomaggies per native pixel, in
            ``survey.rgb_bands`` order (blue, green, red).
        survey: gives ``rgb_scales`` and ``rgb_m``.

    Returns:
        ``[H, W, 3]`` uint8 in [0, 255], (R, G, B) order as stored in the JPEG.
    """
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.shape[-1] != len(survey.rgb_bands):
        raise ValueError(f"planes of shape {planes.shape} do not match the "
                         f"{len(survey.rgb_bands)} rendered bands of {survey.name}")
    rgb = asinh_stretch(planes, _scales(survey), survey.rgb_m)
    return to_uint8(rgb[..., ::-1])


def render(images: Mapping[str, np.ndarray], survey: Survey) -> np.ndarray:
    """Render one cutout like the viewer's JPEG.

    Args:
        images: band -> ``[H, W]`` float image in nanomaggies per native pixel; must hold
            every band of ``survey.rgb_bands`` (extra bands are ignored).
        survey: the survey whose ``rgb_bands``/``rgb_scales``/``rgb_m`` apply.

    Returns:
        ``[H, W, 3]`` uint8 in [0, 255], (R, G, B).
    """
    missing = [b for b in survey.rgb_bands if b not in images]
    if missing:
        raise ValueError(f"{survey.name} rendering needs band(s) {', '.join(missing)}")
    planes = np.stack([np.asarray(images[b], np.float64) for b in survey.rgb_bands], -1)
    return render_planes(planes, survey)


def inverse_render(rgb: np.ndarray, survey: Survey, q: float = RGB_Q) -> np.ndarray:
    """Approximately undo ``render``: JPEG pixels -> nanomaggies.

    Since ``I`` is the mean of ``max(0, v)``, the mean of the three (unclipped) planes is
    ``fI`` itself, so ``I = sinh(sqrt(Q) * mean(p)) / Q`` and ``v = p * I / fI``.
    This is exact (up to the 1/255 quantisation and JPEG loss) where no plane hit 1 and
    every ``v = img * scale + m > 0``. It fails where:

    * a plane clipped at 1 (saturated cores, bright stars): flux is underestimated;
    * ``v <= 0`` (noise dips below ``-m / scale``): the plane is 0 and the pixel comes
      back as exactly ``-m / scale`` (the information is gone);
    * the pixel is pure blank (all planes at ``blank_level``): returns ~0 within
      quantisation.

    Args:
        rgb: ``[H, W, 3]`` uint8 (R, G, B), or float already in [0, 255].
        survey: the survey the image was rendered as.

    Returns:
        ``[H, W, 3]`` float32 nanomaggies per native pixel, in ``survey.rgb_bands``
        order (blue, green, red).
    """
    p = np.asarray(rgb, np.float64)[..., ::-1] / 255.0  # -> (blue, green, red)
    f = p.mean(axis=-1, keepdims=True)
    inten = np.sinh(np.sqrt(q) * f) / q
    ratio = np.divide(inten, f, out=np.zeros_like(f), where=f > 0)
    v = p * ratio
    return ((v - survey.rgb_m) / np.asarray(_scales(survey))).astype(np.float32)


def blank_level(survey: Survey, q: float = RGB_Q) -> int:
    """Grey value (0..255) the viewer gives a zero-flux pixel: ``round(255 asinh(Qm)/sqrt(Q))``.

    About 22 for ``sdss`` (m = 0.02) and 32 for the ls/decals/hsc layers (m = 0.03),
    as the notes report for blank cutouts outside a footprint.
    """
    zero = np.zeros((1, 1, len(survey.rgb_bands)))
    return int(to_uint8(asinh_stretch(zero, _scales(survey), survey.rgb_m, q))[0, 0, 0])


#: Blank-cutout rule, in grey levels of [0, 255] (see :func:`is_blank`).
BLANK_STD = 1.0
BLANK_MEAN_TOL = 3.0


def is_blank(arr: np.ndarray, blank: int) -> bool:
    """Whether an ``[H, W, 3]`` cutout is the viewer's uniform out-of-footprint grey:
    pixel standard deviation below ``BLANK_STD`` and mean within ``BLANK_MEAN_TOL`` of
    the survey's ``blank`` level (:func:`blank_level`). Real sky has a far larger spread."""
    a = np.asarray(arr, np.float64)
    return bool(a.std() < BLANK_STD and abs(a.mean() - blank) < BLANK_MEAN_TOL)


def blank_fraction(arr: np.ndarray, blank: int) -> float:
    """Fraction of pixels whose three values all equal ``blank`` exactly: the no-data
    (zero-flux) part of a partly covered cutout. Sky noise almost never hits it."""
    a = np.asarray(arr)
    return float(np.all(a == blank, axis=-1).mean())


def write_jpeg(path: Path | str, rgb: np.ndarray, quality: int = JPEG_QUALITY) -> Path:
    """Write ``[H, W, 3]`` uint8 (R, G, B) as a JPEG (viewer quality 90), atomically."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{path}: expected [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    img = Image.fromarray(rgb, "RGB")
    return atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=quality))


def read_jpeg(path: Path | str) -> np.ndarray:
    """Read a cutout JPEG -> ``[H, W, 3]`` uint8 (R, G, B)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), np.uint8)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JPEG ({e})") from None
