"""A plain conditional WGAN-GP training step in the style of the keras-io example
(``examples/generative/wgan_gp.py``): one ``tf.function`` holding a ``GradientTape``
loop, no tuning. It is the yardstick of ``bench_train.py``, not a model of the project.

Same networks as Pix2WGAN (common/layers.py), same losses (eqs. 3-7, λ = 100,
w_p = 10), same data per step (``n_critic`` critic batches stacked along axis 0). Like
keras-io, each critic update draws its fake inside its own tape, and the generator update
draws a fresh fake of the last batch; the gradient penalty is keras-io's (with α per
sample and the norm over ``[1, 2, 3]``, which keras-io now does too).
"""
from __future__ import annotations

import tensorflow as tf


def reference_step(generator, critic, g_opt, d_opt, *, n_critic=3, gp_weight=10.0,
                   l1_weight=100.0):
    """``step(x_low, x_high)``: one iteration on ``[n_critic * B, S, S, 3]`` batches in
    [-1, 1]; returns ``(d_loss, g_loss)``."""

    def score(patches):
        return tf.reduce_mean(tf.cast(patches, tf.float32), axis=[1, 2, 3])

    def gradient_penalty(low, real, fake):
        alpha = tf.random.uniform([tf.shape(real)[0], 1, 1, 1], 0.0, 1.0)
        interpolated = real + alpha * (fake - real)
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = score(critic([low, interpolated], training=True))
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-10)
        return tf.reduce_mean((norm - 1.0) ** 2)

    @tf.function
    def step(x_low, x_high):
        lows, highs = tf.split(x_low, n_critic), tf.split(x_high, n_critic)
        for low, real in zip(lows, highs):
            with tf.GradientTape() as tape:
                fake = generator(low, training=True)
                fake_logits = score(critic([low, fake], training=True))
                real_logits = score(critic([low, real], training=True))
                d_cost = tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
                d_loss = d_cost + gp_weight * gradient_penalty(low, real, fake)
            d_grads = tape.gradient(d_loss, critic.trainable_variables)
            d_opt.apply_gradients(zip(d_grads, critic.trainable_variables))
        with tf.GradientTape() as tape:
            fake = generator(lows[-1], training=True)
            g_adv = -tf.reduce_mean(score(critic([lows[-1], fake], training=True)))
            g_loss = g_adv + l1_weight * tf.reduce_mean(tf.abs(highs[-1] - fake))
        g_grads = tape.gradient(g_loss, generator.trainable_variables)
        g_opt.apply_gradients(zip(g_grads, generator.trainable_variables))
        return d_loss, g_loss

    return step


def reference_cascade_step(g1, d1, g2, d2, opts, *, n_critic=3, **kw):
    """The cascade read the same way: stage 1 (D1 x n_critic, G1), then stage 2 on the
    updated G1's pseudo-DECaLS (``training=False``, no gradient into G1); ``opts`` =
    (G1, D1, G2, D2) optimizers. ``step(sdss, decals, hsc)``."""
    s1 = reference_step(g1, d1, opts[0], opts[1], n_critic=n_critic, **kw)
    s2 = reference_step(g2, d2, opts[2], opts[3], n_critic=n_critic, **kw)

    @tf.function
    def step(sdss, decals, hsc):
        d1_loss, g1_loss = s1(sdss, decals)
        mid = tf.stop_gradient(g1(sdss, training=False))
        d2_loss, g2_loss = s2(mid, hsc)
        return d1_loss + d2_loss, g1_loss + g2_loss

    return step
