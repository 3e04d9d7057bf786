"""common.metrics against scikit-image (an independent implementation) and by hand."""
import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from common import metrics

#: tf.image.ssim works in float32, scikit-image in float64: the gap is ~1e-6 here (up to
#: ~1e-5 on near-flat images). scikit-image's default 7x7 uniform window differs by 3e-4
#: to 4e-3 on these same pairs, so this tolerance tells the two definitions apart.
SSIM_TOL = 2e-5


def _sk_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255,
                                 channel_axis=-1)


def _pairs():
    """(pred, target) uint8 batches [N, H, W, 3]: noise, and smooth blobs with noise."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (3, 40, 48, 3)).astype(np.uint8)
    noisy = np.clip(noise + rng.normal(0, 25, noise.shape), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:64, :64]
    blob = 30 + 200 * np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / (2 * 8.0**2))
    target = np.stack([blob * f for f in (1.0, 0.8, 0.6)], -1)[None].repeat(2, 0)
    pred = target + rng.normal(0, 4, target.shape)
    pred[1] = np.roll(pred[1], 3, axis=1)  # a misaligned copy: structure differs
    return [(noisy, noise),
            (np.clip(pred, 0, 255).astype(np.uint8), np.clip(target, 0, 255).astype(np.uint8))]


@pytest.mark.parametrize("case", [0, 1])
def test_against_skimage(case):
    pred, target = _pairs()[case]
    r, p, s = (metrics.rmse(pred, target), metrics.psnr(pred, target),
               metrics.ssim(pred, target))
    assert r.shape == p.shape == s.shape == (len(pred),)
    assert r.dtype == p.dtype == s.dtype == np.float64
    for i in range(len(pred)):
        a, b = pred[i], target[i]
        np.testing.assert_allclose(r[i] ** 2, mean_squared_error(b, a), rtol=1e-12)
        np.testing.assert_allclose(p[i], peak_signal_noise_ratio(b, a, data_range=255),
                                   rtol=1e-12)
        assert abs(s[i] - _sk_ssim(a, b)) < SSIM_TOL


def test_float_and_uint8_inputs_agree_and_single_image():
    pred, target = _pairs()[1]
    for f in (metrics.rmse, metrics.psnr, metrics.ssim):
        np.testing.assert_allclose(f(pred.astype(np.float32), target), f(pred, target),
                                   rtol=1e-6)
        assert f(pred[0], target[0]).shape == (1,)


def test_identical_images():
    img = _pairs()[1][1]
    assert np.all(metrics.rmse(img, img) == 0.0)
    assert np.all(metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-6))
    assert np.all(np.isposinf(metrics.psnr(img, img)))  # documented: MSE = 0 -> inf


def test_hand_computed_rmse_psnr():
    # 16x16x3 of 100 vs. one half 110, other half 90: every squared error is 100.
    target = np.full((1, 16, 16, 3), 100, np.uint8)
    pred = target.copy()
    pred[:, :8] = 110
    pred[:, 8:] = 90
    assert metrics.rmse(pred, target)[0] == pytest.approx(10.0, rel=1e-12)
    # eq. 10: 10 log10(255^2 / 100) = 20 log10(25.5)
    assert metrics.psnr(pred, target)[0] == pytest.approx(20 * np.log10(25.5), rel=1e-12)
    # One error of 16 in 16*16*3 values: MSE = 256 / 768 = 1/3.
    pred = target.copy()
    pred[0, 3, 5, 1] = 116
    assert metrics.rmse(pred, target)[0] == pytest.approx(np.sqrt(1 / 3), rel=1e-12)


def test_per_image_mean_differs_from_pooled_psnr():
    """Table 1 is read as the mean of per-image PSNRs; the PSNR of the pooled MSE is
    smaller (Jensen) whenever the images' MSEs differ."""
    target = np.full((2, 16, 16, 3), 100, np.uint8)
    pred = target.copy()
    pred[0] += 1   # MSE 1   -> PSNR 48.13 dB
    pred[1] += 20  # MSE 400 -> PSNR 22.11 dB
    ms = metrics.accumulate([(pred, target)])
    per_image = 10 * np.log10(255.0**2 / np.array([1.0, 400.0]))
    assert ms.result()["psnr"]["mean"] == pytest.approx(per_image.mean(), rel=1e-12)
    assert ms.pooled_psnr() == pytest.approx(10 * np.log10(255.0**2 / 200.5), rel=1e-12)
    assert ms.result()["psnr"]["mean"] > ms.pooled_psnr() + 10


def test_streaming_equals_one_shot():
    pred, target = _pairs()[0]
    ms = metrics.MetricSet()
    for i in range(len(pred)):  # batches of 1, then compare with the whole batch
        ms.update(pred[i:i + 1], target[i:i + 1])
    res = ms.result()
    assert ms.n == len(pred) and res["ssim"]["n"] == len(pred)
    for name, f in (("rmse", metrics.rmse), ("psnr", metrics.psnr), ("ssim", metrics.ssim)):
        v = f(pred, target)
        assert res[name]["mean"] == pytest.approx(v.mean(), rel=1e-6)
        assert res[name]["std"] == pytest.approx(v.std(ddof=1), rel=1e-5)
        np.testing.assert_allclose(ms.values()[name], v, rtol=1e-6)


def test_bad_inputs_raise():
    a = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.rmse(a, a[:1])
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        metrics.psnr(a.astype(np.float32) - 1.0, a)  # e.g. [-1, 1] model output
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(a[:, :8, :8], a[:, :8, :8])
    with pytest.raises(ValueError, match="before any update"):
        metrics.MetricSet().result()


def test_sky_colour_recovers_a_known_offset_and_colour_shift():
    from common.metrics import SkyColour
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    galaxy = 150.0 * np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 20.0)
    target = np.clip(30.0 + galaxy[..., None] + rng.normal(0, 2, (32, 32, 3)), 0, 255)
    # pred: sky (faint half) raised by (R, G, B) = (3, 2, 1); the core's blue plane
    # (g) raised by 6 more, so g - r goes up by 6 and r - i is unchanged.
    pred = target + np.array([3.0, 2.0, 1.0])
    pred[..., 2] += 6.0 * (galaxy > 60)
    acc = SkyColour()
    acc.update(pred[None], target[None])
    acc.update(target[None], target[None])  # a perfect image halves every mean
    got = acc.result()
    np.testing.assert_allclose(got["sky"], [1.5, 1.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(got["colour"], [(1 + 6 - 2) / 2, (2 - 3) / 2], atol=1e-9)
    assert got["sky_abs"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        SkyColour().result()
