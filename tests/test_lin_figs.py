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


def test_noise_band_calibrates_on_a_perfect_model():
    # Images of varying depth: a perfect model (truth + independent noise of each image's
    # depth) scatters around sqrt(2) sigma, so only ~half of it is below that line, while
    # the noise band (its 90th percentile) holds 90% of a second perfect draw and none of
    # a model whose residual is three times the noise (2.2x the perfect difference).
    rng = np.random.default_rng(2)
    n, size = 400, 16
    depth = rng.uniform(0.7, 1.4, size=(n, 1, 1, 1))
    truth = np.zeros((n, size, size, 5))
    orig = truth + depth * rng.normal(size=truth.shape)
    draws = [truth + depth * rng.normal(size=truth.shape) for _ in range(2)]
    sigma = ev.noise_sigma(orig - truth, "r")
    perfect, again = (ev.flux_difference(d, orig, "r") for d in draws)
    assert 0.3 < ev.fraction_below(perfect, np.sqrt(2) * sigma) < 0.7
    edge = ev.noise_band(perfect)
    assert edge == pytest.approx(np.quantile(perfect, 0.9))
    assert np.mean(again <= edge) == pytest.approx(0.9, abs=0.05)
    bad = ev.flux_difference(truth + 3 * depth * rng.normal(size=truth.shape), orig, "r")
    assert np.mean(bad <= edge) < 0.1
    with pytest.raises(ValueError, match="perfect"):
        ev.noise_band([])


def test_fig5_criterion_needs_the_band_and_the_right_noise_amplitude():
    from experiments.lin_fig5 import SIGMA_TOLERANCE, criterion_holds
    assert criterion_holds(0.8, 0.1, 0.8)
    assert not criterion_holds(0.4, 0.9, 1.0)                 # most outside the band
    # Emulators 3x too strong widen the band until an empty reconstruction passes it.
    assert not criterion_holds(0.95, 0.95, 3.0)
    assert not criterion_holds(0.95, 0.95, 0.9 / SIGMA_TOLERANCE)
    assert criterion_holds(0.6, 0.0, np.nan)                  # amplitude unknown
    assert criterion_holds(np.nan, 0.6, np.nan) and not criterion_holds(np.nan, 0.4, np.nan)


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


# --- the figure scripts end to end (tiny preset) -------------------------------------
#
# Real training costs ~50 s of graph tracing per case on 2 CPU cores whatever the
# iteration count (the per-band discriminators make large graphs), so seven cases
# cannot train inside this file's time budget. ``trained_runs`` therefore writes each
# case's run folder exactly as noise_gan.trainer does (config.json, a checkpoint of the
# translator's networks at the final iteration via common.training.RunState, and
# finished.json), with freshly initialised networks, and the figure scripts then find
# every case finished. The trainer's own training is tested in tests/test_noise_gan.py;
# set LIN_FIGS_TRAIN=1 to let these tests train the cases for real instead.

import json
import os
from pathlib import Path

from experiments import lin_common as lc

FIG_CASES = ("ours", "a", "e", "f")   # two-step, one-step, PixelShuffle, one-step + NE


def _fake_train(cfg, run_dir, step="both", resume=False, dataset=None, progress=True):
    """Stand-in for noise_gan.trainer.train with the trainer's on-disk layout."""
    from common import training
    from noise_gan import trainer as tr
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    training.save_config(cfg, run_dir)
    names = ("g_x2y", "g_y2x") + (("ne_x", "ne_y") if cfg.has_noise else ())
    nets = tr.build_networks(cfg, names)
    for s in tr.steps_of(cfg, step):
        training.RunState(tr.step_dir(run_dir, s), **nets).save(cfg.iterations)
        (tr.step_dir(run_dir, s) / tr.FINISHED).write_text(
            json.dumps({"iterations": cfg.iterations}))
    _fake_train.calls.append(cfg.variant)
    return run_dir


_fake_train.calls = []


@pytest.fixture(scope="module")
def lin_env(tmp_path_factory):
    """A tiny simulated Lin et al. set and a runs root with FIG_CASES trained."""
    from data.simulate import LinSimConfig, ensure_lin_simulated
    base = tmp_path_factory.mktemp("lin")
    root = ensure_lin_simulated(LinSimConfig(out=base / "data", workers=1, progress=False,
                                             **lc.PRESETS["tiny"]["sim"]))
    mp = pytest.MonkeyPatch()
    if not os.environ.get("LIN_FIGS_TRAIN"):
        import noise_gan.trainer
        mp.setattr(noise_gan.trainer, "train", _fake_train)
    runs = lc.ensure_cases(FIG_CASES, "tiny", root, base / "runs", progress=False)
    yield {"root": root, "runs": base / "runs", "cache": base / "cache", "base": base,
           "run_dirs": runs}
    mp.undo()


def _argv(env, out, *extra):
    return ["--preset", "tiny", "--data", str(env["root"]), "--runs", str(env["runs"]),
            "--cache", str(env["cache"]), "--out", str(out), "--quiet", "--jobs", "1", *extra]


def _check_outputs(out: Path, stem: str, csvs):
    for ext in ("png", "pdf"):
        assert (out / f"{stem}.{ext}").stat().st_size > 1000
    import pandas as pd
    for name in csvs:
        df = pd.read_csv(out / name)
        assert len(df) > 0, name


def test_ensure_case_reuses_finished_runs(lin_env):
    calls = len(_fake_train.calls)
    again = lc.ensure_case("a", "tiny", lin_env["root"], lin_env["runs"], progress=False)
    assert again == lin_env["run_dirs"]["a"] == lin_env["runs"] / "lin" / "tiny" / "a"
    assert len(_fake_train.calls) == calls          # finished: nothing trained again
    assert lc.is_finished(again, "a", lc.PRESETS["tiny"]["train"]["iterations"])
    assert not lc.is_finished(lin_env["base"] / "nothing", "a", 2)


def test_translate_test_set_shapes_and_cache(lin_env):
    t = lc.translate_test_set(lin_env["run_dirs"]["ours"], lin_env["root"], seed=3,
                              cache_dir=lin_env["cache"], n_noise=5)
    n = lc.PRESETS["tiny"]["sim"]["n_paired_test"]
    assert t["sdss"].shape == t["sdss_rec"].shape == (n, 64, 64, 5)
    assert t["cfht"].shape == t["cfht_rec"].shape == (n, 136, 136, 5)
    assert list(t["id"]) == sorted(t["id"]) and bool(t["has_noise"])
    assert t["noise_sum_sdss"].shape == t["noise_sum_cfht"].shape == (5, 5)
    assert lc.sigma_of(t, "sdss") == pytest.approx(np.median(t["noise_sum_sdss"][:, 2]))
    path = lin_env["cache"] / "ours_test.npz"
    stamp = path.stat().st_mtime_ns
    again = lc.translate_test_set(lin_env["run_dirs"]["ours"], lin_env["root"], seed=3,
                                  cache_dir=lin_env["cache"], n_noise=5)
    assert path.stat().st_mtime_ns == stamp           # served from the cache
    plain = lc.translate_test_set(lin_env["run_dirs"]["ours"], lin_env["root"], seed=3,
                                  cache_dir=lin_env["cache"])
    assert path.stat().st_mtime_ns == stamp and "noise_sum_cfht" in plain
    np.testing.assert_array_equal(again["cfht_rec"], t["cfht_rec"])
    other = lc.translate_test_set(lin_env["run_dirs"]["ours"], lin_env["root"], seed=4,
                                  cache_dir=lin_env["cache"], n_noise=5)
    assert not np.array_equal(other["cfht_rec"], t["cfht_rec"])   # new seed: new noise
    a = lc.translate_test_set(lin_env["run_dirs"]["a"], lin_env["root"], seed=3,
                              cache_dir=lin_env["cache"])
    assert not bool(a["has_noise"]) and "noise_sum_sdss" not in a


def test_pick_galaxies_rule_and_ids():
    sdss = np.zeros((4, 8, 8, 5), np.float32)
    sdss[:, ..., 2] = np.array([1.0, 3.0, 2.0, 0.5])[:, None, None]
    ids = ["g0", "g1", "g2", "g3"]
    assert lc.pick_galaxies(ids, sdss, 2) == [1, 2]           # brightest in r first
    assert lc.pick_galaxies(ids, sdss, 2, ["g3", "g0"]) == [3, 0]
    with pytest.raises(ValueError, match="not in the paired test set"):
        lc.pick_galaxies(ids, sdss, 1, ["nope"])


def test_fig3_end_to_end(lin_env):
    from experiments import lin_fig3
    out = lin_env["base"] / "fig3"
    assert lin_fig3.main(_argv(lin_env, out)) == 0
    _check_outputs(out, "fig3", ["fig3.csv"])
    assert (out / "fig3_pixels.npz").stat().st_size > 0


def test_fig4_end_to_end(lin_env):
    from experiments import lin_fig4
    out = lin_env["base"] / "fig4"
    assert lin_fig4.main(_argv(lin_env, out, "--cases", *FIG_CASES)) == 0
    _check_outputs(out, "fig4", ["fig4.csv"])


def test_fig5_end_to_end(lin_env, capsys):
    import pandas as pd
    from experiments import lin_fig5
    out = lin_env["base"] / "fig5"
    assert lin_fig5.main(_argv(lin_env, out, "--cases", *FIG_CASES)) == 0
    _check_outputs(out, "fig5", ["fig5_points.csv", "fig5_summary.csv"])
    s = pd.read_csv(out / "fig5_summary.csv")
    assert set(s.case) == set(FIG_CASES) and set(s.survey) == {"sdss", "cfht"}
    assert s.frac_below_sqrt2_sigma.between(0, 1).all()
    # The simulated set has truth: the perfect-model calibration is there for every case.
    assert s.frac_within_noise_band.between(0, 1).all() and (s.noise_band > 0).all()
    assert s.sigma_over_true.gt(0).all() and s.criterion_holds.isin([True, False]).all()
    pts = pd.read_csv(out / "fig5_points.csv")
    assert (pts.case == "perfect").sum() == (pts.case == "ours").sum() > 0
    printed = capsys.readouterr().out
    assert "done-criterion" in printed and "paper (Fig. 5" in printed


def test_fig6_end_to_end(lin_env, capsys):
    import pandas as pd
    from experiments import lin_fig6
    out = lin_env["base"] / "fig6"
    assert lin_fig6.main(_argv(lin_env, out, "--cases", *FIG_CASES)) == 0
    _check_outputs(out, "fig6", ["fig6_summary.csv", "fig6_maps.csv"])
    m = pd.read_csv(out / "fig6_maps.csv")
    assert set(m.case) == {"original", *FIG_CASES}
    assert m[m.survey == "sdss"].groupby("case").size().eq(60 * 60).all()
    assert "ours resembles the original more than case (a)" in capsys.readouterr().out


def test_unknown_galaxy_is_a_one_line_error(lin_env, capsys):
    from experiments import lin_fig3
    out = lin_env["base"] / "bad"
    assert lin_fig3.main(_argv(lin_env, out, "--galaxy", "nope")) == 2
    assert "error:" in capsys.readouterr().err


def test_case_lock_live_stale_and_release(tmp_path):
    lock = tmp_path / "ours.lock"
    lock.write_text(str(os.getppid()))                 # a live process holds it
    with pytest.raises(lc.CaseLocked, match="is training"):
        lc._acquire(lock)
    lock.write_text("999999999")                        # its process is gone: stale
    lc._acquire(lock)
    assert lock.read_text() == str(os.getpid())


def test_jobs_train_each_case_once_side_by_side(lin_env, capsys):
    # Two real tiny cases with jobs=2: the helper process and this one share the list
    # through the case locks, so each case is trained exactly once, by one of them.
    runs = lin_env["base"] / "runs-jobs"
    got = lc.ensure_cases(["b", "c"], "tiny", lin_env["root"], runs, progress=False,
                          jobs=2)
    here = capsys.readouterr().out
    helper = (runs / "lin" / "tiny" / "helper1.log").read_text()
    for case in ("b", "c"):
        assert lc.is_finished(got[case], case, lc.PRESETS["tiny"]["train"]["iterations"])
        trained_by = [f"=== case {case} " in text for text in (here, helper)]
        assert sum(trained_by) == 1, (case, trained_by)
    assert not list((runs / "lin" / "tiny").glob("*.lock"))


def test_jobs_flag_rejects_bad_values(capsys):
    import argparse
    p = lc.add_common_args(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        p.parse_args(["--jobs", "0"])
    assert "--jobs: must be a positive integer, got '0'" in capsys.readouterr().err
