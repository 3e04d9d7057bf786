"""Cascade Pix2WGAN (Luo et al. §4.3, Fig. 7): two Pix2WGAN stages trained together.

Stage 1, G1/D1: SDSS -> pseudo-DECaLS; D1 sees (SDSS, DECaLS) as real and
(SDSS, G1(SDSS)) as fake. Stage 2, G2/D2: pseudo-DECaLS -> pseudo-HSC; D2 sees
(pseudo-DECaLS, HSC) as real and (pseudo-DECaLS, G2(pseudo-DECaLS)) as fake, i.e. both
of D2's pairs are conditioned on G1's output, as §4.3 describes ("The pseudo-HSC images
are paired with their corresponding pseudo-DECaLS images ..., while another set consists
of the corresponding real HSC images and pseudo-DECaLS images").

Our reading of "In each iteration ..., the generators G1 and G2, along with the
discriminators D1 and D2, are optimized sequentially based on their interdependencies":
one ``train_step`` is the Pix2WGAN iteration of stage 1 followed by that of stage 2,
i.e. D1 (x n_critic), G1, D2 (x n_critic), G2, in data-flow order. Each stage keeps
§4.2's convention (generator updated once every three critic iterations; the
``n_critic`` batches arrive stacked, see :class:`pix2wgan.model.Pix2WGAN`), losses Luo
Luo eqs. 3-7 and λ = 100, w_p = 10. Stage 2 is fed the pseudo-DECaLS of the G1 that was *just*
updated, computed with ``training=False`` (no dropout, batch-norm moving statistics):
exactly the images G2 receives at inference, when G2∘G1 runs on SDSS alone.

Stage-2 gradient into G1 (``stage2_grad``; the paper does not say): off by default, the
pseudo-DECaLS is a constant for stage 2 and G1 learns only from its own loss
(J_gen(G1, D1) against real DECaLS), so the two stages are coupled through the data
alone. On, G2's loss J_gen(G2, D2) is also back-propagated through the pseudo-DECaLS into
G1, and G1 takes a second Adam step with it (same optimizer) right after G2's: G1 is then
also pushed towards whatever bridge images make G2's output look like HSC.
"""
from __future__ import annotations

import tensorflow as tf

from common.gan import TrackedModel
from pix2wgan import losses
from pix2wgan.model import Pix2WGAN, global_mean


def _stage_names(stage: int, names) -> dict:
    """``g_loss`` -> ``g1_loss``, ``d_gp`` -> ``d1_gp``."""
    return {n: n.replace("_", f"{stage}_", 1) for n in names}


class CascadePix2WGAN(TrackedModel):
    """G2∘G1 with critics D1, D2, trained with ``fit`` on ``(sdss, bridge, hsc)``
    batches, each ``[n_critic·B, H, W, 3] float32 in [-1, 1]`` (see module docstring).
    ``call(sdss)`` returns pseudo-HSC ``[B, H, W, 3]`` in [-1, 1]."""

    def __init__(self, stage1: Pix2WGAN, stage2: Pix2WGAN, *, stage2_grad=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.stage1, self.stage2 = stage1, stage2
        self.stage2_grad = bool(stage2_grad)
        self.n_critic = stage1.n_critic
        self.renames = (_stage_names(1, stage1.trackers), _stage_names(2, stage2.trackers))
        self.track(*(new for r in self.renames for new in r.values()))
        self.built = True  # the four networks are functional models, built already

    @classmethod
    def from_config_dataclass(cls, cfg) -> "CascadePix2WGAN":
        """Two Pix2WGAN stages with ``cfg``'s (§4.2) networks; seeds ``seed``, ``seed+1``."""
        from dataclasses import replace
        s1 = Pix2WGAN.from_config_dataclass(cfg)
        s2 = Pix2WGAN.from_config_dataclass(replace(cfg, seed=cfg.seed + 1))
        return cls(s1, s2, stage2_grad=cfg.stage2_grad, name="cascade_pix2wgan")

    def compile(self, optimizers, **kwargs):
        """``optimizers``: four optimizers, for (G1, D1, G2, D2)."""
        super().compile(**kwargs)
        g1, d1, g2, d2 = optimizers
        self.stage1.compile(g_optimizer=g1, d_optimizer=d1)
        self.stage2.compile(g_optimizer=g2, d_optimizer=d2)

    @property
    def optimizers(self):
        return [self.stage1.g_optimizer, self.stage1.d_optimizer,
                self.stage2.g_optimizer, self.stage2.d_optimizer]

    def bridge(self, sdss, training=False):
        """G1: SDSS -> pseudo-DECaLS."""
        return self.stage1.generator(sdss, training=training)

    def call(self, sdss, training=False):
        return self.stage2.generator(self.bridge(sdss, training), training=training)

    def _g2_step_through_g1(self, sdss, hsc):
        """G2's update with its loss also back-propagated into G1 (``stage2_grad``)."""
        g1, g2 = self.stage1.generator, self.stage2.generator
        o1, o2 = self.stage1.g_optimizer, self.stage2.g_optimizer
        with tf.GradientTape(persistent=True) as tape:
            mid = self.bridge(sdss, training=False)
            fake = g2(mid, training=True)
            total, adv, l1 = self.stage2.generator_objective(mid, fake, hsc)  # Luo eq. 3
            share = global_mean(total)  # distributed: this replica's share of the mean
            s2, s1 = o2.scale_loss(share), o1.scale_loss(share)
        grads2 = tape.gradient(s2, g2.trainable_variables)
        grads1 = tape.gradient(s1, g1.trainable_variables)
        del tape
        o2.apply(grads2, g2.trainable_variables)
        o1.apply(grads1, g1.trainable_variables)
        return total, adv, l1

    def train_step(self, data):
        sdss, mid, hsc = data
        n = self.n_critic
        lows, mids, highs = (tf.split(t, n, axis=0) for t in (sdss, mid, hsc))
        # Stage 1: D1 x n_critic on (SDSS, DECaLS), then G1 (Luo eqs. 3-7).
        v1 = self.stage1.iterate(lows, mids)
        # Stage 2 on the just-updated G1's pseudo-DECaLS: D2 x n_critic, then G2.
        fakes = [self.bridge(low, training=False) for low in lows]
        if self.stage2_grad:
            v2 = self.stage2.iterate(
                fakes, highs, lambda _mid, high: self._g2_step_through_g1(lows[-1], high))
        else:
            v2 = self.stage2.iterate([tf.stop_gradient(f) for f in fakes], highs)
        return self.record({new: values[old]
                            for values, rename in zip((v1, v2), self.renames)
                            for old, new in rename.items()})

    def test_step(self, data):
        sdss, mid, hsc = data
        pseudo_mid = self.bridge(sdss, training=False)
        pseudo_hsc = self.stage2.generator(pseudo_mid, training=False)
        return self.record({"g1_l1": losses.l1_loss(pseudo_mid, mid),
                            "g2_l1": losses.l1_loss(pseudo_hsc, hsc)}, ("g1_l1", "g2_l1"))
