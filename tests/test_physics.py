"""experiments/photometry.py measurements against known answers on simulated galaxies.

Tolerances (stated, and failing if the code is wrong):
* total r flux of compact disk galaxies (r50 < 2.5", bulge fraction < 0.35, no
  companion or star) measured on the noise-free truth: within 5 % of the manifest's
  bulge + disk + knots flux (2 r_P apertures hold > 97 % of such profiles);
* the same through a viewer JPEG of DECaLS and SDSS (stretch inverted, native-pixel
  units converted): within 5 % of the unrendered image's aperture flux, within 7 % of
  the manifest total (their broader PSF and the clipped core cost 2-5 %); colour
  g - r within 0.05 mag of the manifest's;
* half-light radius within 10 % of GalSim's ``calculateHLR`` of the same PSF-convolved
  profile; position angle within 5 deg where 1 - q > 0.3.
"""
import math

import galsim
import numpy as np
import pytest

from data import render
from data.scene import Scene, draw_params, moffat_psf as _psf
from data.sim_luo import SimConfig, observe, truth_image
from data.surveys import get_survey
from experiments import photometry as ph

HSC_SIGMA_R = 7.6e-4  # ~ data.scene.pixel_noise(HSC, "r"), nMgy per pixel


@pytest.fixture(scope="module")
def compact():
    """Four simulated galaxies (parameter rows) that fit well inside the stamp."""
    cfg = SimConfig(out="/nonexistent", progress=False)
    out = []
    for i in range(400):
        p = draw_params(0, i, cfg)
        if (p["r50"] < 2.5 and p["bulge_frac"] < 0.35 and not p["companion"]
                and not p["n_stars"]):
            out.append(p)
        if len(out) == 4:
            break
    assert len(out) == 4
    return out


def total(p, band):
    return sum(p[f"flux_{c}_{band}"] for c in ("bulge", "disk", "knots"))


def test_flux_radius_and_angle_on_the_noise_free_truth(compact):
    for p in compact:
        truth = truth_image(Scene(p)).astype(np.float64)
        r = truth[..., ph.band_index("hsc", "r")]
        ref = ph.make_reference(r, HSC_SIGMA_R)
        m = ph.measure(truth, "hsc", ref, use_statmorph=False, noise_free=True)
        assert m["flux_r"] == pytest.approx(total(p, "r"), rel=0.05), p["id"]
        prof = galsim.Convolve(galsim.Add(Scene(p).parts("r")),
                               _psf(get_survey("hsc").psf_fwhm["r"]))
        hlr = prof.calculateHLR(scale=0.084, size=384)
        assert m["hlr"] == pytest.approx(hlr, rel=0.10), p["id"]
        if 1 - p["q"] > 0.3:
            d = (m["pa"] - p["pa"] + 90) % 180 - 90
            assert abs(d) < 5, (p["id"], m["pa"], p["pa"])
        # the colour of the truth (g, r of HSC) is the manifest's
        gr = -2.5 * math.log10(total(p, "g") / total(p, "r"))
        assert m["g_r"] == pytest.approx(gr, abs=0.05)


@pytest.mark.parametrize("survey", ["decals", "sdss"])
def test_flux_through_the_viewer_jpeg(compact, survey):
    """Render -> 8-bit -> inverse render -> per-0.168" px: the area factor matters
    (without it DECaLS fluxes would be 2.4x, SDSS 5.6x too small)."""
    for p in compact[:2]:
        scene = Scene(p)
        planes = observe(scene, p, survey, defects=False, noise_scale=0.0)
        rgb = render.render_planes(planes, get_survey(survey))
        flux = ph.to_flux(rgb, survey)
        hsc_r = truth_image(scene).astype(np.float64)[..., 1]
        ref = ph.make_reference(hsc_r, HSC_SIGMA_R)
        m = ph.measure(flux, survey, ref, use_statmorph=False, noise_free=True)
        # the inversion and the units: the JPEG's flux equals the unrendered image's
        # (nMgy per native pixel x area factor) in the same aperture to 5 % (the loss
        # is the stretch clipping the core at 255)
        direct = planes[..., ph.band_index(survey, "r")] * (
            0.168 / get_survey(survey).pixel_scale) ** 2
        assert m["flux_r"] == pytest.approx(ph.aperture_flux(direct, ref), rel=0.05)
        # and the manifest total to 7 %: + ~2 % of the broader PSF outside the aperture
        assert m["flux_r"] == pytest.approx(total(p, "r"), rel=0.07), (survey, p["id"])
        gr = -2.5 * math.log10(total(p, "g") / total(p, "r"))
        assert m["g_r"] == pytest.approx(gr, abs=0.05)


def test_concentration_and_asymmetry_of_known_profiles():
    """A round exponential disk: C ~ 2.7 (Bershady et al. 2000: 2.7 for n = 1), A ~ 0;
    a de Vaucouleurs profile is more concentrated; statmorph and our own agree."""
    def image(n):
        prof = galsim.Convolve(galsim.Sersic(n, half_light_radius=1.2, flux=100.0),
                               _psf(0.6))
        return prof.drawImage(nx=128, ny=128, scale=0.168).array.astype(np.float64)
    got = {}
    for n in (1.0, 4.0):
        img = image(n)
        ref = ph.make_reference(img, HSC_SIGMA_R)
        own = ph.measure(img[..., None].repeat(3, -1), "hsc", ref, use_statmorph=False,
                         noise_free=True)
        sm = ph.measure(img[..., None].repeat(3, -1), "hsc", ref, use_statmorph=True,
                        noise_free=True)
        assert sm["morph"] == "statmorph" and sm["morph_ok"]
        assert own["C"] == pytest.approx(sm["C"], abs=0.3)
        assert abs(own["A"]) < 0.05 and abs(sm["A"]) < 0.05
        assert own["e"] < 0.02
        got[n] = sm["C"]
    assert got[1.0] == pytest.approx(2.7, abs=0.35)
    assert got[4.0] > got[1.0] + 0.7


def test_hallucination_counts_added_and_missing_knots():
    rng = np.random.default_rng(0)
    yy, xx = np.indices((96, 96))
    truth = 0.05 * np.exp(-np.hypot(yy - 48, xx - 48) / 8.0)
    sigma, psf = 1e-3, 1.9

    def knot(y, x, amp):
        return amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * psf**2))
    noisy = truth + rng.normal(0, sigma, truth.shape)
    base = ph.hallucination(noisy, truth, sigma, psf)
    assert base["false_peaks_in"] + base["false_peaks_out"] == 0
    assert base["missed_peaks"] == 0 and base["rms_out"] == pytest.approx(1, abs=0.1)
    fake = noisy + knot(40, 56, 0.02) + knot(10, 10, 0.02)  # one in, one outside
    got = ph.hallucination(fake, truth, sigma, psf)
    assert got["false_peaks_in"] == 1 and got["false_peaks_out"] == 1
    assert got["false_flux_out"] > 0
    with_knot = truth + knot(56, 44, 0.02)
    lost = ph.hallucination(noisy, with_knot, sigma, psf)
    assert lost["missed_peaks"] == 1 and lost["true_peaks"] >= 1
    smooth = ph.hallucination(ndimage_smooth(noisy), truth, sigma, psf)
    assert smooth["rms_out"] < 0.5  # a denoised image: residual below the sky noise


def ndimage_smooth(a):
    from scipy import ndimage
    return ndimage.gaussian_filter(a, 3.0)


def test_draw_measurements_recover_a_known_flux_spread(compact):
    """Draws = a faint truth (0.1 x the simulated galaxy, so that no plane clips)
    scaled by known factors, rendered as HSC pixels (float, unrounded): each draw's
    aperture flux follows its factor within 1 % (the stretch inverts exactly where
    nothing clips), so the spread over draws is the known one; the size stays."""
    from data.render import asinh_stretch
    hsc = get_survey("hsc")
    truth = 0.1 * truth_image(Scene(compact[0])).astype(np.float64)
    ref = ph.make_reference(truth[..., 1], HSC_SIGMA_R)
    f = np.array([0.8, 0.9, 1.0, 1.1, 1.2])
    scales = [hsc.rgb_scales[b] for b in hsc.rgb_bands]
    draws = np.stack([255 * asinh_stretch(truth * k, scales, hsc.rgb_m)[..., ::-1]
                      for k in f])
    assert draws.max() < 255
    m = ph.draw_measurements(draws, "hsc", ref)
    base = ph.aperture_flux(truth[..., 1], ref)
    assert m[:, 0] / base == pytest.approx(f, rel=0.01)
    assert m[:, 1] == pytest.approx(m[2, 1], rel=0.02)


def test_pulls_and_their_spread():
    """pull = (mean - truth) / sigma per galaxy; the summary's spread is the robust
    std of those pulls. Truth and draws from one Gaussian per galaxy (a calibrated
    sigma): the spread is the one experiments.calibration_stats.ideal_pull_spread
    predicts for that many draws."""
    import pandas as pd
    from experiments import physics
    rng = np.random.default_rng(0)
    n, k = 2000, 12
    mu = rng.uniform(1, 10, n)
    sig = rng.uniform(0.1, 1.0, n)
    x = mu[:, None] + sig[:, None] * rng.normal(size=(n, k + 1))
    truth, d = x[:, 0], x[:, 1:]
    meas = pd.DataFrame(dict(id=np.arange(n), kind="truth", flux_r=truth, hlr=1.0))
    unc = pd.DataFrame(dict(id=np.arange(n), kind="pseudo1", source="s", draws=k,
                            flux_r=d.mean(1), flux_r_sigma=d.std(1, ddof=1),
                            hlr=1.5, hlr_sigma=0.25))
    pl = physics.pulls(unc, meas)
    assert pl.pull_flux_r.to_numpy() == pytest.approx(
        (d.mean(1) - truth) / d.std(1, ddof=1))
    assert (pl.pull_hlr == 2.0).all()
    ps = physics.pull_summary(pl).set_index("quantity")
    assert ps.loc["pull_flux_r", "scatter"] == pytest.approx(
        ps.loc["pull_flux_r", "ideal_scatter"], rel=0.08)
    assert ps.loc["pull_hlr", "bias"] == 2.0 and ps.loc["pull_hlr", "n"] == n


def test_pull_summary_fits_the_scale_on_validation_ids_only():
    """physics.pull_summary with the validation ids of calibration_stats.split_ids:
    sigma 2.5x too small everywhere, and the TEST galaxies' pulls made 10x wider on
    top: the scale still comes out ~2.5 (validation only), the calibrated test spread
    ~10, and the markdown says the spread does NOT hold there."""
    import pandas as pd
    from experiments import calibration_stats as cs
    from experiments import physics
    rng = np.random.default_rng(6)
    n = 2000
    ids = [f"g{i:05d}" for i in range(n)]
    val_ids, test_ids = cs.split_ids(ids)
    truth = rng.uniform(1, 10, n)
    sig = rng.uniform(0.1, 1.0, n)
    wide = np.where(np.isin(ids, test_ids), 10.0, 1.0)
    mean = truth + 2.5 * wide * sig * rng.normal(size=n)
    meas = pd.DataFrame(dict(id=ids, kind="truth", flux_r=truth, hlr=1.0))
    unc = pd.DataFrame(dict(id=ids, kind="pseudo1", source="s", draws=12,
                            flux_r=mean, flux_r_sigma=sig, hlr=1.0 + 0.1 * sig *
                            rng.normal(size=n), hlr_sigma=0.1))
    ps = physics.pull_summary(physics.pulls(unc, meas), val_ids).set_index("quantity")
    r = ps.loc["pull_flux_r"]
    assert r.scale == pytest.approx(2.5, rel=0.08)
    assert r.n_val == r.n_test == n // 2
    assert r.spread_test_cal == pytest.approx(10.0, rel=0.1)
    assert ps.loc["pull_hlr", "spread_test_cal"] == pytest.approx(1.0, rel=0.1)
    md = "\n".join(physics.pull_markdown(ps.reset_index()))
    assert "spread does not hold after calibration" in md
    assert "spread holds after calibration" in md
    assert "VALIDATION galaxies only" in md
