"""Lin et al. (2021) evaluation (noise_gan.evaluate) and the Fig. 3-6 scripts.

Unit tests use synthetic arrays with answers computed by hand; the end-to-end tests run
each figure script on the ``tiny`` preset (a few simulated galaxies in tmp_path, two
iterations per step, width 2) and check the PNG, PDF and CSV it writes.
"""
from __future__ import annotations

import numpy as np
import pytest

from noise_gan import evaluate as ev


# --- flux differences (Fig. 5) -------------------------------------------------------

def _cube(n, size, band_values):
    """[n, size, size, 5] with constant planes ``band_values`` ({band index: value})."""
    x = np.zeros((n, size, size, 5), np.float32)
    for b, v in band_values.items():
        x[..., b] = v
    return x


def test_flux_difference_and_total_flux_hand_computed():
    orig = _cube(2, 4, {2: 1.0})
    orig[1, ..., 2] = -2.0                      # negative flux counts by its absolute value
    recon = orig.copy()
    recon[0, 0, 0, 2] += 3.0                    # one pixel off by +3
    recon[1, :2, :, 2] -= 0.5                   # 8 pixels off by -0.5
    recon[..., 4] = 7.0                         # z band: must not leak into r
    np.testing.assert_allclose(ev.flux_difference(recon, orig, "r"), [3.0, 4.0])
    np.testing.assert_allclose(ev.total_flux(orig, "r"), [16.0, 32.0])
    np.testing.assert_allclose(ev.flux_difference(recon, orig, "z"), [16 * 7.0] * 2)
    np.testing.assert_allclose(ev.flux_difference(recon, orig, 2), [3.0, 4.0])


def test_flux_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="band"):
        ev.flux_difference(_cube(1, 4, {}), _cube(1, 4, {}), "y")
    with pytest.raises(ValueError, match="shape"):
        ev.flux_difference(_cube(1, 4, {}), _cube(1, 6, {}), "r")


def test_noise_sigma_is_median_of_summed_absolute_noise():
    # Three samples with summed |noise| of 16*1, 16*2, 16*10 in r: median = 32.
    rng = np.random.default_rng(0)
    noise = np.zeros((3, 4, 4, 5), np.float32)
    signs = rng.choice([-1.0, 1.0], size=(3, 4, 4))
    for i, a in enumerate((1.0, 2.0, 10.0)):
        noise[i, ..., 2] = a * signs[i]
    noise[..., 0] = 100.0                       # u band ignored
    assert ev.noise_sigma(noise, "r") == pytest.approx(32.0)
    assert ev.fraction_below([10.0, 40.0, 50.0, 20.0], np.sqrt(2) * 32.0) == 0.75


def test_noise_sigma_of_gaussian_noise_matches_expectation():
    # E|N(0, s²)| = s·sqrt(2/π): the summed value over P pixels is P·s·sqrt(2/π).
    rng = np.random.default_rng(1)
    s, size = 0.3, 32
    noise = rng.normal(0.0, s, size=(200, size, size, 5))
    expected = size * size * s * np.sqrt(2 / np.pi)
    assert ev.noise_sigma(noise, "r") == pytest.approx(expected, rel=0.01)
    # Two independent fields of that amplitude differ by about sqrt(2)·sigma.
    other = rng.normal(0.0, s, size=noise.shape)
    diff = np.median(ev.flux_difference(noise, other, "r"))
    assert diff == pytest.approx(np.sqrt(2) * expected, rel=0.01)


# --- Fourier maps (Fig. 6) -----------------------------------------------------------

def test_highpass_of_constant_is_zero_and_valid_shape():
    x = _cube(2, 16, {2: 3.5})
    hp = ev.highpass_band(x, "r")
    assert hp.shape == (2, 12, 12)
    np.testing.assert_allclose(hp, 0.0, atol=1e-5)


def test_highpass_matches_hand_convolution():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 9, 9, 5)).astype(np.float32)
    k = np.array([[-1, 3, -4, 3, -1], [3, -8, 10, -8, 3], [-4, 10, -12, 10, -4],
                  [3, -8, 10, -8, 3], [-1, 3, -4, 3, -1]], np.float64)
    want = np.array([[np.sum(k * x[0, i:i + 5, j:j + 5, 2]) for j in range(5)]
                     for i in range(5)])
    np.testing.assert_allclose(ev.highpass_band(x, "r")[0], want, rtol=1e-4, atol=1e-4)


def test_checkerboard_fourier_peak_at_centre():
    # (-1)^(i+j) is the highest frequency; without fftshift it sits at (N/2, N/2).
    size = 20                                   # 16 x 16 after the 5 x 5 VALID filter
    ij = np.add.outer(np.arange(size), np.arange(size))
    x = np.zeros((3, size, size, 5), np.float32)
    x[..., 2] = (-1.0) ** ij
    m = ev.stacked_fourier(x, "r")
    assert m.shape == (16, 16)
    assert np.unravel_index(np.argmax(m), m.shape) == (8, 8)
    # All power in that single mode: the kernel's response at Nyquist is sum |k| = 128.
    assert m[8, 8] == pytest.approx(128.0 * 16 * 16, rel=1e-4)
    m2 = m.copy()
    m2[8, 8] = 0
    assert m2.max() < 1e-3 * m[8, 8]
    assert ev.centre_peak_ratio(m + 1.0) > 1e4


def test_stacked_fourier_is_mean_of_maps():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 12, 12, 5)).astype(np.float32)
    maps = ev.fourier_amplitude_maps(x, "r")
    np.testing.assert_allclose(ev.stacked_fourier(x, "r", batch=2), maps.mean(0),
                               rtol=1e-10)
    # one hand-checked map: |FFT| of the filtered image
    hp = ev.highpass_band(x[:1], "r")[0]
    np.testing.assert_allclose(maps[0], np.abs(np.fft.fft2(hp)), rtol=1e-10)


def test_fourier_similarity_scores():
    rng = np.random.default_rng(4)
    a = rng.uniform(1, 2, size=(8, 8))
    assert ev.fourier_distance(a, a) == 0.0
    assert ev.fourier_distance(a, 10 * a) == pytest.approx(1.0)   # one decade everywhere
    assert ev.fourier_log_correlation(a, 10 * a) == pytest.approx(1.0)
    b = rng.uniform(1, 2, size=(8, 8))
    assert ev.fourier_distance(a, a * 1.1) < ev.fourier_distance(a, b * 3)
    with pytest.raises(ValueError, match="shape"):
        ev.fourier_distance(a, a[:4])


# --- RGB (Fig. 3) --------------------------------------------------------------------

def test_lupton_rgb_shapes_colours_and_pixel_scale():
    cube = np.zeros((8, 8, 5), np.float32)
    cube[..., 3] = 2.0                           # i only -> red only
    rgb = ev.lupton_rgb(cube)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].min() > 0 and rgb[..., 1:].max() == 0
    # the same surface brightness on 0.187" pixels (less flux per pixel) looks the same
    small = cube * (0.187 / 0.396) ** 2
    np.testing.assert_allclose(ev.lupton_rgb(small, pixel_scale=0.187).astype(int),
                               rgb.astype(int), atol=1)
    with pytest.raises(ValueError):
        ev.lupton_rgb(cube[None])
