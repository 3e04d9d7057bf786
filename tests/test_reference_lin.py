"""Reference steps of Lin, Fouchez & Pasquet (2021): ONE training iteration recomputed by
hand from the paper's equations (§III-A, Lin eqs. 1-6; §IV-B) and compared, weight by
weight, with the model's ``train_step``.

Set-up shared by every test:
  * plain SGD (``keras.optimizers.SGD(LR)``, no momentum) replaces every optimizer after
    ``trainer.build_step``, so an update is exactly ``w -= LR * grad``. The model's gradient
    clipping (``clip_norm``, global norm 5, §IV-B) lives in ``trainer.make_optimizer``'s
    Adam, not in ``model.py``: with plain SGD it is absent, in the model and here alike;
  * the noise seeds ``z1 ~ N(0, 1) [B, bands]``, ``z2 ~ N(0, 1) [B, s + 6, s + 6, bands]``
    (Fig. 2(e): the 7x7 VALID filter eats 6 px) are drawn from the model's
    ``seed_generator``, restored to its state before the model's step, in the order the
    model draws them; every sub-update draws fresh seeds;
  * the discriminators are rebuilt here from the paper: band ``p`` goes through the fixed
    Fig. 2(g) high-pass filter (typed below, applied here) and then the trained layers of
    the sub-discriminator ``D_p`` after its own high-pass layer;
  * ``-log D_p(u) = softplus(-logit)``, ``-log(1 - D_p(u)) = softplus(logit)``; ``||.||_2``
    is the mean squared error (released code); expectations are batch means.

Tiny eager sizes: SDSS 8 px, CFHT 24 px, 2 bands (so a sum over bands differs from a
mean), width 2, 2 unpaired images a side, 1 pair.
"""
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from noise_gan import trainer
from noise_gan.config import NoiseGANConfig

LR = 0.05
TINY = dict(width=2, noise_hidden=3, sdss_size=8, cfht_size=24, bands=2, batch_unpaired=2,
            batch_paired=1, eager=True)
S, C = TINY["sdss_size"], TINY["cfht_size"]
#: §IV-B: the one-step baselines minimise 1000 x content + adversarial.
CONTENT_WEIGHT = 1000.0
#: Fig. 2(g) high-pass filter of the discriminators.
HIGHPASS = np.array([[-1, 3, -4, 3, -1], [3, -8, 10, -8, 3], [-4, 10, -12, 10, -4],
                     [3, -8, 10, -8, 3], [-1, 3, -4, 3, -1]], np.float32)
#: SDSS / CFHT pixel scales (Lin eq. 6 regridding, released code's ``ratio_pixel``).
PIXEL_RATIO = 0.396 / 0.187


def _model(step="1", **kw):
    m = trainer.build_step(NoiseGANConfig(**{**TINY, **kw}).validate(), step)
    for name in trainer.OPTIMIZER_NAMES:
        if getattr(m, name, None) is not None:
            setattr(m, name, keras.optimizers.SGD(LR))
    return m


def _batch(seed=0):
    rng = np.random.default_rng(seed)

    def img(n, s):
        return tf.constant(rng.normal(0.3, 0.5, (n, s, s, TINY["bands"])).astype(np.float32))
    b, p = TINY["batch_unpaired"], TINY["batch_paired"]
    return {"sdss": img(b, S), "cfht": img(b, C), "pair_sdss": img(p, S),
            "pair_cfht": img(p, C)}


# --- the paper's pieces, written independently of noise_gan.losses and noise_gan.model ---

def _mse(a, b):
    return tf.reduce_mean(tf.square(a - b))


def _noise(m, ne, like, size):
    """NE(z1, z2), one map per image of ``like``, with fresh seeds from the model's seed
    state (Fig. 2(e))."""
    batch, bands = like.shape[0], like.shape[-1]
    z1 = keras.random.normal((batch, bands), seed=m.seed_generator)
    z2 = keras.random.normal((batch, size + 6, size + 6, bands), seed=m.seed_generator)
    return ne([z1, z2])


@functools.lru_cache(maxsize=None)
def _tail(d, p):
    """Sub-discriminator ``D_p`` of ``d`` after its high-pass layer (same variables)."""
    sub = d.get_layer(f"{d.name}_band{p}")
    return keras.Model(sub.get_layer("highpass").output, sub.output)


def _disc(d, img):
    """Logits ``[B, bands]``: band p, high-pass filtered here (Fig. 2(g)), through the
    layers of sub-discriminator p that follow its high-pass layer."""
    kernel = tf.constant(HIGHPASS[:, :, None, None])
    return tf.concat([_tail(d, p)(tf.nn.conv2d(img[..., p:p + 1], kernel, 1, "VALID"))
                      for p in range(img.shape[-1])], -1)


def _adv(logits, real, reduction):
    """``E[-sum_p log D_p]`` (real) or ``E[-sum_p log(1 - D_p)]`` (fake); "mean" divides
    the band sum by the number of bands (released code)."""
    per_band = tf.nn.softplus(-logits if real else logits)
    per_image = tf.reduce_sum(per_band, -1)
    if reduction == "mean":
        per_image /= logits.shape[-1]
    return tf.reduce_mean(per_image)


def _sgd(loss_fn, *nets):
    """One SGD step of ``loss_fn()`` on ``nets`` only; returns the loss."""
    variables = [v for n in nets for v in n.trainable_variables]
    with tf.GradientTape() as tape:
        loss = loss_fn()
    for v, g in zip(variables, tape.gradient(loss, variables)):
        v.assign_sub(LR * tf.convert_to_tensor(g))  # SymmetricFilter: IndexedSlices
    return loss


def _cycle(m, x, y, n_y=None, n_x=None):
    """Lin eq. 5:
    ``||G^{Y->X}(G^{X->Y}(x) + n_Y) - x|| + ||G^{X->Y}(G^{Y->X}(y) + n_X) - y||``
    (noise between the two halves; none for the baselines)."""
    y_mid, x_mid = m.g_x2y(x), m.g_y2x(y)
    if n_y is not None:
        y_mid, x_mid = y_mid + n_y, x_mid + n_x
    return _mse(m.g_y2x(y_mid), x) + _mse(m.g_x2y(x_mid), y)


def _identity(m, px, py):
    """Lin eq. 4 on the pairs."""
    return _mse(m.g_x2y(px), py) + _mse(m.g_y2x(py), px)


def _pseudo_identity(m, x, y):
    """Lin eq. 6, both sides on the SDSS grid: CFHT-grid images resized bilinearly and
    scaled by the pixel ratio."""
    def grid(u):
        return PIXEL_RATIO * tf.image.resize(u, [S, S], method="bilinear")
    return _mse(grid(m.g_x2y(x)), x) + _mse(m.g_y2x(y), grid(y))


# --- reference iterations -----------------------------------------------------------------

def _eq2(d, real, fake, r):
    """One domain of Lin eq. 2: ``E[-sum_p (log D_p(real) + log(1 - D_p(fake)))]``."""
    return _adv(_disc(d, real), True, r) + _adv(_disc(d, fake), False, r)


def _eq3(d, fake, r):
    """One domain of Lin eq. 3 (non-saturating): ``E[-sum_p log D_p(fake)]``."""
    return _adv(_disc(d, fake), True, r)


def _ref_step1(m, data, r):
    """Step one (Fig. 1): (i) A^X, A^Y on Lin eq. 1; (ii) D^X, D^Y on Lin eq. 2, real vs
    ``F = A + NE`` (A, NE fixed); (iii) NE^X, NE^Y on Lin eq. 3 (A, D fixed)."""
    x, y = data["sdss"], data["cfht"]
    out = {"auto_loss": _sgd(lambda: _mse(m.a_x(x), x) + _mse(m.a_y(y), y), m.a_x, m.a_y)}
    fx = m.a_x(x) + _noise(m, m.ne_x, x, S)
    fy = m.a_y(y) + _noise(m, m.ne_y, y, C)
    out["d_loss"] = _sgd(lambda: _eq2(m.d_x, x, fx, r) + _eq2(m.d_y, y, fy, r), m.d_x, m.d_y)
    ax, ay = m.a_x(x), m.a_y(y)
    out["ne_loss"] = _sgd(lambda: (_eq3(m.d_x, ax + _noise(m, m.ne_x, x, S), r)
                                   + _eq3(m.d_y, ay + _noise(m, m.ne_y, y, C), r)),
                          m.ne_x, m.ne_y)
    return out


def _ref_step2(m, data):
    """Step two: G^{X->Y}, G^{Y->X} on Lin eq. 4 + Lin eq. 5 (weights 1, 1), noise from the
    frozen NE^Y, NE^X added mid-cycle."""
    x, y = data["sdss"], data["cfht"]
    n_y, n_x = _noise(m, m.ne_y, x, C), _noise(m, m.ne_x, y, S)
    out = {"id_loss": _identity(m, data["pair_sdss"], data["pair_cfht"]),
           "cyc_loss": _cycle(m, x, y, n_y, n_x)}
    out["g_loss"] = _sgd(lambda: (_identity(m, data["pair_sdss"], data["pair_cfht"])
                                  + _cycle(m, x, y, n_y, n_x)), m.g_x2y, m.g_y2x)
    return out


#: §IV-B content losses of the one-step cases tested here.
CONTENT = {"b": ("cyc",), "c": ("cyc", "pid"), "f": ("cyc", "id")}


def _ref_one_step(m, data, variant, r="sum"):
    """Cases (b), (c): D on Lin eq. 2 (real vs G(.)), then G on 1000 x content + Lin eq. 3
    form. Case (f) (like step one): G on content only (noise mid-cycle), then D on Lin eq. 2
    against G + NE, then NE on Lin eq. 3."""
    x, y = data["sdss"], data["cfht"]

    def content(n_y=None, n_x=None):
        terms = {"cyc": lambda: _cycle(m, x, y, n_y, n_x),
                 "id": lambda: _identity(m, data["pair_sdss"], data["pair_cfht"]),
                 "pid": lambda: _pseudo_identity(m, x, y)}
        return tf.add_n([terms[t]() for t in CONTENT[variant]])

    def adv():
        return _eq3(m.d_y, m.g_x2y(x), r) + _eq3(m.d_x, m.g_y2x(y), r)

    def d_step(fx, fy):
        return _sgd(lambda: _eq2(m.d_x, x, fx, r) + _eq2(m.d_y, y, fy, r), m.d_x, m.d_y)

    if variant != "f":
        out = {"d_loss": d_step(m.g_y2x(y), m.g_x2y(x)), "content": content(), "g_adv": adv()}
        out["g_loss"] = _sgd(lambda: CONTENT_WEIGHT * content() + adv(), m.g_x2y, m.g_y2x)
        return out
    n_y, n_x = _noise(m, m.ne_y, x, C), _noise(m, m.ne_x, y, S)
    out = {"g_loss": _sgd(lambda: content(n_y, n_x), m.g_x2y, m.g_y2x)}
    out["d_loss"] = d_step(m.g_y2x(y) + _noise(m, m.ne_x, y, S),
                           m.g_x2y(x) + _noise(m, m.ne_y, x, C))
    gx, gy = m.g_y2x(y), m.g_x2y(x)
    out["ne_loss"] = _sgd(lambda: (_eq3(m.d_x, gx + _noise(m, m.ne_x, y, S), r)
                                   + _eq3(m.d_y, gy + _noise(m, m.ne_y, x, C), r)),
                          m.ne_x, m.ne_y)
    return out


# --- comparison -----------------------------------------------------------------------------

def _networks(m):
    return [getattr(m, n) for n in trainer.NETWORK_NAMES if getattr(m, n, None) is not None]


def _variables(m):
    """``{name: variable}`` of every network (numbered: sub-discriminators share paths)."""
    return {f"{n.name}/{i}:{v.path}": v for n in _networks(m) for i, v in enumerate(n.weights)}


def _weights(m):
    return {k: v.numpy().copy() for k, v in _variables(m).items()}


def _assert_matches_reference(m, data, reference, tol=1e-4):
    """Run ``m.train_step`` and ``reference`` from the same weights and seed state; every
    weight's update must agree to ``tol`` of that tensor's largest reference update, plus
    4 float32 ulps of its largest weight (the rounding of ``w - LR * grad``; a network the
    reference leaves alone may not move at all), and so must the reported losses."""
    w0, seed0 = _weights(m), m.seed_generator.state.numpy().copy()
    values = {k: float(v) for k, v in m.train_step(data).items()}
    got = _weights(m)
    for name, v in _variables(m).items():
        v.assign(w0[name])
    m.seed_generator.state.assign(seed0)
    want_values = {k: float(v) for k, v in reference(m, data).items()}
    want = _weights(m)
    for name, before in w0.items():
        step, ref = got[name] - before, want[name] - before
        ulps = 4 * np.spacing(np.abs(before).max(), dtype=np.float32) if ref.any() else 0
        np.testing.assert_allclose(step, ref, rtol=0, atol=tol * np.abs(ref).max() + ulps,
                                   err_msg=f"update of {name}")
    for name, value in want_values.items():
        assert values[name] == pytest.approx(value, rel=1e-5), name
    return w0, got


# --- tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_step1_matches_eqs_1_to_3(reduction):
    """Lin eqs. 1-3 (step one): A on Lin eq. 1; D on Lin eq. 2 against F = A + NE with the
    Fig. 2(g) high-pass in front of each per-band sub-discriminator; NE on Lin eq. 3
    (non-saturating); adversarial terms summed over bands (paper) or averaged
    (``adv_reduction="mean"``)."""
    m = _model("1", adv_reduction=reduction)
    _assert_matches_reference(m, _batch(), lambda m, d: _ref_step1(m, d, reduction))


def test_step2_matches_eqs_4_5_with_frozen_emulators():
    """Lin eqs. 4-5 (step two): generators on identity + cycle (weights 1, 1), noise of the
    frozen NE^Y / NE^X added between the two halves of each cycle; NE does not move."""
    m = _model("2")
    w0, got = _assert_matches_reference(m, _batch(1), _ref_step2)
    assert all(np.array_equal(w0[k], got[k]) for k in w0 if k.startswith("NE_"))
    assert any(not np.array_equal(w0[k], got[k]) for k in w0 if k.startswith("G_"))


@pytest.mark.parametrize("variant", ["b", "c", "f"])
def test_one_step_ablation_matches_reference(variant):
    """§IV-B cases: (b) Ad.CycleGAN, 1000 x Lin eq. 5 (no noise) + Lin eq. 3 form on G
    after Lin eq. 2 on D; (c) (b) + Lin eq. 6; (f) Ours-Auto, step-one order: G on Lin eq. 5
    (noise mid-cycle) + Lin eq. 4 only, D on Lin eq. 2 against G + NE, NE on Lin eq. 3."""
    m = _model("1", variant=variant)
    _assert_matches_reference(m, _batch(2), lambda m, d: _ref_one_step(m, d, variant))
