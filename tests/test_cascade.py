"""Cascade Pix2WGAN end to end on a tiny hand-made dataset (64 px, width 4)."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from cascade import predict as predict_cli
from cascade import train as train_cli
from cascade.config import CascadeConfig
from cascade.data import degrade, make_triplets
from cascade.trainer import build, load_cascade, run_state, train
from data import pipeline
from tests.conftest import eagerly
from tests.fakes import make_fake

TINY = dict(width=4, image_size=64, batch_size=2, n_samples=2)
NETS = ("g1", "d1", "g2", "d2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_fake(tmp_path_factory.mktemp("ds") / "tiny", size=64, n_train=6, n_test=2)


def _cfg(data, **kw):
    return CascadeConfig(data=str(data), **{**TINY, **kw})


def _nets(model):
    s1, s2 = model.stage1, model.stage2
    return dict(zip(NETS, (s1.generator, s1.critic, s2.generator, s2.critic)))


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """One one-epoch run (6 images = 1 iteration of 3 critic batches of 2)."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    with eagerly():
        return run_dir, train(_cfg(tiny, epochs=1), run_dir, verbose=0)


def test_shapes_and_chain():
    model = build(CascadeConfig(width=4, image_size=64))
    x = tf.random.uniform((2, 64, 64, 3), -1, 1)
    assert model.bridge(x).shape == (2, 64, 64, 3)
    y = model(x)
    assert y.shape == (2, 64, 64, 3) and float(tf.reduce_max(tf.abs(y))) <= 1.0
    np.testing.assert_allclose(y, model.stage2.generator(model.stage1.generator(x)),
                               atol=1e-6)
    assert model.stage1.critic([x, x]).shape[0] == 2


def test_triplets_stay_aligned_under_augmentation(tiny):
    kw = dict(training=True, seed=5, image_size=64)
    ds, _ = make_triplets(tiny, "train", "sdss", "decals", "hsc", 3, **kw)
    triplets = list(ds)  # one epoch (epochs=(0, 1))
    to_hsc = list(pipeline.make_dataset(tiny, "train", "sdss", "hsc", 3, **kw))
    to_dec = list(pipeline.make_dataset(tiny, "train", "sdss", "decals", 3, **kw))
    assert len(triplets) == len(to_hsc) == 2
    for (s, d, h), (s2, h2), (s3, d3) in zip(triplets, to_hsc, to_dec):
        # same galaxies in the same order, with the same flip/rotation, in all three
        np.testing.assert_array_equal(s, s2)
        np.testing.assert_array_equal(s, s3)
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(d, d3)
        assert not np.array_equal(d, h)


def test_degrade_halves_resolution_and_adds_noise():
    x = tf.random.uniform((1, 32, 32, 3), -1, 1, seed=1)
    clean = degrade(x)
    assert clean.shape == x.shape
    # high frequencies are gone: neighbouring-pixel differences shrink a lot
    roughness = lambda t: float(tf.reduce_mean(tf.abs(t[:, 1:] - t[:, :-1])))
    assert roughness(clean) < 0.3 * roughness(x)
    noisy = degrade(x, tf.constant([1, 2]))
    assert 0.02 < float(tf.math.reduce_std(noisy - clean)) < 0.04
    np.testing.assert_array_equal(noisy, degrade(x, tf.constant([1, 2])))  # seeded


def test_two_step_train_updates_all_four_networks(tiny, tmp_path):
    cfg = _cfg(tiny, epochs=1, n_train=6)
    model, fresh = build(cfg), build(cfg)
    ds, _ = make_triplets(tiny, "train", "sdss", "decals", "hsc", 6, training=True, seed=0,
                        image_size=64)
    batch = next(iter(ds))
    logs = [model.train_step(batch) for _ in range(2)]
    for k, v in logs[-1].items():
        assert np.isfinite(float(v)), k
    for name, net in _nets(model).items():
        init = _nets(fresh)[name]
        moved = [not np.allclose(a.numpy(), b.numpy()) for a, b in
                 zip(net.trainable_variables, init.trainable_variables)]
        assert sum(moved) >= 0.9 * len(moved), name
    s1, s2 = model.stage1, model.stage2
    assert int(s1.d_optimizer.iterations) == int(s2.d_optimizer.iterations) == 2 * 3
    assert int(s1.g_optimizer.iterations) == int(s2.g_optimizer.iterations) == 2


def test_stage2_grad_flag_gives_g1_a_second_update(tiny):
    ds, _ = make_triplets(tiny, "train", "sdss", "decals", "hsc", 6, training=True, seed=0,
                        image_size=64)
    batch = next(iter(ds))
    on = build(_cfg(tiny, stage2_grad=True))
    logs = on.train_step(batch)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert int(on.stage1.g_optimizer.iterations) == 2  # own loss + G2's loss through G1
    assert int(on.stage2.g_optimizer.iterations) == 1


def test_run_writes_outputs_and_resumes(run, tiny, tmp_path, eager):
    src, first = run
    hist = pd.read_csv(src / "history.csv")
    for col in ("g1_loss", "d1_loss", "g2_loss", "d2_gp", "val_g1_l1", "val_g2_l1"):
        assert np.all(np.isfinite(hist[col])), col
    assert (src / "g1.keras").is_file() and (src / "g2.keras").is_file()
    assert json.loads((src / "config.json").read_text())["bridge"] == "decals"
    from PIL import Image
    grid = np.asarray(Image.open(src / "samples" / "epoch_0001.png"))
    assert grid.shape[1] == 4 * (64 + 2) + 2  # SDSS | pseudo-DECaLS | pseudo-HSC | HSC
    # resume: the restored state equals the saved one, then epochs extend
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    again = build(_cfg(tiny))
    assert run_state(again, run_dir).restore() == 1
    for name, net in _nets(first).items():
        for a, b in zip(net.get_weights(), _nets(again)[name].get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(first.stage2.d_optimizer.variables, again.stage2.d_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    resumed = train(_cfg(tiny, epochs=2, width=8), run_dir, resume=True, verbose=0)
    assert resumed.stage1.generator.get_layer("enc1_conv").filters == 4
    assert list(pd.read_csv(run_dir / "history.csv")["epoch"]) == [1, 2]
    assert int(resumed.stage2.g_optimizer.iterations) == 2


def test_degraded_hsc_bridge_feeds_training(tiny):
    ds, _ = make_triplets(tiny, "train", "sdss", "degraded-hsc", "hsc", 6, training=True,
                          seed=0, image_size=64)
    sdss, mid, hsc = next(iter(ds))
    assert mid.shape == hsc.shape and not np.array_equal(mid, hsc)
    # the bridge is the degraded HSC of the same galaxy: close to HSC at low frequency
    assert float(tf.reduce_mean(tf.abs(degrade(hsc) - mid))) < 0.05
    model = build(_cfg(tiny, bridge="degraded-hsc"))
    logs = model.train_step((sdss, mid, hsc))
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_predict_cli_end_to_end_through_g2_of_g1(run, tiny, tmp_path, capsys):
    run_dir, _ = run
    inputs = tiny / "test" / "sdss"
    out = tmp_path / "pred"
    assert predict_cli.main(["--model", str(run_dir), "--input", str(inputs),
                             "--out", str(out)]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert made == sorted(p.stem + ".png" for p in inputs.iterdir())
    from PIL import Image
    g1, g2 = load_cascade(run_dir)
    x = np.asarray(Image.open(inputs / (made[0][:-4] + ".jpg")), np.float32)
    y = g2(g1((x[None] - 127.5) / 127.5, training=False), training=False).numpy()[0]
    img = np.asarray(Image.open(out / made[0]))
    assert np.abs(np.clip(np.rint(y * 127.5 + 127.5), 0, 255) - img).max() <= 1
    capsys.readouterr()
    assert predict_cli.main(["--model", str(run_dir), "--input", str(inputs),
                             "--out", str(out)]) == 0
    assert "0 converted, 2 already done" in capsys.readouterr().out
    assert predict_cli.main(["--model", str(tmp_path / "nope"), "--input", str(inputs),
                             "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--bridge", "cfht"], "invalid choice: 'cfht'"),
    (["--source", "decals", "--bridge", "decals"], "three different surveys"),
    (["--bridge", "degraded-hsc", "--target", "decals"], "needs --target hsc"),
])
def test_train_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_train_cli_one_line_errors(tmp_path, capsys):
    assert train_cli.main(["--data", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
