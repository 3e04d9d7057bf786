"""The tf.distribute path of Pix2WGAN on a CPU split into two logical devices.

TensorFlow fixes its logical devices when it first initialises them, and the rest of the
test session has long done so; the checks therefore run in a fresh Python process
(``_WORKER`` below), which prints one JSON line of results.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from data.layout import REPO_ROOT

_WORKER = textwrap.dedent(r'''
    import json, sys, tempfile, time
    T0 = time.time()
    from pathlib import Path
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from common import training
    from pix2wgan.config import Pix2WGANConfig
    from pix2wgan.layers import build_patch_critic, build_unet
    from pix2wgan.model import Pix2WGAN
    from pix2wgan.trainer import build, train
    from tests.fakes import make_fake

    out = {}
    B, N_CRITIC, S = 2, 2, 32           # per-replica batch, critic batches, image side
    mirrored = training.make_strategy("mirrored")
    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    out["replicas"] = mirrored.num_replicas_in_sync

    def make(strategy, jit=False):
        # Deterministic nets: no dropout, per-sample normalisation (batch norm would use
        # per-replica statistics and legitimately differ), constant alpha, plain SGD (Adam's
        # first step is ~lr * sign(g) and would hide a wrong gradient scale).
        with strategy.scope():
            keras.utils.set_random_seed(1)
            gen = build_unet(4, 3, dropout=0.0, norm="none", name="generator")
            critic = build_patch_critic(4, norm="layer", image_size=S, name="critic")
            m = Pix2WGAN(gen, critic, n_critic=N_CRITIC)
            m.alpha_fn = lambda n: tf.fill((n, 1, 1, 1), 0.3)
            m.compile(g_optimizer=keras.optimizers.SGD(0.05),
                      d_optimizer=keras.optimizers.SGD(0.05), jit_compile=jit)
        return m

    rng = np.random.default_rng(0)
    # One iteration at global batch 2B: n_critic critic batches of 2B images each.
    lows = rng.uniform(-1, 1, (N_CRITIC, 2 * B, S, S, 3)).astype("float32")
    highs = rng.uniform(-1, 1, (N_CRITIC, 2 * B, S, S, 3)).astype("float32")

    def one_device_batch(a):     # [k0 (2B), k1 (2B)]
        return a.reshape(-1, S, S, 3)

    def two_replica_batch(a):    # replica r gets [k0[rB:(r+1)B], k1[rB:(r+1)B]]
        return np.concatenate([a[k, r * B:(r + 1) * B] for r in range(2)
                               for k in range(N_CRITIC)])

    out["t_setup"] = time.time() - T0
    results = {}
    # The one-device reference is XLA-compiled through OneDeviceStrategy (the --strategy
    # default path on a GPU machine). XLA on *logical* CPU devices cannot place variables
    # of replica 1 (a known XLA limitation), so MirroredStrategy + XLA needs real GPUs.
    for name, strategy, arrange, jit in (("one", single, one_device_batch, True),
                                         ("two", mirrored, two_replica_batch, False)):
        m = make(strategy, jit)
        before = [w.copy() for w in m.get_weights()]
        ds = tf.data.Dataset.from_tensors((arrange(lows), arrange(highs)))
        hist = m.fit(ds, epochs=1, verbose=0).history
        results[name] = (hist, [w - b for w, b in zip(m.get_weights(), before)])
    (h1, d1), (h2, d2) = results["one"], results["two"]
    out["losses_one"] = {k: v[0] for k, v in h1.items()}
    out["losses_two"] = {k: v[0] for k, v in h2.items()}
    out["max_update"] = float(max(np.abs(d).max() for d in d1))
    out["max_update_diff"] = float(max(np.abs(a - b).max() for a, b in zip(d1, d2)))

    out["t_equiv"] = time.time() - T0
    # alpha: per sample, and independent across replicas sharing the seed state.
    with mirrored.scope():
        m = make(mirrored)
        m.alpha_fn = None
    per = mirrored.run(tf.function(lambda: m.draw_alpha(3)))
    a0, a1 = (t.numpy().ravel() for t in mirrored.experimental_local_results(per))
    out["alpha_differs"] = bool(not np.allclose(a0, a1))
    out["alpha_in_range"] = bool(((a0 > 0) & (a0 < 1)).all() and ((a1 > 0) & (a1 < 1)).all())

    # The trainer / CLI path: --strategy mirrored, paper-style nets (batch norm, dropout,
    # random alpha).
    out["t_alpha"] = time.time() - T0
    tmp = Path(tempfile.mkdtemp())
    data = make_fake(tmp / "ds", size=64, n_train=8, n_test=4)
    cfg = Pix2WGANConfig(data=str(data), width=4, image_size=64, batch_size=2,
                         n_critic=1, n_samples=2, epochs=1)
    tf.config.run_functions_eagerly(True)  # the step was compiled above; no second trace
    model = train(cfg, tmp / "run", verbose=0, strategy="mirrored")
    tf.config.run_functions_eagerly(False)
    fresh = build(cfg)
    out["trainer_moved"] = float(np.mean([
        not np.allclose(a, b) for a, b in zip(model.get_weights(), fresh.get_weights())]))
    import pandas as pd
    hist = pd.read_csv(tmp / "run" / "history.csv")
    out["trainer_finite"] = bool(np.isfinite(hist[["g_loss", "d_loss", "d_gp"]]).all().all())
    # 8 images / (2 per batch x 1 critic batch x 2 replicas) = 2 steps
    out["trainer_g_steps"] = int(model.g_optimizer.iterations.numpy())
    out["trainer_d_steps"] = int(model.d_optimizer.iterations.numpy())
    out["seconds"] = time.time() - T0
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def worker():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", _WORKER], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, (proc.stdout[-2000:] + proc.stderr[-4000:])
    return json.loads(line[len("RESULT "):])


def test_two_replicas_match_one_device_at_the_same_global_batch(worker):
    assert worker["replicas"] == 2
    one, two = worker["losses_one"], worker["losses_two"]
    for key in ("g_loss", "g_l1", "d_loss", "d_gp", "d_wasserstein"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key
    # SGD: the update is lr x gradient, so the gradient scale (global-batch mean, GP
    # included) is compared, not only its direction.
    assert worker["max_update"] > 1e-4
    assert worker["max_update_diff"] < 1e-3 * worker["max_update"] + 1e-6


def test_alpha_is_drawn_independently_on_each_replica(worker):
    assert worker["alpha_differs"] and worker["alpha_in_range"]


def test_trainer_mirrored_strategy_trains(worker):
    assert worker["trainer_finite"]
    assert worker["trainer_moved"] >= 0.9
    assert worker["trainer_g_steps"] == 2  # one update per global step, not per replica
    assert worker["trainer_d_steps"] == 2


def test_strategy_flags_are_checked():
    from common import training
    from pix2wgan import train as train_cli
    with pytest.raises(ValueError, match="unknown --strategy"):
        training.make_strategy("horovod")
    with pytest.raises(ValueError, match="GPU"):
        training.make_strategy("mirrored", gpus=3)  # no GPU in the test session
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--gpus", "2"])  # needs --strategy mirrored
    cfg, args = train_cli.parse_args(["--strategy", "mirrored", "--gpus", "2"])
    assert (args.strategy, args.gpus) == ("mirrored", 2)
