"""experiments/calibration_stats.py on synthetic Gaussian errors with a known sigma.

Tolerances: with n = 200,000 draws the binomial standard error of a 68 % coverage is
0.1 %, so 1 % (10 standard errors) is generous and still fails a wrong z (z = 1.0 vs
the 0.6745 of a half-width quantile: 68 % vs 50 %).
"""
import numpy as np
import pytest

from experiments import calibration_stats as cs

N = 200_000


@pytest.fixture(scope="module")
def gauss():
    """Errors ~ N(0, sigma^2) with a per-element sigma spread over 0.5 .. 5."""
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 5.0, N)
    return rng.normal(0.0, sigma), sigma


def test_z_and_bad_levels():
    assert cs.z_of(0.6827) == pytest.approx(1.0, abs=1e-3)
    assert cs.z_of(0.9545) == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(ValueError, match="level"):
        cs.z_of(1.0)


def test_known_sigma_covers_the_nominal_levels(gauss):
    err, sigma = gauss
    cov = cs.coverage(err, sigma)
    assert cov[0] == pytest.approx(0.6827, abs=0.01)
    assert cov[1] == pytest.approx(0.9545, abs=0.01)
    nominal, emp = cs.reliability(err, sigma)
    assert np.abs(emp - nominal).max() < 0.01
    # a sigma twice too small covers erf(1/sqrt(8)) = 38 % at "68 %"
    assert cs.coverage(err, sigma / 2)[0] == pytest.approx(0.3829, abs=0.01)


def test_scale_fitted_on_one_half_corrects_the_other(gauss):
    err, sigma = gauss
    val, test = slice(0, N // 2), slice(N // 2, N)
    wrong = sigma / 2.0
    s = cs.fit_scale(err[val], wrong[val])
    assert s == pytest.approx(2.0, rel=0.02)
    cov = cs.coverage(err[test], wrong[test], scale=s)
    assert cov[0] == pytest.approx(0.6827, abs=0.01)
    assert cov[1] == pytest.approx(0.9545, abs=0.01)  # Gaussian: one factor fixes both
    # on the fitting data itself the level is met (inverted_cdf: at least, exactly here)
    assert cs.coverage(err[val], wrong[val], scale=s)[0] == pytest.approx(0.6827,
                                                                          abs=1e-4)


def test_fit_scale_uses_only_what_it_is_given(gauss):
    """The factor depends on the elements passed, not on anything else: halves with
    different sigma errors give different factors, and a permutation changes nothing."""
    err, sigma = gauss
    half = N // 2
    wrong = np.concatenate([sigma[:half] / 2, sigma[half:] * 3])
    s_val = cs.fit_scale(err[:half], wrong[:half])
    s_test = cs.fit_scale(err[half:], wrong[half:])
    assert s_val == pytest.approx(2.0, rel=0.02)
    assert s_test == pytest.approx(1 / 3, rel=0.02)
    perm = np.random.default_rng(1).permutation(half)
    assert cs.fit_scale(err[:half][perm], wrong[:half][perm]) == s_val


def test_zero_sigma_and_bad_input():
    err = np.array([0.0, 1.0, 0.5, -0.5])
    sigma = np.array([0.0, 0.0, 1.0, 1.0])
    assert cs.coverage(err, sigma, levels=(0.6827,))[0] == pytest.approx(0.75)
    assert cs.fit_scale(np.ones(10), np.zeros(10)) == np.inf
    with pytest.raises(ValueError, match="NaN"):
        cs.coverage([np.nan], [1.0])
    with pytest.raises(ValueError, match="differ"):
        cs.coverage([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no elements"):
        cs.fit_scale([], [])


def test_script_fits_on_validation_galaxies_only():
    """experiments/calibration.py's evaluate: validation galaxies have sigma 2x too
    small, test galaxies the right sigma; the scale comes from validation (2) and the
    test coverages are reported with it (68 % raw, ~95 % once scaled by 2)."""
    from experiments import calibration as cal
    rng = np.random.default_rng(2)
    n, h = 20, 16
    sigma = rng.uniform(0.5, 3.0, (n, h, h, 3))
    err = rng.normal(0.0, sigma)
    val = np.arange(n) % 2 == 0
    shown = np.where(val[:, None, None, None], sigma / 2, sigma)
    galaxy = np.zeros((n, h, h), bool)
    galaxy[:, 4:12, 4:12] = True
    rows, curves = cal.evaluate(err, shown, galaxy, np.ones((n, h, h), bool), val)
    for r in rows:
        assert r["scale"] == pytest.approx(2.0, rel=0.05)
        assert r["cov68_raw"] == pytest.approx(0.6827, abs=0.03)
        assert r["cov68_cal"] == pytest.approx(0.9545, abs=0.02)
    assert {r["region"] for r in rows} == {"sky", "galaxy"}
    assert sum(r["n_px"] for r in rows) == (~val).sum() * h * h * 3
    assert cs.split_ids(["c", "a", "d", "b"]) == (["a", "c"], ["b", "d"])
    # a sorted prefix (--max-galaxies) keeps every id on its side
    full = cs.split_ids(["c", "a", "d", "b", "e"])
    assert cs.split_ids(["a", "b", "c"]) == (full[0][:2], full[1][:1])
    assert not hasattr(cal, "split_ids")  # one source of truth: calibration_stats


def test_missing_seed_run_names_the_command(tmp_path):
    from common.errors import DataError
    with pytest.raises(DataError, match=r"table1.py --seeds 3"):
        cs.seed_chains("cpu", tmp_path / "nope", "pix2wgan", 3)


def test_ideal_pull_spread_matches_a_simulation():
    """n draws and the truth from one Gaussian: the spread of (mean - truth) / s."""
    rng = np.random.default_rng(3)
    for n in (3, 12):
        x = rng.normal(size=(100_000, n + 1))
        d, truth = x[:, :n], x[:, n]
        pull = (d.mean(1) - truth) / d.std(1, ddof=1)
        med = np.median(pull)
        spread = 1.4826 * np.median(np.abs(pull - med))
        assert cs.ideal_pull_spread(n) == pytest.approx(spread, rel=0.02)
    with pytest.raises(ValueError, match="2 draws"):
        cs.ideal_pull_spread(1)


def test_pull_scale_fitted_on_validation_corrects_test():
    """Pulls of a sigma 2.5x too small with an offset of 0.3 true sigma: the scale
    fitted on the validation pulls alone is 2.5 (within 5 %), and divides the test
    pulls to spread 1 (within 8 %) and median 0.3 / 1 = 0.3 sigma (the offset stays:
    a scale is no bias correction)."""
    rng = np.random.default_rng(4)
    n = 4000
    sigma = rng.uniform(0.1, 2.0, 2 * n)
    err = rng.normal(0.3 * 2.5 * sigma, 2.5 * sigma)
    pulls = err / sigma
    val, test = pulls[:n], pulls[n:]
    s = cs.fit_pull_scale(val)
    assert s == pytest.approx(2.5, rel=0.05)
    raw, cal = cs.pull_stats(test), cs.pull_stats(test, s)
    assert raw["spread"] == pytest.approx(2.5, rel=0.08)
    assert cal["spread"] == pytest.approx(1.0, rel=0.08)
    assert cal["median"] == pytest.approx(0.3, abs=0.06)
    assert cal["rms"] == pytest.approx(np.sqrt(1 + 0.3 ** 2), rel=0.05)
    out = cs.calibrate_pulls(val, test)
    assert out["scale"] == s and out["n_val"] == n and out["n_test"] == n
    assert out["spread_test_cal"] == pytest.approx(cal["spread"])
    assert "systematically" in cs.pull_bias(cal["median"], cal["spread"], n)
    assert "consistent with 0" in cs.pull_bias(0.01, 1.0, 100)


def test_pull_scale_never_sees_test_pulls():
    """The scale depends on the validation pulls only: test pulls 10x wider (or NaN)
    leave it unchanged; too few validation pulls give NaN, not a fit on test."""
    rng = np.random.default_rng(5)
    val = rng.normal(0, 2.0, 500)
    a = cs.calibrate_pulls(val, rng.normal(0, 2.0, 500))
    b = cs.calibrate_pulls(val, rng.normal(0, 20.0, 500))
    assert a["scale"] == b["scale"] == cs.fit_pull_scale(val)
    assert b["spread_test_cal"] == pytest.approx(10 * a["spread_test_cal"], rel=0.2)
    c = cs.calibrate_pulls([1.0, np.nan], rng.normal(0, 2.0, 50))
    assert np.isnan(c["scale"]) and np.isnan(c["spread_test_cal"]) and c["n_val"] == 1
    with pytest.raises(ValueError, match="need at least 2"):
        cs.fit_pull_scale([np.nan, 3.0])
    with pytest.raises(ValueError, match="zero spread"):
        cs.fit_pull_scale([1.0, 1.0, 1.0])
