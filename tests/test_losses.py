import numpy as np
import pytest
import tensorflow as tf

from pix2wgan import losses


def test_gradient_penalty_of_linear_critic_is_hand_computed():
    # D(x) = mean over a 1x1 "patch" of sum(w * x): its gradient is w everywhere, so the
    # penalty is (||w|| - 1)^2 whatever alpha, real and fake are.
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(1, 4, 4, 3)).astype("float32"))

    def critic(x):
        return tf.reduce_sum(w * x, axis=[1, 2, 3])[:, None, None, None]

    real = tf.constant(rng.normal(size=(5, 4, 4, 3)).astype("float32"))
    fake = tf.constant(rng.normal(size=(5, 4, 4, 3)).astype("float32"))
    alpha = tf.constant(rng.uniform(size=(5, 1, 1, 1)).astype("float32"))
    expected = (np.sqrt(np.sum(w.numpy() ** 2) + losses.GP_EPS) - 1.0) ** 2
    got = losses.gradient_penalty(critic, real, fake, alpha).numpy()
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_per_sample():
    # critic(x) = c_i * sum(x_i) with a different slope per sample: norms differ, and the
    # penalty is the mean of per-sample terms, not a term of the batch norm.
    c = tf.constant([0.5, 2.0])

    def critic(x):
        return (c * tf.reduce_sum(x, axis=[1, 2, 3]))[:, None, None, None]

    x = tf.ones((2, 2, 2, 1))
    alpha = tf.fill((2, 1, 1, 1), 0.3)
    n = 4  # pixels: gradient entries per sample
    expected = np.mean([(np.sqrt(n * 0.25) - 1) ** 2, (np.sqrt(n * 4.0) - 1) ** 2])
    got = losses.gradient_penalty(critic, x, x, alpha).numpy()
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_finite_at_zero_gradient():
    critic = lambda x: tf.zeros((tf.shape(x)[0], 1, 1, 1)) + 0.0 * x[:, :1, :1, :1]
    x = tf.Variable(tf.ones((2, 2, 2, 1)))
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, x, x, tf.fill((2, 1, 1, 1), 0.5))
    grad = tape.gradient(gp, x)
    assert gp.numpy() == pytest.approx(1.0, abs=1e-4)
    assert grad is None or np.all(np.isfinite(grad.numpy()))


def test_interpolation_is_eq5():
    real, fake = tf.fill((1, 1, 1, 1), 2.0), tf.fill((1, 1, 1, 1), -1.0)
    x = losses.interpolate(real, fake, tf.fill((1, 1, 1, 1), 0.25)).numpy()
    assert x.item() == pytest.approx(0.25 * 2.0 + 0.75 * -1.0)


def test_wgan_losses_signs_and_l1_weight():
    real = tf.fill((2, 3, 3, 1), 1.0)
    fake = tf.fill((2, 3, 3, 1), -2.0)
    # critic: D(fake) - D(real)
    assert losses.wgan_critic_loss(real, fake).numpy() == pytest.approx(-3.0)
    img, tgt = tf.zeros((2, 4, 4, 3)), tf.fill((2, 4, 4, 3), 0.5)
    total, adv, l1 = losses.wgan_generator_loss(fake, img, tgt, l1_weight=100.0)
    assert adv.numpy() == pytest.approx(2.0)
    assert l1.numpy() == pytest.approx(0.5)
    assert total.numpy() == pytest.approx(2.0 + 50.0)


def test_bce_losses_match_keras():
    logits = tf.constant(np.linspace(-3, 3, 18, dtype="float32").reshape(2, 3, 3, 1))
    bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    ones, zeros = tf.ones_like(logits), tf.zeros_like(logits)
    expected_d = 0.5 * (bce(ones, logits) + bce(zeros, -logits))
    assert losses.bce_critic_loss(logits, -logits).numpy() == pytest.approx(
        expected_d.numpy(), rel=1e-5)
    img = tf.zeros((2, 4, 4, 3))
    total, adv, l1 = losses.bce_generator_loss(logits, img, img + 0.1, l1_weight=10.0)
    assert adv.numpy() == pytest.approx(bce(ones, logits).numpy(), rel=1e-5)
    assert total.numpy() == pytest.approx(adv.numpy() + 1.0, rel=1e-5)
