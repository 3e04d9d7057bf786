"""Pix2WGAN (Luo et al. §3.2): a pix2pix U-Net generator trained against a conditional
PatchGAN Wasserstein critic with gradient penalty; ``loss="bce"`` gives classic pix2pix.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from common.gan import TrackedModel, build_optimizer
from pix2wgan import losses
from pix2wgan.layers import build_patch_critic, build_unet


class Pix2WGAN(TrackedModel):
    """The generator/critic pair, trained with ``fit``.

    ``fit`` feeds ``(x_low, x_high)`` batches, both ``[B, H, W, 3] float32 in [-1, 1]``.

    Update ratio (§4.2, "updating the generator once every three iterations of training
    the discriminator"): one critic iteration = one batch of ``batch_size``. Each
    ``train_step`` receives ``n_critic`` batches stacked along the batch axis, updates the
    critic once on each, then updates the generator once on the last. An epoch therefore
    still passes over every training image once, with ``n_critic`` critic updates per
    generator update and no data-dependent control flow in the compiled step.

    Performance (see benchmarks/bench_train.py): the generator does not change during the
    critic updates, so the last critic batch's fake ``G(x_low)`` is computed once, inside
    the generator's tape, and serves both the last critic update and the generator update
    (one generator forward pass per iteration saved; the dropout mask and batch statistics
    of that forward are shared by the two updates). Nothing in the step reads a tensor
    back to the host, and there is no Python branching on tensor values.

    Distribution (``tf.distribute.MirroredStrategy`` / ``MultiWorkerMirroredStrategy``):
    each replica receives ``n_critic`` x its per-replica batch and splits it the same way.
    Keras sums gradients over replicas, so every loss is divided by the number of replicas
    before differentiating (:func:`global_mean`): the update is then that of the mean over
    the *global* batch, gradient penalty included (its α is drawn per sample, and
    independently on every replica, see :meth:`draw_alpha`). Batch normalisation uses
    per-replica statistics (Keras' default, as in pix2pix with data parallelism).
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
        #: Test hook: ``alpha_fn(batch) -> [batch, 1, 1, 1]`` replaces the random α of
        #: Luo eq. 5 (e.g. a constant, to compare one device with several exactly).
        self.alpha_fn = None
        names = ["g_loss", "g_adv", "g_l1", "d_loss"]
        if loss == "wgan-gp":
            names += ["d_wasserstein", "d_gp"]
        self.track(*names)

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
        self.g_optimizer = build_optimizer(g_optimizer, self.generator)
        self.d_optimizer = build_optimizer(d_optimizer, self.critic)

    def call(self, x, training=False):
        return self.generator(x, training=training)

    # --- one training iteration ----------------------------------------------------------
    # The loss helpers run inside the caller's tape, so Cascade Pix2WGAN (cascade/model.py)
    # reuses them for its stage-2 generator, whose input is itself a generator output.

    def draw_alpha(self, batch):
        """Luo eq. 5's α: ``[batch, 1, 1, 1]`` float32 ~ U(0, 1), one draw per sample.

        Stateless draw from the model's seed generator (checkpointed, so a resumed run
        continues the sequence), with the replica id folded into the seed: replicas of a
        distributed step share the seed state, and would otherwise draw identical α.
        """
        if self.alpha_fn is not None:
            return tf.cast(self.alpha_fn(batch), tf.float32)
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        replica = tf.cast(_replica_id(), tf.int64)
        return tf.random.stateless_uniform((batch, 1, 1, 1), seed + tf.stack(
            [tf.constant(0, tf.int64), 1_000_003 * replica]), dtype=tf.float32)

    def critic_objective(self, x_low, x_high, x_fake):
        """Critic loss for real ``(x_low, x_high)`` and fake ``(x_low, x_fake)``, all
        ``[B, H, W, 3]`` in [-1, 1]; returns scalars (loss, wasserstein term, penalty),
        each the mean over this replica's ``B`` samples."""
        real = self.critic([x_low, x_high], training=True)
        fake = self.critic([x_low, x_fake], training=True)
        if self.loss_kind == "bce":                                     # Luo eq. 2
            return losses.bce_critic_loss(real, fake), tf.zeros(()), tf.zeros(())
        wass = losses.wgan_critic_loss(real, fake)                      # Luo eq. 4
        alpha = self.draw_alpha(tf.shape(x_low)[0])                     # Luo eq. 5
        gp = losses.gradient_penalty(                                   # Luo eq. 6
            lambda x: self.critic([x_low, x], training=True), x_high, x_fake, alpha,
            scale=_loss_scale(self.d_optimizer))
        return wass + self.gp_weight * gp, wass, gp                     # Luo eq. 7

    def generator_objective(self, x_low, x_fake, x_high):
        """Generator loss of ``x_fake = G(x_low)`` against ``x_high``; returns scalars
        (total, adversarial, l1): Luo eq. 3 (wgan-gp) or Luo eq. 1 (bce)."""
        loss_fn = (losses.bce_generator_loss if self.loss_kind == "bce"
                   else losses.wgan_generator_loss)
        fake = self.critic([x_low, x_fake], training=True)
        return loss_fn(fake, x_fake, x_high, self.l1_weight)

    def _critic_step(self, x_low, x_high, x_fake=None):
        """One critic update (on ``x_fake``, else a fresh ``G(x_low)``); returns (loss,
        wasserstein, penalty)."""
        if x_fake is None:
            x_fake = self.generator(x_low, training=True)
        with tf.GradientTape() as tape:
            loss, wass, gp = self.critic_objective(x_low, x_high, x_fake)
            scaled = self.d_optimizer.scale_loss(global_mean(loss))
        grads = tape.gradient(scaled, self.critic.trainable_variables)
        self.d_optimizer.apply(grads, self.critic.trainable_variables)
        return loss, wass, gp

    def _generator_step(self, x_low, x_high):
        """One generator update; returns (total, adversarial, l1)."""
        with tf.GradientTape() as tape:
            x_fake = self.generator(x_low, training=True)
            total, adv, l1 = self.generator_objective(x_low, x_fake, x_high)
            scaled = self.g_optimizer.scale_loss(global_mean(total))
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        return total, adv, l1

    def _last_critic_and_generator_step(self, x_low, x_high):
        """The last critic update of an iteration, then the generator update, sharing one
        generator forward pass; returns ((critic values), (generator values)).

        Same updates as ``_critic_step`` followed by ``_generator_step``: the critic sees
        a constant fake (``stop_gradient``, and the generator tape does not record the
        critic update), then the generator loss is taken against the *updated* critic
        (automatic control dependencies order the variable reads after the update).
        """
        with tf.GradientTape() as tape:
            x_fake = self.generator(x_low, training=True)
            with tape.stop_recording():
                critic_values = self._critic_step(x_low, x_high, tf.stop_gradient(x_fake))
            total, adv, l1 = self.generator_objective(x_low, x_fake, x_high)
            scaled = self.g_optimizer.scale_loss(global_mean(total))
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        return critic_values, (total, adv, l1)

    def iterate(self, lows, highs, generator_step=None):
        """One §4.2 iteration: a critic update on each of the ``n_critic`` batches of
        ``lows``/``highs`` (lists of ``[B, H, W, 3]``), then one generator update on the
        last, by ``generator_step(low, high)`` (default: :meth:`_generator_step`, fused
        with the last critic update so the two share a generator forward pass).
        Returns the logged values (dict of scalars, keys as in ``self.trackers``)."""
        for low, high in zip(lows[:-1], highs[:-1]):
            self._critic_step(low, high)
        if generator_step is None:
            (d_loss, wass, gp), (g_loss, g_adv, g_l1) = \
                self._last_critic_and_generator_step(lows[-1], highs[-1])
        else:
            d_loss, wass, gp = self._critic_step(lows[-1], highs[-1])
            g_loss, g_adv, g_l1 = generator_step(lows[-1], highs[-1])
        # d_wasserstein is logged as D(real) - D(fake), the critic's estimate of the
        # Wasserstein distance (the negative of its loss term).
        values = {"g_loss": g_loss, "g_adv": g_adv, "g_l1": g_l1, "d_loss": d_loss,
                  "d_wasserstein": -wass, "d_gp": gp}
        return {name: values[name] for name in self.trackers}

    def train_step(self, data):
        x_low, x_high = data
        return self.record(self.iterate(tf.split(x_low, self.n_critic, axis=0),
                                        tf.split(x_high, self.n_critic, axis=0)))

    def test_step(self, data):
        x_low, x_high = data
        x_fake = self.generator(x_low, training=False)
        return self.record({"g_l1": losses.l1_loss(x_fake, x_high)}, ["g_l1"])


# --- distribution helpers ------------------------------------------------------------------

def _replica_id():
    """This replica's index in its sync group (0 outside a distributed step)."""
    ctx = tf.distribute.get_replica_context()
    return 0 if ctx is None else ctx.replica_id_in_sync_group


def global_mean(per_replica_mean):
    """A per-replica mean loss -> its share of the global-batch mean.

    Keras (TF backend) all-reduces gradients by *summing* over replicas, so with R
    replicas of equal batch (training drops the remainder) each replica contributes
    ``mean / R``; the summed gradient is then the gradient of the global mean, as
    ``tf.nn.compute_average_loss`` would give. Identity on one device.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return per_replica_mean if replicas == 1 else per_replica_mean / replicas


def _loss_scale(optimizer):
    """The current dynamic loss scale of a ``LossScaleOptimizer`` (fp16), else ``None``.

    The gradient penalty differentiates the critic inside the loss, in the compute dtype:
    under fp16 that inner gradient needs the same protection as the outer one (see
    :func:`pix2wgan.losses.interpolate_gradient_norms`). Sharing the optimizer's scale
    makes it adaptive: an inner overflow makes the loss non-finite, the optimizer skips
    that step and halves the scale.
    """
    scale = getattr(optimizer, "dynamic_scale", None)
    return None if scale is None else tf.convert_to_tensor(scale)


def chain(nets):
    """``x -> nets[-1](... nets[0](x))``, every network in inference mode: a Pix2WGAN
    generator ``(g,)``, or the Cascade Pix2WGAN's G2∘G1 ``(g1, g2)``; ``x`` ``[B, H, W,
    3]`` in [-1, 1] (Luo eq. 8), the output likewise."""
    def fn(x):
        for net in nets:
            x = net(x, training=False)
        return x
    return fn
