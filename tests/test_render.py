"""Tests for data.render: the viewer's sdss_rgb stretch, its inverse, JPEG I/O."""
import math
import os

import numpy as np
import pytest

from common.io import atomic_write
from data import render
from data.surveys import DECALS, HSC, SDSS


def _by_hand(fluxes, scales, m, q=20.0):
    """One pixel of sdss_rgb in plain math: fluxes/scales in (blue, green, red) order."""
    v = [f * s + m for f, s in zip(fluxes, scales)]
    inten = sum(max(0.0, x) for x in v) / len(v)
    f_i = math.asinh(q * inten) / math.sqrt(q)
    planes = [min(1.0, max(0.0, x * f_i / inten)) if inten > 0 else 0.0 for x in v]
    return [round(p * 255) for p in planes[::-1]]  # -> R, G, B


@pytest.mark.parametrize("survey,fluxes", [
    (SDSS, (0.05, 0.10, 0.20)),      # a faint red pixel
    (DECALS, (0.01, -0.002, 0.03)),  # one slightly negative band
    (HSC, (0.004, 0.006, 0.012)),    # faint HSC outskirts
    (SDSS, (-0.02, -0.03, 0.01)),    # a noise dip: two planes go to 0
    (SDSS, (-0.02, -0.03, -0.05)),   # all v < 0: I = 0, black
])
def test_hand_computed_pixels(survey, fluxes):
    img = {b: np.full((2, 3), f) for b, f in zip(survey.rgb_bands, fluxes)}
    out = render.render(img, survey)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    scales = [survey.rgb_scales[b] for b in survey.rgb_bands]
    assert out[1, 2].tolist() == _by_hand(fluxes, scales, survey.rgb_m)


def test_hand_computed_value_sdss():
    # Worked out on paper: sdss g,r,i = 0.1 nMgy each, scales 2.5, 1.5, 1.0, m = 0.02.
    # v = 0.27, 0.17, 0.12; I = 0.18667; fI = asinh(3.7333)/sqrt(20) = 2.02928/4.47214
    # = 0.45376; planes = v * 2.43084 = 0.65633, 0.41324, 0.29170 -> x255 = 167.4, 105.4, 74.4
    img = {b: np.full((1, 1), 0.1) for b in SDSS.rgb_bands}
    assert render.render(img, SDSS)[0, 0].tolist() == [74, 105, 167]


def test_saturates_to_white():
    img = {b: np.full((1, 1), 1e3) for b in HSC.rgb_bands}
    assert render.render(img, HSC)[0, 0].tolist() == [255, 255, 255]


def test_blank_levels():
    # asinh(20 * 0.02) / sqrt(20) * 255 = 22.24;  asinh(20 * 0.03) / sqrt(20) * 255 = 32.43
    assert render.blank_level(SDSS) == 22
    assert render.blank_level(DECALS) == 32
    assert render.blank_level(HSC) == 32
    zero = {b: np.zeros((4, 4)) for b in SDSS.rgb_bands}
    assert np.all(render.render(zero, SDSS) == 22)


def test_inverse_round_trip_unclipped():
    rng = np.random.default_rng(1)
    for survey in (SDSS, DECALS, HSC):
        scales = np.array([survey.rgb_scales[b] for b in survey.rgb_bands])
        # fluxes with v > 0 in every band and no plane near 1
        x = rng.uniform(0.0, 0.08, (32, 32, 3)) / scales
        rgb = render.render_planes(x, survey)
        assert rgb.max() < 255
        back = render.inverse_render(rgb, survey)
        assert back.shape == (32, 32, 3) and back.dtype == np.float32
        # error budget: half a grey level, i.e. <~ 1 % of v, divided by the scale
        err = np.abs((back - x) * scales)
        assert err.max() < 2e-3, (survey.name, err.max())


def test_inverse_documented_failures():
    # v <= 0: the plane is 0, the inverse gives -m/scale (information lost)
    x = np.array([[[-1.0, 0.05, 0.05]]])
    back = render.inverse_render(render.render_planes(x, DECALS), DECALS)
    assert back[0, 0, 0] == pytest.approx(-DECALS.rgb_m / DECALS.rgb_scales["g"], abs=1e-6)
    # clipped: flux underestimated
    x = np.full((1, 1, 3), 50.0)
    back = render.inverse_render(render.render_planes(x, DECALS), DECALS)
    assert np.all(back < 50.0)


def test_missing_band_is_an_error():
    with pytest.raises(ValueError, match="needs band"):
        render.render({"g": np.zeros((2, 2))}, SDSS)


def test_jpeg_atomic_write(tmp_path):
    yy, xx = np.mgrid[:16, :16]
    rgb = np.stack([100 + 4 * xx, 60 + 3 * yy, 80 + 0 * xx], -1).astype(np.uint8)
    path = tmp_path / "sub" / "x.jpg"
    render.write_jpeg(path, rgb)
    back = render.read_jpeg(path)
    assert back.shape == (16, 16, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).max() <= 4  # smooth image: quality-90 loss is small
    assert os.listdir(path.parent) == ["x.jpg"]  # no temp file left behind


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "y.jpg"

    def boom(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert os.listdir(tmp_path) == []


def test_read_bad_jpeg_names_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="bad.jpg"):
        render.read_jpeg(bad)
