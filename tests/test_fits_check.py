"""experiments/fits_check.py: its photometry helpers, and a missing run as one line."""
import numpy as np
import pytest

from experiments import fits_check


def test_aperture_flux_is_the_exact_circle_sum():
    image = np.ones((64, 64), np.float32)
    assert fits_check.aperture_flux(image, 31.5, 31.5, 10.0) == pytest.approx(
        np.pi * 100.0, rel=1e-6)
    image[:, 32:] = 0.0  # half the circle: half the flux
    assert fits_check.aperture_flux(image, 31.5, 31.5, 10.0) == pytest.approx(
        np.pi * 50.0, rel=1e-6)


def test_robust_spread_is_the_gaussian_sigma():
    x = np.random.default_rng(0).normal(3.0, 2.0, 20_000)
    assert fits_check.robust_spread(x) == pytest.approx(2.0, rel=0.03)
    x[:500] = 1e6  # outliers move the mean, not the spread
    assert fits_check.robust_spread(x) == pytest.approx(2.0, rel=0.06)


def test_missing_runs_are_one_line(luo_tiny_sim, tmp_path, capsys):
    code = fits_check.main(["--data", str(luo_tiny_sim), "--run", str(tmp_path / "none"),
                            "--results", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "table1.py --seeds 3" in err[0]
