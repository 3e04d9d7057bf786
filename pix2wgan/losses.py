"""Loss functions of Luo et al. §3 (eqs. 1-7): pure tensor functions, wired together by
the models (``pix2wgan.model``, ``cascade.model``).

Conventions: critic outputs are patch maps ``[B, h, w, 1]`` (scores or logits); images are
``[B, H, W, C]`` in [-1, 1]. Every function returns scalars (float32 tensors); models log
each term separately.
"""
from __future__ import annotations

import tensorflow as tf

#: Luo eq. 3: weight of the L1 structural term.
L1_WEIGHT = 100.0
#: Luo eq. 7: weight of the gradient penalty.
GP_WEIGHT = 10.0
#: Inside the square root of the gradient norm, so its gradient is finite at 0.
GP_EPS = 1e-10


def critic_score(patch_map):
    """Average a ``[B, h, w, 1]`` patch map to one score per sample, ``[B]`` (§3.1)."""
    return tf.reduce_mean(tf.cast(patch_map, tf.float32), axis=[1, 2, 3])


def l1_loss(fake, target):
    """Structural loss ``L1(x_enhanced, x_high)``: mean absolute error over all pixels."""
    return tf.reduce_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(fake, tf.float32)))


# --- Wasserstein GAN with gradient penalty (Pix2WGAN, Luo eqs. 3-7) -----------------------

def wgan_generator_loss(fake_scores, fake, target, l1_weight=L1_WEIGHT):
    """Luo eq. 3: ``-D(x_enhanced, x_low) + lambda * L1(x_enhanced, x_high)``.

    Returns:
        ``(total, adversarial, l1)`` scalars.
    """
    adv = -tf.reduce_mean(critic_score(fake_scores))
    l1 = l1_loss(fake, target)
    return adv + l1_weight * l1, adv, l1


def wgan_critic_loss(real_scores, fake_scores):
    """Wasserstein term of Luo eq. 7, the critic's estimate of ``-W(real, fake)``.

    Luo eq. 4 prints ``D(x_high) - D(x_enhanced)``; minimising that while the generator
    minimises ``-D(x_enhanced)`` (Luo eq. 3) would push both players the same way, so we
    use the sign of Gulrajani et al. (2017): the critic minimises ``D(fake) - D(real)``.
    """
    return tf.reduce_mean(critic_score(fake_scores)) - tf.reduce_mean(
        critic_score(real_scores))


def interpolate(real, fake, alpha):
    """Luo eq. 5: ``x_interp = alpha * x_high + (1 - alpha) * x_enhanced``.

    Args:
        alpha: ``[B, 1, 1, 1]`` float32, one U(0, 1) draw per sample.
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    return alpha * real + (1.0 - alpha) * fake


def interpolate_gradient_norms(critic_fn, x, scale=None, eps=GP_EPS):
    """Per-sample ``||grad_x D(x)||_2``, ``[B]`` float32, safe under reduced precision.

    Under ``mixed_float16`` the critic back-propagates in float16 (max 65504, smallest
    subnormal 6e-8), so two things are done in float32 / with scaling:

    * the norm: gradients are cast to float32 *before* squaring and summing (squares of
      fp16 gradients underflow below ~2e-4 and their sum over 49k pixels of a 128 px
      RGB image overflows for per-pixel gradients above ~1.2);
    * the backward pass itself: the scores are multiplied by ``scale`` before
      differentiating and the float32 gradient divided by it after, as loss scaling does
      for the weight gradients. Pass the optimizer's dynamic loss scale (underflow
      protection; an overflow makes the loss non-finite, the optimizer skips the step and
      halves the scale), or ``None`` (float32 / bfloat16: no scaling needed).

    Args:
        critic_fn: ``[B, H, W, C]`` images -> ``[B, ...]`` scores (averaged per sample).
        x: ``[B, H, W, C]`` points at which to differentiate (cast to float32).
        scale: scalar loss scale, or ``None``.
        eps: added inside the square root (the norm is not differentiable at 0).
    """
    x = tf.cast(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = critic_score(critic_fn(x))
        if scale is not None:
            scores = scores * tf.cast(scale, tf.float32)
    grads = tf.cast(tape.gradient(scores, x), tf.float32)
    if scale is not None:
        grads = grads / tf.cast(scale, tf.float32)
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + eps)


def gradient_penalty(critic_fn, real, fake, alpha, eps=GP_EPS, scale=None):
    """Luo eq. 6: ``E[(||grad_x D(x_interp)||_2 - 1)^2]``, the norm taken per sample.

    Args:
        critic_fn: maps ``[B, H, W, C]`` images to ``[B, ...]`` scores; the condition
            ``x_low`` is bound inside it. Scores are averaged per sample (``critic_score``)
            before differentiating, so the penalty constrains the scalar critic.
        real, fake: ``[B, H, W, C]`` target and generated images.
        alpha: ``[B, 1, 1, 1]`` interpolation weights in (0, 1).
        eps: added inside the square root (the norm is not differentiable at 0).
        scale: loss scale for the inner gradient under fp16 (see
            :func:`interpolate_gradient_norms`); ``None`` in float32 / bfloat16.

    Returns:
        scalar float32 penalty: the mean over this call's ``B`` samples (a distributed
        step divides it by the replica count, see ``pix2wgan.model.global_mean``).
    """
    norms = interpolate_gradient_norms(critic_fn, interpolate(real, fake, alpha),
                                       scale=scale, eps=eps)
    return tf.reduce_mean(tf.square(norms - 1.0))


# --- classic pix2pix (Luo eqs. 1-2) ----------------------------------------------------

def _bce(logits, label):
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), label)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                  logits=logits))


def bce_generator_loss(fake_logits, fake, target, l1_weight=L1_WEIGHT):
    """Luo eq. 1: ``BCE(D(x_enhanced, x_low), 1) + lambda * L1``, BCE averaged over
    patches.

    Returns:
        ``(total, adversarial, l1)`` scalars.
    """
    adv = _bce(fake_logits, 1.0)
    l1 = l1_loss(fake, target)
    return adv + l1_weight * l1, adv, l1


def bce_critic_loss(real_logits, fake_logits):
    """Luo eq. 2: ``(BCE(D(x_high, x_low), 1) + BCE(D(x_enhanced, x_low), 0)) / 2``."""
    return 0.5 * (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0))
