"""Issue 13, items 1-2: the training-recipe options of ``noise_gan`` (emulator amplitude
from the data, autoencoder pre-training, per-network rates, step-2 domain weights, band
set) and the checks of the noise the critic sees (robust noise estimate, emulator σ in
total and after the high-pass filter, convergence over the last third of step 1).

Tiny sizes: a simulated Lin set of 32 / 72 px stamps (6 test pairs with their noise-free
truth), networks of width 2, eager steps.
"""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.signal import convolve2d

from common import callbacks
from data import lin_pipeline as lp
from data import sim_lin as simulate
from data.sim_lin import LinSimConfig
from noise_gan import evaluate as ev
from noise_gan import networks as nets
from noise_gan import train as train_cli
from noise_gan import trainer
from noise_gan.config import NoiseGANConfig

S, C = 32, 72          # stamp sides: C = 2 (S + 4), the generators' rule
N_TEST = 6
TINY = dict(width=2, noise_hidden=4, sdss_size=S, cfht_size=C, batch_unpaired=2,
            batch_paired=2, n_samples=1, checkpoint_every=1, eager=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """``(root, batch)``: a tiny simulated set and its test pairs with truth, stretched."""
    root = simulate.simulate_lin(LinSimConfig(
        out=tmp_path_factory.mktemp("lin13") / "sim", seed=3, workers=1, progress=False,
        rate_companion=0.0, rate_star=0.0, n_paired_train=2, n_paired_test=N_TEST,
        n_unpaired_sdss=2, n_unpaired_cfht=2, sdss_size=S, cfht_size=C))
    batch = next(iter(lp.paired_test_dataset(root, N_TEST, truth=True, sdss_size=S,
                                             cfht_size=C)))
    return root, {k: np.asarray(v) for k, v in batch.items() if k != "id"}


def _corr_gain(a: float) -> float:
    """High-pass rms of the simulator's correlated CFHT noise (white noise convolved with
    ``[a, 1, a]² / (1 + 2a²)``, unit per-pixel rms) over the white-noise gain."""
    k = np.outer([a, 1, a], [a, 1, a]) / (1 + 2 * a * a)
    hp = nets.HIGHPASS_5X5.astype(np.float64)
    return float(np.sqrt((convolve2d(hp, k) ** 2).sum()) / ev.highpass_gain())


# --- the robust noise estimate --------------------------------------------------------

def test_robust_estimate_recovers_the_simulated_noise(sim):
    """Per band, on the 6 test pairs, the truth-free estimates against the noise-free truth.

    Total rms (:func:`robust_noise_sigma`, second differences at lag 2): within 20 % of the
    true rms for SDSS (white noise) and for CFHT (correlated over neighbours, a = 0.1); a
    high-pass estimate would give CFHT only 0.678 of it, the kernel's gain, which the
    test also pins. The critic's view (:func:`robust_highpass_sigma`): within 10 % of the
    truth's high-pass rms for both."""
    _, b = sim
    assert _corr_gain(simulate.LinSimConfig.cfht_corr) == pytest.approx(0.678, abs=0.002)
    for s in ("sdss", "cfht"):
        truth = ev.noise_sigmas(b[s] - b[f"truth_{s}"])
        est = ev.robust_noise_sigma(b[s])
        assert est.shape == (5,)
        np.testing.assert_allclose(est / truth["total"], 1.0, atol=0.2, err_msg=s)
        np.testing.assert_allclose(ev.robust_highpass_sigma(b[s]) / truth["hp"], 1.0,
                                   atol=0.1, err_msg=s)
        ref = ev.reference_sigmas(b[s], b[s] - b[f"truth_{s}"])
        assert ref["source"] == "truth" and np.allclose(ref["total"], truth["total"])
        assert ev.reference_sigmas(b[s])["source"] == "estimate"


def test_robust_estimate_needs_room_for_its_lag():
    with pytest.raises(ValueError, match="too small"):
        ev.robust_noise_sigma(np.zeros((1, 4, 4, 1)))


def test_highpass_sigma_of_white_noise_is_the_kernel_norm():
    """On white noise of known rms the high-pass σ is rms x ||kernel||₂ (30.66), within
    3 % (8 x 60 x 60 filtered pixels a band); both robust estimates agree with it."""
    assert ev.highpass_gain() == pytest.approx(np.sqrt(940.0), rel=1e-9)  # sum of k²
    rms = np.array([0.01, 0.3])
    x = np.random.default_rng(0).normal(0, 1, (8, 64, 64, 2)) * rms
    got = ev.noise_sigmas(x)
    np.testing.assert_allclose(got["total"], rms, rtol=0.02)
    np.testing.assert_allclose(got["hp"], rms * ev.highpass_gain(), rtol=0.03)
    np.testing.assert_allclose(ev.robust_noise_sigma(x), rms, rtol=0.03)
    np.testing.assert_allclose(ev.robust_highpass_sigma(x), rms * ev.highpass_gain(),
                               rtol=0.03)
    rep = ev.emulator_noise_report(x, band=1, images=x)
    assert rep["ratio"] == pytest.approx(1.0, abs=0.03)
    assert rep["ratio_hp"] == pytest.approx(1.0, abs=0.03) and rep["source"] == "estimate"


# --- emulator initialisation ----------------------------------------------------------

def test_data_init_sets_the_emulator_rms_to_the_estimate(sim):
    """Before training: ~0.3 rms as built; after ``init_emulator_amplitude`` the rms of
    drawn noise is within 2x of the estimate per band (measured within ~10 %)."""
    _, b = sim
    for s, size in (("sdss", S), ("cfht", C)):
        target = ev.robust_noise_sigma(b[s])
        ne = nets.build_noise_emulator(size, bands=5, hidden=8)
        assert np.all(nets.emulator_rms(ne) > 3 * target)   # the paper's start: 7-250x
        got = nets.init_emulator_amplitude(ne, target)
        np.testing.assert_allclose(got, target, rtol=1e-4)
        z1, z2 = nets.sample_noise_inputs(64, size, 5, seed=7)
        drawn = ev.noise_sigmas(ne([z1, z2]).numpy())["total"]
        ratio = drawn / target
        assert np.all((ratio > 0.5) & (ratio < 2.0)), (s, ratio)


# --- options reach the networks -------------------------------------------------------

def test_separate_learning_rates_reach_their_optimizers():
    cur = callbacks.current_lr
    kw = dict(TINY, sdss_size=8, cfht_size=24, bands=1)
    m = trainer.build_step(NoiseGANConfig(**kw).validate(), "1")
    assert [cur(o) for o in trainer.optimizers_of(m)] == pytest.approx([1e-4] * 3)
    rates = dict(lr_auto=1e-3, lr_disc=2e-4, lr_noise=3e-3, lr_gen=4e-4)
    cfg = NoiseGANConfig(**kw, **rates).validate()
    m = trainer.build_step(cfg, "1")
    assert (cur(m.auto_optimizer), cur(m.disc_optimizer), cur(m.noise_optimizer)) == \
        pytest.approx((1e-3, 2e-4, 3e-3))
    assert cur(trainer.build_step(cfg, "2").gen_optimizer) == pytest.approx(4e-4)
    f = trainer.build_step(NoiseGANConfig(**kw, variant="f", **{
        k: v for k, v in rates.items() if k != "lr_auto"}).validate(), "1")
    assert (cur(f.gen_optimizer), cur(f.disc_optimizer), cur(f.noise_optimizer)) == \
        pytest.approx((4e-4, 2e-4, 3e-3))
    # Each keeps the §IV-B schedule: divided by lr_drop every lr_drop_every iterations.
    assert float(trainer.lr_schedule(cfg, 1e-3)(cfg.lr_drop_every)) == pytest.approx(2e-4)


def test_step_two_has_its_own_rate_drop():
    """--step2-lr-drop(-every) reach step two's generator optimizer only: step one's
    optimizers keep --lr-drop(-every), and a one-step variant refuses them."""
    kw = dict(TINY, sdss_size=8, cfht_size=24, bands=1, lr=1e-3)
    cfg = NoiseGANConfig(**kw, step2_lr_drop=10.0, step2_lr_drop_every=3).validate()
    assert cfg.lr_drop_of("2") == (10.0, 3) and cfg.lr_drop_of("1") == (5.0, 20000)

    def rates(optimizer):   # the rate at the optimizer's iterations 0, 2, 3, 6
        out = []
        for i in (0, 2, 3, 6):
            optimizer.iterations.assign(i)
            out.append(callbacks.current_lr(optimizer))
        return out
    assert rates(trainer.build_step(cfg, "2").gen_optimizer) == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5])
    for opt in trainer.optimizers_of(trainer.build_step(cfg, "1")):
        assert rates(opt) == pytest.approx([1e-3] * 4)
    assert NoiseGANConfig(**kw).lr_drop_of("2") == (5.0, 20000)   # unset: the paper's
    for bad, match in ((dict(step2_lr_drop=0.0), "--step2-lr-drop must be > 0"),
                       (dict(variant="a", step2_lr_drop_every=5), "variant a has no step 2")):
        with pytest.raises(ValueError, match=match):
            NoiseGANConfig(**kw, **bad).validate()


def test_pretraining_has_its_own_rate_and_optimizer(tmp_path):
    """--lr-pretrain drives the pre-training's own Adam; step one's autoencoder optimizer
    starts fresh afterwards (no update counted) at --lr-auto. Unset, that optimizer
    makes the updates."""
    import tensorflow as tf
    from tests.fakes import lin_batch
    assert NoiseGANConfig(lr_auto=2e-4).lr_of("pretrain") == 2e-4   # falls back to A's
    cfg = NoiseGANConfig(**dict(TINY, sdss_size=8, cfht_size=24, bands=1), auto_pretrain=3,
                         lr_auto=1e-6, lr_pretrain=1e-2).validate()
    m = trainer.build_step(cfg, "1")
    before = [w.numpy().copy() for w in m.a_x.trainable_variables]
    stream = tf.data.Dataset.from_tensors(lin_batch(cfg)).repeat()
    trainer.pretrain_autoencoders(cfg, m, stream, tmp_path, progress=False)
    assert int(m.auto_optimizer.iterations) == 0
    assert callbacks.current_lr(m.auto_optimizer) == pytest.approx(1e-6)
    assert json.loads((tmp_path / trainer.PRETRAIN_FILE).read_text())["lr"] == 1e-2
    # Adam moves a weight by about the rate per update: 3 updates at 1e-2 move the
    # largest far more than 3 at --lr-auto's 1e-6 could.
    moved = max(np.abs(w.numpy() - b).max() for w, b in zip(m.a_x.trainable_variables,
                                                               before))
    assert moved > 3e-3
    # Unset: step one's autoencoder optimizer makes (and counts) the updates.
    plain = dataclasses.replace(cfg, lr_pretrain=None)
    shared = trainer.build_step(plain, "1")
    trainer.pretrain_autoencoders(plain, shared, stream, tmp_path, progress=False)
    assert int(shared.auto_optimizer.iterations) == 3
    with pytest.raises(ValueError, match="--lr-pretrain: variant a has no autoencoders"):
        NoiseGANConfig(variant="a", lr_pretrain=1e-3).validate()


def test_step2_domain_weights():
    cfg = NoiseGANConfig(**dict(TINY, sdss_size=8, cfht_size=24, bands=1),
                         step2_weight_cfht=8.0).validate()
    m = trainer.build_step(cfg, "2")
    rng = np.random.default_rng(0)
    data = {k: rng.normal(0, 0.5, (2, s, s, 1)).astype(np.float32) for k, s in
            (("sdss", 8), ("cfht", 24), ("pair_sdss", 8), ("pair_cfht", 24))}
    v = {k: float(x) for k, x in m.generator_step(data).items()}
    assert v["id_loss"] == pytest.approx(8 * v["id_x2y"] + v["id_y2x"], rel=1e-6)
    assert v["cyc_loss"] == pytest.approx(v["cyc_x"] + 8 * v["cyc_y"], rel=1e-6)
    assert v["g_loss"] == pytest.approx(v["id_loss"] + v["cyc_loss"], rel=1e-6)


def test_paper_preset_is_pinned():
    """The defaults are §IV-B's, and the lin_* scripts' paper preset changes none."""
    d = NoiseGANConfig()
    assert (d.lr, d.lr_drop, d.lr_drop_every, d.clip_norm) == (1e-4, 5.0, 20000, 5.0)
    assert (d.iterations, d.iterations_of("2"), d.batch_unpaired, d.batch_paired) == \
        (60000, 60000, 24, 24)
    assert (d.width, d.noise_hidden, d.sdss_size, d.cfht_size, d.bands, d.band_set) == \
        (64, 64, 64, 136, 5, "ugriz")
    assert (d.content_weight, d.adv_reduction, d.variant) == (1000.0, "sum", "ours")
    assert (d.noise_init, d.auto_pretrain, d.step2_weight_sdss, d.step2_weight_cfht) == \
        ("paper", 0, 1.0, 1.0)
    assert [d.lr_of(r) for r in ("auto", "pretrain", "disc", "noise", "gen")] == [1e-4] * 5
    assert train_cli.parse_args([])[0] == d
    from experiments.presets import LIN_PRESETS as PRESETS
    assert PRESETS["paper"]["train"] == {}


@pytest.mark.parametrize("argv, message", [
    (["--noise-init", "loud"], "invalid choice"),
    (["--lr-disc", "0"], "--lr-disc must be > 0"),
    (["--variant", "b", "--lr-noise", "1e-3"], "--lr-noise: variant b has no noise"),
    (["--variant", "f", "--auto-pretrain", "5"], "--auto-pretrain: variant f has no"),
    (["--auto-pretrain", "-1"], "--auto-pretrain must be >= 0"),
    (["--step2-weight-cfht", "0"], "--step2-weight-cfht must be > 0"),
    (["--variant", "d", "--step2-weight-sdss", "2"], "variant d has no step 2"),
    (["--band-set", "rg"], "in that order"),
])
def test_cli_recipe_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and len([e for e in err if "error" in e]) == 1


# --- convergence judgement ------------------------------------------------------------

def test_convergence_is_judged_over_the_last_third():
    swing = [0.15, 2.0, 0.4, 1.9, 0.2, 2.3]                    # the cpu presets' oscillation
    late = [20.0, 8.0, 3.0, 1.4, 1.1, 0.9, 1.2, 1.0, 0.95]    # settles within the last third
    assert not ev.noise_converged(swing)
    assert ev.noise_converged(late) and ev.noise_converged(np.c_[late, late])
    assert not ev.noise_converged(late[:-1] + [1.6])           # one point of the last third
    assert not ev.noise_converged(np.c_[late, late[:-1] + [0.6]])  # one column
    assert ev.noise_converged(late[:-1] + [1.6], tol=2.0)
    assert not ev.noise_converged([]) and not ev.noise_converged([1.0, np.nan])
    with pytest.raises(ValueError, match="tol"):
        ev.noise_converged(late, tol=0.5)
    hist = pd.DataFrame({"iteration": np.arange(1, 10), "noise_ratio_x_r": late,
                         "noise_ratio_hp_x_r": swing + [1, 1, 1], "lr": 1e-4})
    assert ev.history_convergence(hist) == {"noise_ratio_x_r": True,
                                            "noise_ratio_hp_x_r": True, "all": True}


# --- end to end on the simulated FITS set ----------------------------------------------

def test_recipe_run_on_fits(sim, tmp_path, capsys):
    """Step 1 on the r band of the FITS set with the step-1 options: data init, 2
    pre-training iterations, separate rates; history carries the σ ratios (reference:
    the simulated truth) and each optimizer's rate."""
    root, _ = sim
    cfg, _ = train_cli.parse_args([
        "--data", str(root), "--band-set", "r", "--noise-init", "data",
        "--auto-pretrain", "2", "--lr-auto", "1e-3", "--lr-disc", "1e-4",
        "--lr-noise", "1e-3", "--lr-gen", "1e-3", "--step2-weight-cfht", "8",
        "--iterations", "2", "--checkpoint-every", "1", "--width", "2",
        "--noise-hidden", "4", "--sdss-size", str(S), "--cfht-size", str(C),
        "--batch-unpaired", "2", "--batch-paired", "2", "--n-samples", "1", "--eager"])
    assert cfg.bands == 1 and cfg.band_indices == [2]
    run = tmp_path / "run"
    trainer.train(cfg, run, step="1", progress=False)
    out = capsys.readouterr().out
    assert "noise_init data" in out and "auto_pretrain: 2 autoencoder iterations" in out
    ref = json.loads((run / "step1" / trainer.REFERENCE_FILE).read_text())
    assert ref["sdss"]["source"] == ref["cfht"]["source"] == "truth"
    for k in ("sdss", "cfht"):   # the emulators start at the estimate
        assert ref["init_rms"][k] == pytest.approx(ref["estimate"][k], rel=1e-3)
    assert json.loads((run / "step1" / trainer.PRETRAIN_FILE).read_text())["iterations"] == 2
    h1 = pd.read_csv(run / "step1" / "history.csv")
    cols = ["noise_ratio_x_r", "noise_ratio_hp_x_r", "noise_ratio_y_r", "noise_ratio_hp_y_r"]
    assert set(cols) <= set(h1.columns) and np.isfinite(h1[cols].to_numpy()).all()
    # The SDSS emulator starts at the estimate, ~the truth (white noise): ratio near 1.
    assert 0.3 < h1["noise_ratio_x_r"].iloc[0] < 3
    assert h1["lr_auto"].iloc[0] == pytest.approx(1e-3)
    assert h1["lr_disc"].iloc[0] == pytest.approx(1e-4)
    assert set(ev.history_convergence(h1)) == set(cols) | {"all"}
    # The default band set (ugriz) on 1-band networks cannot read the 5-band cubes.
    bad = NoiseGANConfig(**dict(TINY, bands=1), data=str(root)).validate()
    with pytest.raises(ValueError, match="--band-set ugriz reads 5 band"):
        trainer.train(bad, tmp_path / "bad", progress=False)
