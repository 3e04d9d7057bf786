"""noise_gan training: what each step updates, two-step resume, ablations a-f, the lr
schedule, mixed precision, and the train/predict CLIs end to end.

Tiny and eager (no graph trace, which costs more than a few eager iterations at these
sizes): width 4, SDSS 8 px / CFHT 24 px (the generators' 2 (s + 4) rule), batch 2, one
band except where FITS cubes need all five.
"""
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common import callbacks
from data.layout import REPO_ROOT
from noise_gan import predict as predict_cli
from noise_gan import train as train_cli
from noise_gan import trainer
from noise_gan.config import NoiseGANConfig
from tests.fakes import lin_batch
from noise_gan.model import OneStepGAN

TINY = dict(width=4, sdss_size=8, cfht_size=24, bands=1, batch_unpaired=2, batch_paired=2,
            n_samples=2, checkpoint_every=1, eager=True)


def _cfg(**kw):
    return NoiseGANConfig(**{**TINY, **kw}).validate()




def _dataset(cfg):
    return tf.data.Dataset.from_tensors(lin_batch(cfg)).repeat()


def _snap(*nets):
    return [v.numpy().copy() for n in nets for v in n.weights]


def _identical(before, *nets):
    return all(np.array_equal(a, b) for a, b in zip(before, _snap(*nets)))


def _moved(before, *nets):
    """Fraction of weight tensors that changed."""
    after = _snap(*nets)
    return np.mean([not np.array_equal(a, b) for a, b in zip(before, after)])


def _finite(values):
    return all(np.isfinite(float(v)) for v in values.values())


def test_step1_updates_autoencoders_discriminators_emulators_and_nothing_else():
    cfg = _cfg()
    m = trainer.build_step(cfg, "1")
    data = lin_batch(cfg)
    x, y = data["sdss"], data["cfht"]
    groups = {"A": (m.a_x, m.a_y), "D": (m.d_x, m.d_y), "NE": (m.ne_x, m.ne_y)}
    for name, sub in (("A", m.autoencoder_step), ("D", m.discriminator_step),
                      ("NE", m.noise_step)):
        before = {k: _snap(*nets) for k, nets in groups.items()}
        assert _finite(sub(x, y))
        for k, nets in groups.items():
            if k == name:       # (i) eq. 1, (ii) eq. 2, (iii) eq. 3: every tensor moves
                assert _moved(before[k], *nets) == 1.0, (name, k)
            else:               # the others are frozen, bit for bit
                assert _identical(before[k], *nets), (name, k)
    # A whole iteration runs the three updates once each, with their own optimizers.
    before = _snap(*[n for nets in groups.values() for n in nets])
    assert _finite(m.train_step(data))
    assert _moved(before, *[n for nets in groups.values() for n in nets]) == 1.0
    assert [int(o.iterations) for o in trainer.optimizers_of(m)] == [2, 2, 2]


def test_step2_updates_only_the_generators():
    cfg = _cfg()
    m = trainer.build_step(cfg, "2")
    g, ne = _snap(m.g_x2y, m.g_y2x), _snap(m.ne_x, m.ne_y)
    values = m.train_step(lin_batch(cfg))
    assert _finite(values) and float(values["id_loss"]) > 0 and float(values["cyc_loss"]) > 0
    assert _moved(g, m.g_x2y, m.g_y2x) == 1.0
    assert _identical(ne, m.ne_x, m.ne_y)
    assert not hasattr(m, "d_x") and not hasattr(m, "a_x")
    assert int(m.gen_optimizer.iterations) == 1


def test_two_step_resume_and_frozen_emulators(tmp_path, monkeypatch, capsys):
    cfg = _cfg(iterations=2, lr_drop_every=1)
    ds, run = _dataset(cfg), tmp_path / "run"

    save = callbacks.Checkpoint.on_epoch_end

    def killed_after_first(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt  # the "kill", right after the first checkpoint
    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, run, step="1", dataset=ds, progress=False)
    monkeypatch.undo()
    assert trainer.checkpoint_iteration(run, "1") == 1
    assert trainer.step_finished(run, "1") is None
    with pytest.raises(FileExistsError, match="--resume"):
        trainer.train(cfg, run, step="1", dataset=ds, progress=False)
    with pytest.raises(FileNotFoundError, match="finished step 1"):
        trainer.train(cfg, run, step="2", resume=True, dataset=ds, progress=False)

    trainer.train(cfg, run, step="1", resume=True, dataset=ds, progress=False)
    assert trainer.checkpoint_iteration(run, "1") == 2 == trainer.step_finished(run, "1")
    hist = pd.read_csv(run / "step1" / "history.csv")
    assert list(hist["iteration"]) == [1, 2]
    # lr logged after each iteration is the rate of the next one, divided by 5 every
    # iteration here; the second row comes from the resumed run, which kept the schedule.
    np.testing.assert_allclose(hist["lr"], [2e-5, 4e-6], rtol=1e-5)
    assert np.isfinite(hist.drop(columns="iteration").to_numpy()).all()

    step1 = trainer.build_step(cfg, "1")
    trainer.run_state(step1, run, "1").restore()
    assert [int(o.iterations) for o in trainer.optimizers_of(step1)] == [2, 2, 2]
    ne_step1 = _snap(step1.ne_x, step1.ne_y)

    trainer.train(_cfg(iterations=1), run, step="2", dataset=ds, progress=False)
    assert trainer.step_finished(run, "2") == 1
    tr = trainer.load_translator(run)
    assert tr.has_noise and tr.iteration == 1
    assert _identical(ne_step1, tr.ne_x, tr.ne_y)  # loaded from step 1, then frozen
    assert tr.sdss_to_cfht(lin_batch(cfg)["sdss"]).shape == (2, 24, 24, 1)
    assert tr.noise_cfht(3, seed=1).shape == (3, 24, 24, 1)
    np.testing.assert_array_equal(tr.noise_sdss(2, seed=5), tr.noise_sdss(2, seed=5))
    assert json.loads((run / "config.json").read_text())["iterations"] == 1

    capsys.readouterr()
    trainer.train(_cfg(iterations=1), run, step="both", resume=True, dataset=ds,
                  progress=False)
    out = capsys.readouterr().out
    assert "step 1: already finished (2 iterations)" in out
    assert "step 2: already finished (1 iterations)" in out
    assert trainer.checkpoint_iteration(run, "2") == 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step1_0000002.png", "step2_0000001.png"]
    assert (run / "logs" / "step1").is_dir() and (run / "logs" / "step2").is_dir()

    # Step two may run longer than step one (--step2-iterations): it resumes to 2.
    trainer.train(_cfg(iterations=1, step2_iterations=2), run, step="both", resume=True,
                  dataset=ds, progress=False)
    assert trainer.step_finished(run, "1") == 2 and trainer.step_finished(run, "2") == 2
    assert trainer.checkpoint_iteration(run, "2") == 2


@pytest.mark.parametrize("variant", ["a", "b", "c", "d", "e", "f"])
def test_each_ablation_trains_one_iteration(variant):
    cfg = _cfg(variant=variant)
    m = trainer.build_step(cfg, "1")
    assert isinstance(m, OneStepGAN)
    nets = [m.g_x2y, m.g_y2x, m.d_x, m.d_y]
    before = _snap(*nets)
    values = m.train_step(lin_batch(cfg))
    assert _finite(values)
    assert _moved(before, *nets) > 0.9
    assert float(values["content"]) > 0
    assert ("ne_loss" in values) == (variant == "f")
    assert ("pid_loss" in values) == (variant == "c")
    assert ("id_loss" in values) == (variant in "adef")
    assert ("cyc_loss" in values) == (variant != "a")
    shuffles = any("pixelshuffle" in type(layer).__name__.lower() for layer in m.g_x2y.layers)
    assert shuffles == (variant == "e")
    if variant == "f":   # G on content only, NE on the adversarial loss
        assert float(values["g_adv"]) == 0.0
        assert int(m.noise_optimizer.iterations) == 1
    else:
        assert float(values["g_loss"]) == pytest.approx(
            1000 * float(values["content"]) + float(values["g_adv"]), rel=1e-5)
    with pytest.raises(ValueError, match="one step"):
        trainer.steps_of(cfg, "2")


def test_lr_is_divided_by_5_every_drop_every_iterations():
    cfg = _cfg(lr=1e-3, lr_drop_every=2)
    schedule = trainer.lr_schedule(cfg)
    np.testing.assert_allclose([float(schedule(i)) for i in (0, 1, 2, 3, 4)],
                               [1e-3, 1e-3, 2e-4, 2e-4, 4e-5], rtol=1e-6)
    m = trainer.build_step(_cfg(lr_drop_every=1), "2")
    assert callbacks.current_lr(m.gen_optimizer) == pytest.approx(1e-4)
    m.train_step(lin_batch(_cfg()))
    assert callbacks.current_lr(m.gen_optimizer) == pytest.approx(1e-4 / 5)
    assert m.gen_optimizer.global_clipnorm == 5.0


def test_mixed_precision_step_is_finite():
    policy = keras.mixed_precision.global_policy()
    try:
        cfg = _cfg(precision="fp16")
        m = trainer.build_step(cfg, "1")
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert isinstance(m.auto_optimizer, keras.optimizers.LossScaleOptimizer)
        assert _finite(m.train_step(lin_batch(cfg)))
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_config_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="--variant"):
        NoiseGANConfig(variant="z").validate()
    with pytest.raises(ValueError, match="--cfht-size must be 2 x"):
        NoiseGANConfig(cfht_size=128).validate()
    with pytest.raises(ValueError, match="--iterations 7 must be a multiple"):
        NoiseGANConfig(iterations=7, checkpoint_every=3).validate()
    with pytest.raises(ValueError, match="--step2-iterations 5 must be a multiple"):
        NoiseGANConfig(iterations=6, step2_iterations=5, checkpoint_every=3).validate()
    assert NoiseGANConfig(iterations=6, step2_iterations=9).iterations_of("2") == 9
    assert NoiseGANConfig(iterations=6).iterations_of("2") == 6
    # Counts that a later check divides by are named, not a ZeroDivisionError.
    with pytest.raises(ValueError, match="--iterations must be >= 1, got 0"):
        NoiseGANConfig(iterations=0).validate()
    with pytest.raises(ValueError, match="--checkpoint-every must be >= 1, got 0"):
        NoiseGANConfig(checkpoint_every=0).validate()
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--variant", "b", "--step", "2"])


def test_cli_bad_value_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(["--iterations", "0", "--run-dir", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--iterations must be >= 1, got 0" in err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def lin_set(tmp_path_factory):
    from data.sim_lin import LinSimConfig, ensure_lin_simulated
    out = tmp_path_factory.mktemp("lin") / "sim"
    return ensure_lin_simulated(LinSimConfig(
        out=out, n_paired_train=2, n_paired_test=2, n_unpaired_sdss=2, n_unpaired_cfht=2,
        sdss_size=8, cfht_size=24))


def test_cli_train_then_predict_fits(lin_set, tmp_path, capsys):
    from data.cube import read_cube, write_cube
    run = tmp_path / "run"
    common = ["--data", str(lin_set), "--run-dir", str(run), "--width", "4",
              "--sdss-size", "8", "--cfht-size", "24", "--batch-unpaired", "2",
              "--batch-paired", "2", "--n-samples", "2", "--eager", "--no-progress"]
    assert train_cli.main(common + ["--step", "2", "--iterations", "1"]) == 2
    assert "needs a finished step 1" in capsys.readouterr().err
    assert train_cli.main(common + ["--step", "both", "--iterations", "1"]) == 0
    for path in ("config.json", "step1/finished.json", "step2/finished.json",
                 "step1/history.csv", "step2/history.csv", "samples/step2_0000001.png"):
        assert (run / path).is_file(), path

    out = tmp_path / "pred"
    src = lin_set / "paired_test" / "sdss"
    args = ["--run-dir", str(run), "--input", str(src), "--out", str(out), "--seed", "3",
            "--no-progress"]
    assert predict_cli.main(args + ["--direction", "sdss_to_cfht"]) == 0
    files = sorted(out.glob("*.fits"))
    assert [f.name for f in files] == sorted(p.name for p in src.glob("*.fits"))
    cube, wcs, hdr = read_cube(files[0])
    assert cube.shape == (5, 24, 24) and cube.dtype == np.float32
    assert np.isfinite(cube).all() and hdr["SURVEY"] == "cfht" and hdr["NOISE"]
    assert hdr["PIXSCALE"] == pytest.approx(0.187)
    first = files[0].read_bytes()
    assert predict_cli.main(args + ["--direction", "sdss_to_cfht"]) == 0  # resumable
    assert "0 translated, 2 already done" in capsys.readouterr().out
    # The same seed gives the same noise whatever the batch.
    again = tmp_path / "again"
    assert predict_cli.main(["--run-dir", str(run), "--direction", "sdss_to_cfht",
                             "--input", str(src / "missing.fits"), "--out", str(again)]) == 2
    assert "missing.fits: no such file" in capsys.readouterr().err
    assert predict_cli.main(["--run-dir", str(run), "--direction", "sdss_to_cfht",
                             "--input", str(src / files[0].name), "--out", str(again),
                             "--seed", "3", "--batch-size", "1", "--no-progress"]) == 0
    # (equal up to float rounding: a batch of 1 may take another conv algorithm)
    np.testing.assert_allclose(read_cube(again / files[0].name)[0],
                               read_cube(files[0])[0], rtol=1e-4, atol=1e-5)
    assert files[0].read_bytes() == first

    back = tmp_path / "back"
    cfht_src = lin_set / "paired_test" / "cfht"
    assert predict_cli.main(["--run-dir", str(run), "--direction", "cfht_to_sdss",
                             "--input", str(cfht_src), "--out", str(back), "--no-noise",
                             "--no-progress"]) == 0
    cube, _, hdr = read_cube(sorted(back.glob("*.fits"))[0])
    assert cube.shape == (5, 8, 8) and hdr["SURVEY"] == "sdss" and not hdr["NOISE"]

    # One-line errors naming the bad file: wrong size, NaN pixels.
    capsys.readouterr()
    assert predict_cli.main(["--run-dir", str(run), "--direction", "sdss_to_cfht",
                             "--input", str(cfht_src), "--out", str(tmp_path / "x"),
                             "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs 8x8" in err and str(cfht_src) in err
    bad_cube, bad_wcs, bad_hdr = read_cube(sorted(src.glob("*.fits"))[0])
    bad_cube[2, 3, 3] = np.nan
    bad = write_cube(tmp_path / "bad" / "nan.fits", bad_cube, bad_hdr)
    assert predict_cli.main(["--run-dir", str(run), "--direction", "sdss_to_cfht",
                             "--input", str(bad), "--out", str(tmp_path / "y"),
                             "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "nan.fits" in err and "NaN" in err and "band r" in err


def test_nan_in_a_cube_ends_the_process_with_one_line(lin_set, tmp_path):
    # Issue 14 item 1: the error was printed, then the process never exited (tf.data's
    # iterator destructor waited for in-flight numpy_function reads that waited for the
    # GIL). A fresh process, as a user runs it; it must end, exit 2, within the timeout.
    from data.cube import read_cube, write_cube
    data = tmp_path / "data"
    shutil.copytree(lin_set, data)
    victim = sorted((data / "unpaired" / "sdss").glob("*.fits"))[0]
    cube, _, hdr = read_cube(victim)
    cube[2, 3, 3] = np.nan
    write_cube(victim, cube, hdr)
    cmd = [sys.executable, "-m", "noise_gan.train", "--data", str(data), "--run-dir",
           str(tmp_path / "run"), "--width", "4", "--noise-hidden", "4", "--sdss-size", "8",
           "--cfht-size", "24", "--batch-unpaired", "2", "--batch-paired", "2",
           "--n-samples", "2", "--iterations", "2", "--eager"]
    try:
        out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail("noise_gan.train did not exit within 120 s after a NaN cube")
    assert out.returncode == 2, out.stderr[-2000:]
    # TensorFlow's start-up lines are hidden: the error is stderr's only line.
    assert out.stderr.splitlines() == [
        f"error: {victim}: 1 NaN/inf pixel(s) (first in band r)"], out.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # a failed start leaves no files


def test_losses_on_hand_computed_cases():
    from noise_gan import losses as M
    zeros = tf.zeros((3, 5))  # D = 1/2 everywhere: -log(1/2) per band
    assert float(M.band_cross_entropy(zeros, 1.0, "sum")) == pytest.approx(5 * np.log(2))
    assert float(M.band_cross_entropy(zeros, 0.0, "mean")) == pytest.approx(np.log(2))
    assert float(M.discriminator_loss(zeros, zeros)) == pytest.approx(10 * np.log(2))
    big = tf.fill((2, 5), 30.0)  # confidently "real": non-saturating loss ~ 0
    assert float(M.generator_adversarial_loss(big)) == pytest.approx(0.0, abs=1e-9)
    assert float(M.mse(tf.ones((2, 4, 4, 1)), tf.zeros((2, 4, 4, 1)))) == 1.0
    # eq. 6 regridding: a constant CFHT-grid image becomes ratio x constant on 8 px.
    y = tf.fill((1, 24, 24, 1), 2.0)
    np.testing.assert_allclose(M.to_sdss_grid(y, 8), np.full((1, 8, 8, 1), 2.0 * 0.396 / 0.187),
                               rtol=1e-6)
    x = tf.fill((1, 8, 8, 1), 2.0 * 0.396 / 0.187)
    assert float(M.pseudo_identity_loss(x, y, y, x, 8)) == pytest.approx(0.0, abs=1e-10)
