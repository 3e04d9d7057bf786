"""Pix2WGAN end to end on a tiny hand-made dataset (64 px, width 4)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.layout import REPO_ROOT
from pix2wgan import predict as predict_cli
from pix2wgan import train as train_cli
from pix2wgan.config import Pix2WGANConfig
from pix2wgan.trainer import build, load_generator, run_state, train
from tests.fakes import make_fake

TINY = dict(width=4, image_size=64, batch_size=2, n_samples=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_fake(tmp_path_factory.mktemp("ds") / "tiny", size=64, n_train=12, n_test=4)


def _cfg(data, **kw):
    return Pix2WGANConfig(data=str(data), **{**TINY, **kw})


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """One two-epoch Pix2WGAN run shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    model = train(_cfg(tiny, epochs=2), run_dir, verbose=0)
    return run_dir, model


def _assert_trained(model, cfg, run_dir, epochs):
    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist["epoch"]) == list(range(1, epochs + 1))
    for col in ["g_loss", "g_l1", "d_loss", "val_g_l1"]:
        assert np.all(np.isfinite(hist[col])), col
    # Nearly every weight tensor of both networks moved away from a fresh build
    # (same seed and initialiser).
    fresh = build(cfg)
    for net in ("generator", "critic"):
        trained = getattr(model, net).trainable_variables
        init = getattr(fresh, net).trainable_variables
        moved = [not np.allclose(a.numpy(), b.numpy()) for a, b in zip(trained, init)]
        assert sum(moved) >= 0.9 * len(moved), net
    return hist


def test_wgan_run_trains_and_writes_its_outputs(run, tiny):
    run_dir, model = run
    hist = _assert_trained(model, _cfg(tiny, epochs=2), run_dir, 2)
    assert hist["lr"].iloc[1] == pytest.approx(2e-4 / 1.00004)  # §4.2 decay per epoch
    assert (run_dir / "generator.keras").is_file()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png"]
    assert json.loads((run_dir / "config.json").read_text())["loss"] == "wgan-gp"
    # n_critic = 3: 12 images = 2 steps of 3 critic batches of 2, per epoch
    assert int(model.g_optimizer.iterations) == 2 * 2
    assert int(model.d_optimizer.iterations) == 3 * 2 * 2


def test_bce_pix2pix_baseline_trains(tiny, tmp_path):
    cfg = _cfg(tiny, loss="bce", epochs=1)
    model = train(cfg, tmp_path / "run", verbose=0)
    _assert_trained(model, cfg, tmp_path / "run", 1)
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 6


@pytest.mark.parametrize("precision, dtype", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_mixed_precision_trains_with_finite_losses_and_predicts(tiny, tmp_path, precision,
                                                                dtype, eager):
    import keras
    try:
        model = train(_cfg(tiny, epochs=1, precision=precision), tmp_path / "run",
                      verbose=0)
        assert model.generator.get_layer("enc1_conv").compute_dtype == dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert np.all(np.isfinite(hist[["g_loss", "d_loss", "d_gp"]].to_numpy()))
    # predict writes the same layout as for a float32 model: one uint8 PNG per input
    inputs = tiny / "test" / "decals"
    assert predict_cli.main(["--model", str(tmp_path / "run"), "--input", str(inputs),
                             "--out", str(tmp_path / "pred")]) == 0
    from PIL import Image
    made = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert made == sorted(p.stem + ".png" for p in inputs.iterdir())
    img = np.asarray(Image.open(tmp_path / "pred" / made[0]))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8


def test_same_seed_same_weights_other_seed_other_weights(run, tiny, tmp_path):
    """Same seed, same run: a compiled 1-epoch training is bit-identical to the shared
    2-epoch run after its first epoch (its ckpt-1 restored), on CPU without op
    determinism (initialisers, dropout and each epoch's data seeded by the config's
    seed); another seed starts elsewhere. (tests/test_resume.py compares eager runs of
    Pix2WGAN and the cascade variable by variable, optimizers and seeds included.)"""
    model = train(_cfg(tiny, epochs=1), tmp_path / "a", verbose=0)
    got = _weights(model.generator) + _weights(model.critic)
    first = build(_cfg(tiny, epochs=2))
    run_state(first, run[0]).checkpoint.restore(
        str(run[0] / "checkpoints" / "ckpt-1")).assert_existing_objects_matched()
    want = _weights(first.generator) + _weights(first.critic)
    assert all(np.array_equal(x, y) for x, y in zip(got, want))
    other = build(_cfg(tiny, seed=1))
    assert not all(np.array_equal(x, y) for x, y in zip(
        got, _weights(other.generator) + _weights(other.critic)))


def test_resume_restores_state_and_keeps_saved_architecture(run, tiny, tmp_path):
    src_dir, first = run
    run_dir = tmp_path / "copy"
    shutil.copytree(src_dir, run_dir)
    # What a fresh process does: rebuild from the config, restore the checkpoint.
    again = build(_cfg(tiny, epochs=2))
    assert run_state(again, run_dir).restore() == 2
    for a, b in zip(_weights(first.generator) + _weights(first.critic),
                    _weights(again.generator) + _weights(again.critic)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.d_optimizer.variables, again.d_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Resume with a different --width: the saved architecture wins, epochs extend.
    resumed = train(_cfg(tiny, epochs=3, width=8), run_dir, resume=True, verbose=0)
    assert resumed.generator.get_layer("enc1_conv").filters == 4
    assert list(pd.read_csv(run_dir / "history.csv")["epoch"]) == [1, 2, 3]
    assert int(resumed.g_optimizer.iterations) == 3 * 2


def test_history_rows_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    # Issue 14 item 12: a kill between the history row and the checkpoint wrote the
    # epoch-3 row, then --resume from ckpt-2 wrote epoch 3 again.
    from common.callbacks import HistoryCSV
    path = tmp_path / "history.csv"
    path.write_text("epoch,g_loss\n1,0.5\n2,0.4\n3,0.3\n")
    log = HistoryCSV(path, done=2)
    assert path.read_text() == "epoch,g_loss\n1,0.5\n2,0.4\n"
    log.on_epoch_end(2, {"g_loss": 0.25, "new_key": 1.0})  # Keras' epoch 2 is our 3rd
    assert list(pd.read_csv(path)["epoch"]) == [1, 2, 3]
    assert pd.read_csv(path)["g_loss"].iloc[-1] == 0.25
    HistoryCSV(path, done=0)  # a new run starts a new file
    assert not path.exists()
    log = HistoryCSV(path, done=0, unit="iteration", per_epoch=50)
    log.on_epoch_end(1, {"a": 1.0})
    assert path.read_text() == "iteration,a\n100,1\n"


def _cli_args(tiny, run, epochs):
    return ["--data", str(tiny), "--out", str(run), "--epochs", str(epochs), "--width", "4",
            "--image-size", "64", "--batch-size", "2", "--n-critic", "1"]


def test_kill_during_epoch_two_then_resume_finishes(tmp_path):
    # Enough steps per epoch that a SIGKILL lands inside epoch 2.
    data = make_fake(tmp_path / "ds", size=64, n_train=120, n_test=2)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "pix2wgan.train", *_cli_args(data, run, 2)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = run / "checkpoints" / "ckpt-1.index"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "epoch 1 never finished"
    assert not (run / "checkpoints" / "ckpt-2.index").exists(), "kill came too late"
    assert not (run / "generator.keras").exists()

    out = subprocess.run(cmd + ["--resume"], env=env, cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "starting at epoch 2 of 2" in out.stdout
    hist = pd.read_csv(run / "history.csv")
    assert list(hist["epoch"]) == [1, 2]  # 1-based, as Keras prints and ckpt-N counts
    assert (run / "generator.keras").is_file()
    assert out.stdout.splitlines()[-1].startswith(f"wrote {run}: generator.keras (epoch 2)")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--source", "galex"], "invalid choice: 'galex'"),
    (["--source", "cfht"], "invalid choice: 'cfht'"),  # Lin et al.'s FITS survey
    (["--batch-size", "-3"], "--batch-size must be >= 1"),
])
def test_train_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_config_refuses_a_fits_survey_before_writing(tmp_path, tiny):
    # The config check itself (what a resumed or programmatic run goes through).
    with pytest.raises(ValueError, match="--source must be one of the JPEG surveys"):
        Pix2WGANConfig(source="cfht").validate()
    with pytest.raises(ValueError, match="--target must be one of the JPEG surveys"):
        train(_cfg(tiny, target="cfht"), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()  # no config.json left behind


def test_train_cli_errors_are_one_line(tmp_path, tiny, capsys):
    assert train_cli.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and "nope" in err
    # resume with no run
    assert train_cli.main(_cli_args(tiny, tmp_path / "r2", 1) + ["--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_train_then_predict_cli_end_to_end(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_cli.main(_cli_args(tiny, run, 1)) == 0
    assert (run / "generator.keras").is_file()
    out = tmp_path / "pred"
    inputs = tiny / "test" / "decals"
    assert predict_cli.main(["--model", str(run), "--input", str(inputs),
                             "--out", str(out), "--batch-size", "3"]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert made == sorted(p.stem + ".png" for p in inputs.iterdir())
    from PIL import Image
    img = np.asarray(Image.open(out / made[0]))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    # Matches the generator applied in memory (deterministic inference).
    gen = load_generator(run)
    x = np.asarray(Image.open(inputs / (Path(made[0]).stem + ".jpg")), np.float32)
    y = gen((x[None] - 127.5) / 127.5, training=False).numpy()[0]
    expected = np.clip(np.rint(y * 127.5 + 127.5), 0, 255)
    assert np.abs(expected - img).max() <= 1
    # A rerun skips what exists.
    capsys.readouterr()
    assert predict_cli.main(["--model", str(run), "--input", str(inputs),
                             "--out", str(out)]) == 0
    assert "0 converted, 4 already done" in capsys.readouterr().out


def test_predict_reports_bad_inputs(run, tiny, tmp_path, capsys):
    run, _ = run
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert predict_cli.main(["--model", str(run), "--input", str(bad),
                             "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.jpg" in err and err.count("\n") == 0
    assert not (tmp_path / "o" / "broken.png").exists()
    assert predict_cli.main(["--model", str(tmp_path / "missing.keras"), "--input",
                             str(tiny / "test" / "decals"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.keras" in capsys.readouterr().err
