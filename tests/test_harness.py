"""The training harness of every model family (common/training.py, common/callbacks.py),
tested once on a toy model: resume equals an uninterrupted run, the resume rules and their
messages, and the one optimizer factory. Each family's trainer keeps being tested through
it by tests/test_resume.py, test_pix2wgan.py, test_cascade.py and test_noise_gan*.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common import callbacks, training

#: Batches of one Keras epoch; the toy's rate halves every ``STEPS`` updates.
STEPS = 2


@dataclass
class ToyConfig:
    """The toy's "architecture" (``width``) and its run field (``epochs``)."""
    width: int = 3
    epochs: int = 2
    lr: float = 0.05
    data: str = ""

    def validate(self):
        return self


class Toy(keras.Model):
    """Two dense layers on ``[B, 4, 4, 1]`` inputs, fitted to ``[B, 1]`` targets by a
    custom ``train_step`` with its own optimizer (as the GANs of this project)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                     keras.layers.Dense(width, activation="relu"),
                                     keras.layers.Dense(1)])
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, optimizer):
        super().compile()
        self.opt = optimizer
        optimizer.build(self.net.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.net(x) - y))
        grads = tape.gradient(loss, self.net.trainable_variables)
        self.opt.apply(grads, self.net.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def _batches(skip: int) -> tf.data.Dataset:
    """A fixed infinite stream of ``[2, 4, 4, 1]`` batches, from batch ``skip`` on."""
    x = tf.random.stateless_normal((16, 2, 4, 4, 1), seed=(1, 2))
    y = tf.reduce_mean(x, axis=(2, 3, 4))[..., None]
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().skip(skip)


def train_toy(cfg: ToyConfig, run_dir: Path, resume: bool = False,
              per_epoch: int = 1) -> Toy:
    """The harness as a trainer uses it. ``per_epoch`` 1: counts are epochs of ``STEPS``
    batches; ``per_epoch`` = ``STEPS``: counts are iterations (as noise_gan)."""
    run_dir = Path(run_dir)
    started = (run_dir / training.CHECKPOINTS / "checkpoint").is_file()
    training.refuse_started(run_dir, "a run" if started else None, resume)
    cfg = training.resume_config(cfg, run_dir, resume, ("epochs",))
    training.seed_everything(0)
    model = Toy(cfg.width)
    model.compile(training.make_adam(keras.optimizers.schedules.ExponentialDecay(
        cfg.lr, decay_steps=STEPS, decay_rate=0.5, staircase=True), clipnorm=1.0))
    state = training.RunState(run_dir, net=model.net, optimizer=model.opt)
    done = state.restore() if resume else 0
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        training.save_config(cfg, run_dir)
    unit = "epoch" if per_epoch == 1 else "iteration"
    training.fit_run(model, _batches(done * STEPS // per_epoch), state,
                     run_dir / training.HISTORY, run_dir / "logs", done=done,
                     total=cfg.epochs * per_epoch, steps_per_epoch=STEPS,
                     per_epoch=per_epoch, unit=unit,
                     extra=[callbacks.LogLearningRate(model.opt)], verbose=0)
    return model


def _state(model: Toy) -> list[np.ndarray]:
    return [np.array(v) for v in model.net.variables + model.opt.variables]


@pytest.mark.parametrize("per_epoch", [1, STEPS])
def test_resumed_run_equals_uninterrupted(tmp_path, per_epoch):
    """1 epoch, then --resume for 1 more == 2 epochs in one go: weights, optimizer
    iterations and moments, history rows (each count once, even after a kill between a
    history row and its checkpoint) and the logged rates."""
    full = train_toy(ToyConfig(epochs=2), tmp_path / "full", per_epoch=per_epoch)
    train_toy(ToyConfig(epochs=1), tmp_path / "resumed", per_epoch=per_epoch)
    with open(tmp_path / "resumed" / training.HISTORY, "a") as fh:  # a row past ckpt-1
        fh.write(f"{2 * per_epoch},9,9\n")
    resumed = train_toy(ToyConfig(epochs=2), tmp_path / "resumed", resume=True,
                        per_epoch=per_epoch)
    assert int(full.opt.iterations) == int(resumed.opt.iterations) == 2 * STEPS
    for a, b in zip(_state(full), _state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    a = pd.read_csv(tmp_path / "full" / training.HISTORY)
    b = pd.read_csv(tmp_path / "resumed" / training.HISTORY)
    unit = "epoch" if per_epoch == 1 else "iteration"
    assert list(a.columns) == list(b.columns) == [unit, "loss", "lr"]
    assert a[unit].tolist() == b[unit].tolist() == [per_epoch, 2 * per_epoch]
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    # The rate of the next update, halved every STEPS updates (one Keras epoch).
    np.testing.assert_allclose(b["lr"], [0.025, 0.0125], rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / "resumed" / training.CHECKPOINTS).iterdir()
                  if p.suffix == ".index") == [f"ckpt-{per_epoch}.index",
                                               f"ckpt-{2 * per_epoch}.index"]


def test_resume_rules_and_their_messages(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="--resume: .* holds no run .*no checkpoint"):
        train_toy(ToyConfig(epochs=1), run, resume=True)
    train_toy(ToyConfig(epochs=1), run)
    with pytest.raises(FileExistsError, match="already holds a run: pass --resume to "
                                              "continue it, or choose another --run-dir"):
        train_toy(ToyConfig(epochs=2), run)
    capsys.readouterr()
    # The saved architecture wins; the run field (epochs) comes from the request.
    model = train_toy(ToyConfig(epochs=2, width=8), run, resume=True)
    assert model.net.layers[1].units == 3 and int(model.opt.iterations) == 2 * STEPS
    assert f"note: width=8 ignored: {run / training.CONFIG_FILE} says 3" in (
        capsys.readouterr().out)
    cfg = training.resume_config(ToyConfig(epochs=5, data=""), run, True, ("epochs", "data"))
    assert (cfg.epochs, cfg.width, cfg.data) == (5, 3, "")  # "" leaves data unset


def test_one_optimizer_factory():
    var = keras.Variable(np.ones(2, np.float32))
    plain = training.make_adam(1e-3, 0.5, 0.99)
    assert (plain.beta_1, plain.beta_2, plain.global_clipnorm) == (0.5, 0.99, None)
    assert callbacks.current_lr(plain) == pytest.approx(1e-3)
    # A schedule runs on the optimizer's own iteration count; fp16 wraps Adam in loss
    # scaling, whose iterations are the inner Adam's: a step skipped for a non-finite
    # gradient neither counts nor moves the rate.
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 1, 0.5, staircase=True)
    opt = training.make_adam(schedule, precision="fp16", clipnorm=5.0)
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert opt.inner_optimizer.global_clipnorm == 5.0
    opt.build([var])
    opt.apply([tf.ones(2)], [var])
    assert int(opt.iterations) == 1 and callbacks.current_lr(opt) == pytest.approx(5e-4)
    opt.apply([tf.constant([np.inf, 1.0])], [var])
    assert int(opt.iterations) == 1 and callbacks.current_lr(opt) == pytest.approx(5e-4)
    assert np.isfinite(var.numpy()).all()
