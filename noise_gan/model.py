"""The semi-supervised noise-reconstructed GAN of Lin, Fouchez & Pasquet (2021) and its
one-step ablations (a)-(f), as ``keras.Model`` subclasses trained with ``fit``.

Domains: X = SDSS, ``x`` is ``[B, 64, 64, 5]``; Y = CFHT, ``y`` is ``[B, 136, 136, 5]``
(ugriz, float32, in the stretched domain ``sign(I) (sqrt(|I| + 1) - 1)`` of nanomaggies,
``data.lin_pipeline.stretch``: sky near 0, galaxy cores a few units). ``fit`` feeds dicts
``{"sdss": x, "cfht": y, "pair_sdss": px, "pair_cfht": py}`` (unpaired x, y; pairs px,
py), as ``data.lin_pipeline.lin_dataset`` yields them.

Networks (``noise_gan.networks``): autoencoders ``A^X, A^Y``, generators ``G^{X->Y}``
(``g_x2y``) and ``G^{Y->X}`` (``g_y2x``), noise emulators ``NE^X, NE^Y`` (``[z1, z2]`` ->
noise the size of their domain), per-band discriminators ``D^X, D^Y`` (logits ``[B, 5]``).

What the released code (``shared/notes/lin2021.md``) settles that the paper leaves open,
and is followed here: every reconstruction term is a mean squared error; the adversarial
loss is the sigmoid cross-entropy with the non-saturating generator form; cycle and
identity terms are computed on generator outputs *before* noise, and noise is added
between the two halves of a cycle; each sub-update recomputes its inputs with the
networks as they are after the previous sub-update, with fresh noise. The loss functions
(Lin eqs. 1-6) are ``noise_gan.losses``.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from common.gan import TrackedModel, build_optimizer, trainable
from noise_gan.losses import (cycle_terms, discriminator_loss, f32,
                              generator_adversarial_loss, identity_terms, mse,
                              pseudo_identity_loss)
from noise_gan.networks import NOISE_PAD


# --- shared machinery -----------------------------------------------------------------------

class LinGAN(TrackedModel):
    """Loss trackers (one per name of ``TERMS``, or of ``terms``), noise sampling and the
    gradient-update helper shared by the models of this package."""

    TERMS: tuple[str, ...] = ()

    def __init__(self, *, sdss_size=64, cfht_size=136, bands=5, adv_reduction="sum",
                 seed=0, terms=None, **kwargs):
        super().__init__(**kwargs)
        self.terms = tuple(terms or self.TERMS)
        self.sdss_size, self.cfht_size, self.bands = sdss_size, cfht_size, bands
        self.adv_reduction = adv_reduction
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.track(*self.terms)

    def noise_inputs(self, batch, size):
        """Seeds ``(z1 [B, bands], z2 [B, size + 6, size + 6, bands])`` ~ N(0, 1) of a
        noise emulator (Fig. 2(e)), drawn from the model's checkpointed seed state."""
        z1 = keras.random.normal((batch, self.bands), seed=self.seed_generator)
        z2 = keras.random.normal((batch, size + NOISE_PAD, size + NOISE_PAD, self.bands),
                                 seed=self.seed_generator)
        return z1, z2

    def emulate(self, emulator, like, size, training=True):
        """Noise ``[B, size, size, bands]`` from ``emulator`` for a batch like ``like``."""
        z1, z2 = self.noise_inputs(tf.shape(like)[0], size)
        return emulator([z1, z2], training=training)

    @staticmethod
    def update(optimizer, tape, loss, variables):
        """Apply ``d loss / d variables`` (loss-scaled under fp16) with ``optimizer``."""
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)

    @staticmethod
    def _unpaired(data):
        return data["sdss"], data["cfht"]

    @staticmethod
    def _pairs(data):
        return data["pair_sdss"], data["pair_cfht"]


# --- our model, step one (§III-A, Fig. 1) ---------------------------------------------------

class NoiseStep1(LinGAN):
    """Step one: autoencoders, then discriminators, then noise emulators, each iteration.

    (i) ``A^X, A^Y`` minimise Lin eq. 1 on unpaired ``x``, ``y``; (ii) ``D^X, D^Y`` minimise
    Lin eq. 2 on real images vs ``F(x) = A(x) + NE(z)`` with ``A`` fixed; (iii) ``NE^X,
    NE^Y`` minimise Lin eq. 3 with ``A`` and ``D`` fixed. Three optimizers, one per loss.
    The paired images in the batch are not used.
    """

    TERMS = ("auto_loss", "auto_x", "auto_y", "d_loss", "d_x", "d_y", "ne_loss",
             "ne_x", "ne_y", "noise_rms_x", "noise_rms_y")

    def __init__(self, a_x, a_y, ne_x, ne_y, d_x, d_y, **kwargs):
        super().__init__(**kwargs)
        self.a_x, self.a_y, self.ne_x, self.ne_y = a_x, a_y, ne_x, ne_y
        self.d_x, self.d_y = d_x, d_y

    def compile(self, auto_optimizer, disc_optimizer, noise_optimizer, **kwargs):
        super().compile(**kwargs)
        self.auto_optimizer = build_optimizer(auto_optimizer, self.a_x, self.a_y)
        self.disc_optimizer = build_optimizer(disc_optimizer, self.d_x, self.d_y)
        self.noise_optimizer = build_optimizer(noise_optimizer, self.ne_x, self.ne_y)

    def call(self, x, training=False):
        """``F^X(x) = A^X(x) + NE^X(z)``: an SDSS batch through the self-mapping."""
        return f32(self.a_x(x, training=training)) + f32(
            self.emulate(self.ne_x, x, self.sdss_size, training))

    def self_map(self, x, y):
        """``(F^X(x), F^Y(y))`` with the autoencoders' outputs held constant."""
        fx = tf.stop_gradient(self.a_x(x)) + self.emulate(self.ne_x, x, self.sdss_size)
        fy = tf.stop_gradient(self.a_y(y)) + self.emulate(self.ne_y, y, self.cfht_size)
        return fx, fy

    def autoencoder_step(self, x, y, optimizer=None):
        """(i) Lin eq. 1 on ``A^X, A^Y``; returns ``{auto_loss, auto_x, auto_y}``.
        ``optimizer``: another one than step one's (the pre-training's own)."""
        nets = (self.a_x, self.a_y)
        optimizer = optimizer or self.auto_optimizer
        with tf.GradientTape() as tape:
            auto_x = mse(self.a_x(x, training=True), x)
            auto_y = mse(self.a_y(y, training=True), y)
            loss = auto_x + auto_y
            scaled = optimizer.scale_loss(loss)
        self.update(optimizer, tape, scaled, trainable(*nets))
        return {"auto_loss": loss, "auto_x": auto_x, "auto_y": auto_y}

    def discriminator_step(self, x, y):
        """(ii) Lin eq. 2 on ``D^X, D^Y``, real vs ``F = A + NE`` (A, NE fixed)."""
        fx, fy = (tf.stop_gradient(t) for t in self.self_map(x, y))
        r = self.adv_reduction
        with tf.GradientTape() as tape:
            d_x = discriminator_loss(self.d_x(x, training=True), self.d_x(fx, training=True), r)
            d_y = discriminator_loss(self.d_y(y, training=True), self.d_y(fy, training=True), r)
            loss = d_x + d_y
            scaled = self.disc_optimizer.scale_loss(loss)
        self.update(self.disc_optimizer, tape, scaled, trainable(self.d_x, self.d_y))
        return {"d_loss": loss, "d_x": d_x, "d_y": d_y}

    def noise_step(self, x, y):
        """(iii) Lin eq. 3 on ``NE^X, NE^Y`` (A and D fixed: only NE's variables move)."""
        ax, ay = tf.stop_gradient(self.a_x(x)), tf.stop_gradient(self.a_y(y))
        r = self.adv_reduction
        with tf.GradientTape() as tape:
            nx = self.emulate(self.ne_x, x, self.sdss_size)
            ny = self.emulate(self.ne_y, y, self.cfht_size)
            ne_x = generator_adversarial_loss(self.d_x(f32(ax) + f32(nx)), r)
            ne_y = generator_adversarial_loss(self.d_y(f32(ay) + f32(ny)), r)
            loss = ne_x + ne_y
            scaled = self.noise_optimizer.scale_loss(loss)
        self.update(self.noise_optimizer, tape, scaled, trainable(self.ne_x, self.ne_y))
        return {"ne_loss": loss, "ne_x": ne_x, "ne_y": ne_y,
                "noise_rms_x": tf.sqrt(tf.reduce_mean(tf.square(f32(nx)))),
                "noise_rms_y": tf.sqrt(tf.reduce_mean(tf.square(f32(ny))))}

    def train_step(self, data):
        x, y = self._unpaired(data)
        values = {**self.autoencoder_step(x, y), **self.discriminator_step(x, y),
                  **self.noise_step(x, y)}
        return self.record(values)


# --- our model, step two ------------------------------------------------------------------

def _weigh(weight: float, term):
    """``weight × term``; a weight of exactly 1 adds no op, so the default graph (and its
    numbers) stay those of the paper's unweighted sum."""
    return term if weight == 1.0 else weight * term


class NoiseStep2(LinGAN):
    """Step two: ``G^{X->Y}, G^{Y->X}`` minimise Lin eq. 4 (pairs) + Lin eq. 5 (unpaired,
    noise from the frozen ``NE^X, NE^Y`` added mid-cycle), weights 1 and 1 (released code).
    No discriminator, no autoencoder; one optimizer, over the generators only.

    ``weight_sdss`` / ``weight_cfht`` (issue 13; default 1, the paper) multiply the terms
    compared in each domain: SDSS ``cyc_x`` and ``id_y2x`` (``G^{Y->X}(py)`` vs ``px``),
    CFHT ``cyc_y`` and ``id_x2y``. The logged ``id_loss``, ``cyc_loss``, ``g_loss`` are
    weighted, the four single terms are not."""

    TERMS = ("g_loss", "id_loss", "id_x2y", "id_y2x", "cyc_loss", "cyc_x", "cyc_y")

    def __init__(self, g_x2y, g_y2x, ne_x, ne_y, weight_sdss=1.0, weight_cfht=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.g_x2y, self.g_y2x, self.ne_x, self.ne_y = g_x2y, g_y2x, ne_x, ne_y
        self.weight_sdss, self.weight_cfht = float(weight_sdss), float(weight_cfht)

    def compile(self, gen_optimizer, **kwargs):
        super().compile(**kwargs)
        self.gen_optimizer = build_optimizer(gen_optimizer, self.g_x2y, self.g_y2x)

    def call(self, x, training=False):
        """``F^{X->Y}(x) = G^{X->Y}(x) + NE^Y(z)``."""
        return f32(self.g_x2y(x, training=training)) + f32(
            self.emulate(self.ne_y, x, self.cfht_size, training=False))

    def generator_step(self, data):
        x, y = self._unpaired(data)
        px, py = self._pairs(data)
        # The emulators are frozen: their noise is drawn outside the tape.
        n_y = tf.stop_gradient(self.emulate(self.ne_y, x, self.cfht_size, training=False))
        n_x = tf.stop_gradient(self.emulate(self.ne_x, y, self.sdss_size, training=False))
        with tf.GradientTape() as tape:
            id_x2y, id_y2x = identity_terms(self.g_x2y, self.g_y2x, px, py)      # Lin eq. 4
            # Lin eq. 5
            cyc_x, cyc_y, _, _ = cycle_terms(self.g_x2y, self.g_y2x, x, y, n_y, n_x)
            wx, wy = self.weight_sdss, self.weight_cfht
            id_loss = _weigh(wy, id_x2y) + _weigh(wx, id_y2x)
            cyc_loss = _weigh(wx, cyc_x) + _weigh(wy, cyc_y)
            loss = id_loss + cyc_loss
            scaled = self.gen_optimizer.scale_loss(loss)
        self.update(self.gen_optimizer, tape, scaled, trainable(self.g_x2y, self.g_y2x))
        return {"g_loss": loss, "id_loss": id_loss, "id_x2y": id_x2y, "id_y2x": id_y2x,
                "cyc_loss": cyc_loss, "cyc_x": cyc_x, "cyc_y": cyc_y}

    def train_step(self, data):
        return self.record(self.generator_step(data))


# --- one-step ablations (a)-(f), §IV-B ------------------------------------------------------

#: Content terms of each one-step variant (§IV-B; released code's loss_G_combine).
CONTENT = {"a": ("id",), "b": ("cyc",), "c": ("cyc", "pid"), "d": ("cyc", "id"),
           "e": ("cyc", "id"), "f": ("cyc", "id")}


class OneStepGAN(LinGAN):
    """Cases (a)-(f): generators trained against the per-band discriminators in one step.

    The discriminators see real unpaired images vs the half-cycle outputs of unpaired
    images, ``G^{Y->X}(y)`` and ``G^{X->Y}(x)`` (+ emulator noise in case (f)); in case (a)
    too, as in the released code (its identity loss uses the pairs, its adversarial term
    the unpaired images).

    Cases (a)-(e), per iteration: the discriminators on Lin eq. 2, then the generators on
    ``content_weight x content + Lin eq. 3`` (non-saturating) with content = (a) identity
    Lin eq. 4, (b) cycle Lin eq. 5 without noise, (c) cycle + pseudo-identity Lin eq. 6,
    (d)/(e) cycle + identity. Case (f), in the order of our step one: the generators on
    cycle (noise added mid-cycle) + identity, weight 1, no adversarial term; then the
    discriminators on real vs ``G + NE``; then the noise emulators on Lin eq. 3.
    """

    def __init__(self, variant, g_x2y, g_y2x, d_x, d_y, ne_x=None, ne_y=None, *,
                 content_weight=1000.0, **kwargs):
        if variant not in CONTENT:
            raise ValueError(f"one-step variant must be one of {', '.join(CONTENT)}, "
                             f"got {variant!r}")
        if (variant == "f") != (ne_x is not None and ne_y is not None):
            raise ValueError("variant f, and only f, takes noise emulators")
        content = CONTENT[variant]
        terms = (("g_loss", "content", "g_adv", "d_loss", "d_x", "d_y")
                 + tuple(f"{t}_loss" for t in content)
                 + (("ne_loss", "noise_rms_x", "noise_rms_y") if variant == "f" else ()))
        super().__init__(terms=terms, **kwargs)
        self.variant, self.content_terms = variant, content
        self.content_weight = float(content_weight)
        self.g_x2y, self.g_y2x, self.d_x, self.d_y = g_x2y, g_y2x, d_x, d_y
        self.ne_x, self.ne_y = ne_x, ne_y

    @property
    def has_noise(self) -> bool:
        return self.variant == "f"

    def compile(self, gen_optimizer, disc_optimizer, noise_optimizer=None, **kwargs):
        super().compile(**kwargs)
        self.gen_optimizer = build_optimizer(gen_optimizer, self.g_x2y, self.g_y2x)
        self.disc_optimizer = build_optimizer(disc_optimizer, self.d_x, self.d_y)
        if self.has_noise:
            if noise_optimizer is None:
                raise ValueError("variant f needs a noise_optimizer")
            self.noise_optimizer = build_optimizer(noise_optimizer, self.ne_x, self.ne_y)

    def call(self, x, training=False):
        out = f32(self.g_x2y(x, training=training))
        if self.has_noise:
            out = out + f32(self.emulate(self.ne_y, x, self.cfht_size, training=False))
        return out

    def fakes(self, x, y):
        """Discriminator inputs ``(fake_x, fake_y) = (G^{Y->X}(y) [+ NE^X], G^{X->Y}(x)
        [+ NE^Y])``, generators held constant."""
        fx = f32(tf.stop_gradient(self.g_y2x(y)))
        fy = f32(tf.stop_gradient(self.g_x2y(x)))
        if self.has_noise:
            fx = fx + f32(self.emulate(self.ne_x, y, self.sdss_size))
            fy = fy + f32(self.emulate(self.ne_y, x, self.cfht_size))
        return fx, fy

    def content_loss(self, data, noise_y=None, noise_x=None):
        """The variant's content terms (inside the caller's tape); returns ``(total,
        {name_loss: value}, G^{X->Y}(x), G^{Y->X}(y))`` on the unpaired batch."""
        x, y = self._unpaired(data)
        terms = {}
        if "cyc" in self.content_terms:
            cyc_x, cyc_y, y_from_x, x_from_y = cycle_terms(
                self.g_x2y, self.g_y2x, x, y, noise_y, noise_x)
            terms["cyc_loss"] = cyc_x + cyc_y
        else:
            y_from_x, x_from_y = self.g_x2y(x, training=True), self.g_y2x(y, training=True)
        if "id" in self.content_terms:
            px, py = self._pairs(data)
            terms["id_loss"] = tf.add_n(list(identity_terms(self.g_x2y, self.g_y2x, px, py)))
        if "pid" in self.content_terms:
            terms["pid_loss"] = pseudo_identity_loss(x, y, y_from_x, x_from_y,
                                                     self.sdss_size)
        return tf.add_n(list(terms.values())), terms, y_from_x, x_from_y

    def discriminator_step(self, data):
        x, y = self._unpaired(data)
        fx, fy = self.fakes(x, y)
        r = self.adv_reduction
        with tf.GradientTape() as tape:
            d_x = discriminator_loss(self.d_x(x, training=True), self.d_x(fx, training=True), r)
            d_y = discriminator_loss(self.d_y(y, training=True), self.d_y(fy, training=True), r)
            loss = d_x + d_y                                                     # Lin eq. 2
            scaled = self.disc_optimizer.scale_loss(loss)
        self.update(self.disc_optimizer, tape, scaled, trainable(self.d_x, self.d_y))
        return {"d_loss": loss, "d_x": d_x, "d_y": d_y}

    def generator_step(self, data):
        """(a)-(e): ``content_weight x content + adversarial``; (f): content only."""
        r = self.adv_reduction
        x, y = self._unpaired(data)
        n_y = n_x = None
        if self.has_noise:  # frozen in this sub-step: drawn outside the tape
            n_y = tf.stop_gradient(self.emulate(self.ne_y, x, self.cfht_size, False))
            n_x = tf.stop_gradient(self.emulate(self.ne_x, y, self.sdss_size, False))
        with tf.GradientTape() as tape:
            content, terms, y_from_x, x_from_y = self.content_loss(data, n_y, n_x)
            if self.has_noise:
                adv = tf.zeros(())
                loss = content  # (f): the adversarial loss goes to the emulators only
            else:
                adv = (generator_adversarial_loss(self.d_y(y_from_x), r)    # Lin eq. 3 form
                       + generator_adversarial_loss(self.d_x(x_from_y), r))
                loss = self.content_weight * content + adv
            scaled = self.gen_optimizer.scale_loss(loss)
        self.update(self.gen_optimizer, tape, scaled, trainable(self.g_x2y, self.g_y2x))
        return {"g_loss": loss, "content": content, "g_adv": adv, **terms}

    def noise_step(self, data):
        """(f) only: Lin eq. 3 on ``NE^X, NE^Y`` with ``G`` and ``D`` fixed."""
        x, y = self._unpaired(data)
        gx = f32(tf.stop_gradient(self.g_y2x(y)))
        gy = f32(tf.stop_gradient(self.g_x2y(x)))
        r = self.adv_reduction
        with tf.GradientTape() as tape:
            nx = self.emulate(self.ne_x, y, self.sdss_size)
            ny = self.emulate(self.ne_y, x, self.cfht_size)
            loss = (generator_adversarial_loss(self.d_x(gx + f32(nx)), r)
                    + generator_adversarial_loss(self.d_y(gy + f32(ny)), r))
            scaled = self.noise_optimizer.scale_loss(loss)
        self.update(self.noise_optimizer, tape, scaled, trainable(self.ne_x, self.ne_y))
        return {"ne_loss": loss,
                "noise_rms_x": tf.sqrt(tf.reduce_mean(tf.square(f32(nx)))),
                "noise_rms_y": tf.sqrt(tf.reduce_mean(tf.square(f32(ny))))}

    def train_step(self, data):
        if self.has_noise:  # released code, method 8: G (content), D, NE
            values = {**self.generator_step(data), **self.discriminator_step(data),
                      **self.noise_step(data)}
        else:               # released code, methods 3-7: D, then G
            values = {**self.discriminator_step(data), **self.generator_step(data)}
        return self.record(values)
