"""Pix2WGAN (Luo et al. §3.2): a pix2pix U-Net generator trained against a conditional
PatchGAN Wasserstein critic with gradient penalty; ``loss="bce"`` gives classic pix2pix.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from common import losses
from common.layers import build_patch_critic, build_unet


class Pix2WGAN(keras.Model):
    """The generator/critic pair, trained with ``fit``.

    ``fit`` feeds ``(x_low, x_high)`` batches, both ``[B, H, W, 3] float32 in [-1, 1]``.

    Update ratio (§4.2, "updating the generator once every three iterations of training
    the discriminator"): one critic iteration = one batch of ``batch_size``. Each
    ``train_step`` receives ``n_critic`` batches stacked along the batch axis, updates the
    critic once on each, then updates the generator once on the last. An epoch therefore
    still passes over every training image once, with ``n_critic`` critic updates per
    generator update and no data-dependent control flow in the compiled step.
    """

    def __init__(self, generator: keras.Model, critic: keras.Model, *, loss="wgan-gp",
                 n_critic=3, l1_weight=losses.L1_WEIGHT, gp_weight=losses.GP_WEIGHT,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.critic = generator, critic
        self.loss_kind = loss
        self.n_critic = n_critic if loss == "wgan-gp" else 1
        self.l1_weight, self.gp_weight = float(l1_weight), float(gp_weight)
        self.seed_generator = keras.random.SeedGenerator(seed)
        names = ["g_loss", "g_adv", "g_l1", "d_loss"]
        if loss == "wgan-gp":
            names += ["d_wasserstein", "d_gp"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    @classmethod
    def from_config_dataclass(cls, cfg) -> "Pix2WGAN":
        """Build the networks described by a ``Pix2WGANConfig``."""
        gen = build_unet(cfg.width, cfg.depth, dropout=cfg.dropout, name="generator")
        critic = build_patch_critic(cfg.width, norm=cfg.critic_norm, name="critic")
        return cls(gen, critic, loss=cfg.loss, n_critic=cfg.n_critic,
                   l1_weight=cfg.l1_weight, gp_weight=cfg.gp_weight, seed=cfg.seed,
                   name="pix2wgan")

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # Build slots now, so a checkpoint restores optimizer state before the first step.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.critic.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.generator(x, training=training)

    # --- one training iteration ----------------------------------------------------------
    # The loss helpers run inside the caller's tape, so Cascade Pix2WGAN (cascade/model.py)
    # reuses them for its stage-2 generator, whose input is itself a generator output.

    def critic_objective(self, x_low, x_high, x_fake):
        """Critic loss for real ``(x_low, x_high)`` and fake ``(x_low, x_fake)``, all
        ``[B, H, W, 3]`` in [-1, 1]; returns scalars (loss, wasserstein term, penalty)."""
        real = self.critic([x_low, x_high], training=True)
        fake = self.critic([x_low, x_fake], training=True)
        if self.loss_kind == "bce":
            return losses.bce_critic_loss(real, fake), tf.zeros(()), tf.zeros(())  # eq. 2
        wass = losses.wgan_critic_loss(real, fake)                      # eq. 4
        alpha = keras.random.uniform((tf.shape(x_low)[0], 1, 1, 1),
                                     seed=self.seed_generator)          # eq. 5, per sample
        gp = losses.gradient_penalty(                                   # eq. 6
            lambda x: self.critic([x_low, x], training=True), x_high, x_fake, alpha)
        return wass + self.gp_weight * gp, wass, gp                     # eq. 7

    def generator_objective(self, x_low, x_fake, x_high):
        """Generator loss of ``x_fake = G(x_low)`` against ``x_high``; returns scalars
        (total, adversarial, l1): eq. 3 (wgan-gp) or eq. 1 (bce)."""
        loss_fn = (losses.bce_generator_loss if self.loss_kind == "bce"
                   else losses.wgan_generator_loss)
        fake = self.critic([x_low, x_fake], training=True)
        return loss_fn(fake, x_fake, x_high, self.l1_weight)

    def _critic_step(self, x_low, x_high):
        """One critic update; returns (loss, wasserstein, penalty)."""
        x_fake = self.generator(x_low, training=True)
        with tf.GradientTape() as tape:
            loss, wass, gp = self.critic_objective(x_low, x_high, x_fake)
            scaled = self.d_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.critic.trainable_variables)
        self.d_optimizer.apply(grads, self.critic.trainable_variables)
        return loss, wass, gp

    def _generator_step(self, x_low, x_high):
        """One generator update; returns (total, adversarial, l1)."""
        with tf.GradientTape() as tape:
            x_fake = self.generator(x_low, training=True)
            total, adv, l1 = self.generator_objective(x_low, x_fake, x_high)
            scaled = self.g_optimizer.scale_loss(total)
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        return total, adv, l1

    def iterate(self, lows, highs, generator_step=None):
        """One §4.2 iteration: a critic update on each of the ``n_critic`` batches of
        ``lows``/``highs`` (lists of ``[B, H, W, 3]``), then one generator update on the
        last, by ``generator_step(low, high)`` (default :meth:`_generator_step`).
        Returns the logged values (dict of scalars, keys as in ``self.trackers``)."""
        for low, high in zip(lows, highs):
            d_loss, wass, gp = self._critic_step(low, high)
        g_loss, g_adv, g_l1 = (generator_step or self._generator_step)(lows[-1], highs[-1])
        # d_wasserstein is logged as D(real) - D(fake), the critic's estimate of the
        # Wasserstein distance (the negative of its loss term).
        values = {"g_loss": g_loss, "g_adv": g_adv, "g_l1": g_l1, "d_loss": d_loss,
                  "d_wasserstein": -wass, "d_gp": gp}
        return {name: values[name] for name in self.trackers}

    def train_step(self, data):
        x_low, x_high = data
        values = self.iterate(tf.split(x_low, self.n_critic, axis=0),
                              tf.split(x_high, self.n_critic, axis=0))
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        x_low, x_high = data
        x_fake = self.generator(x_low, training=False)
        self.trackers["g_l1"].update_state(losses.l1_loss(x_fake, x_high))
        return {"g_l1": self.trackers["g_l1"].result()}
