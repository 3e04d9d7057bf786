"""Reference steps: one training iteration of Pix2WGAN, pix2pix and Cascade Pix2WGAN,
recomputed by hand from Luo et al.'s equations and compared with what ``train_step`` did.

The networks are tiny (32 px, width 2) and copied (``clone_model`` + ``set_weights``)
before the step; the optimizers are plain SGD, so each update is ``w -= LR * dJ/dw`` and
the reference below (a few lines of TensorFlow per equation, sharing nothing with
``pix2wgan/losses.py``) can redo it on the copies with ``tf.GradientTape``. Randomness
is pinned: generators are built without dropout, and the α of Luo eq. 5 that the model
draws is recorded (its draws are checked to be per-sample U(0, 1)) and reused by the
reference.
Each test compares the weight *changes* of every network, so a wrong sign, weight,
input, batch or update count shows up as an O(1) relative difference, far above RTOL.

The paper's numbers are restated here (not imported from the code under test):
λ = 100 (Luo eq. 3), w_p = 10 (Luo eq. 7), n_critic = 3 (Luo §4.2, "updating the
generator once every three iterations of training the discriminator").
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from cascade.config import CascadeConfig
from cascade.model import CascadePix2WGAN
from pix2wgan.config import Pix2WGANConfig
from pix2wgan.layers import build_patch_critic, build_unet
from pix2wgan.model import Pix2WGAN

LAMBDA_L1, W_P, N_CRITIC = 100.0, 10.0, 3   # Luo eq. 3, Luo eq. 7, §4.2
B, SIZE, WIDTH, DEPTH = 2, 32, 2, 3          # per-critic-update batch; tiny networks
LR = 0.05
RTOL = 1e-5  # on each weight change, plus an atol of RTOL x the largest change


@pytest.fixture(autouse=True, scope="module")
def float32():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy(policy)


# --- the reference: Luo eqs. 1-7, written out ------------------------------------------------

def score(critic, cond, image):
    """``D(image, cond)``: the critic sees the pair concatenated on channels (§3.1) and its
    patch map is averaged to one score per sample, ``[B]``."""
    return tf.reduce_mean(critic([cond, image], training=True), axis=[1, 2, 3])


def critic_loss(critic, low, high, fake, alpha, kind="wgan-gp", w_p=W_P):
    """The critic's loss for one batch.

    wgan-gp, Luo eq. 7: ``(D(fake) - D(real)) + w_p * E[(||∇_x D(x_interp, x_low)|| - 1)^2]``.
    Luo eq. 4 prints ``D(real) - D(fake)``, the Wasserstein estimate the critic *maximises*
    (Gulrajani et al. 2017); minimising it as printed would push D(fake) the same way as
    the generator's ``-D(fake)`` (Luo eq. 3), so the critic minimises its negative. The
    penalty (Luo eq. 6) is taken at Luo eq. 5's
    ``x_interp = α x_high + (1 - α) x_enhanced``, with the condition ``x_low`` held fixed,
    the norm per sample over all pixels.
    bce, Luo eq. 2: ``(BCE(D(real), 1) + BCE(D(fake), 0)) / 2`` over the logit patches,
    with ``-log σ(t) = softplus(-t)`` and ``-log(1 - σ(t)) = softplus(t)``.
    """
    if kind == "bce":
        return 0.5 * (tf.reduce_mean(tf.nn.softplus(-critic([low, high], training=True)))
                      + tf.reduce_mean(tf.nn.softplus(critic([low, fake], training=True))))
    minus_eq4 = tf.reduce_mean(score(critic, low, fake)) - tf.reduce_mean(
        score(critic, low, high))
    interp = alpha * high + (1.0 - alpha) * fake                          # Luo eq. 5
    with tf.GradientTape() as tape:
        tape.watch(interp)
        d_interp = score(critic, low, interp)
    grads = tf.reshape(tape.gradient(d_interp, interp), [tf.shape(interp)[0], -1])
    gp = tf.reduce_mean(tf.square(tf.norm(grads, axis=1) - 1.0))          # Luo eq. 6
    return minus_eq4 + w_p * gp                                           # Luo eq. 7


def generator_loss(critic, low, fake, high, kind="wgan-gp"):
    """Luo eq. 3 (wgan-gp): ``-D(fake, x_low) + λ L1(fake, x_high)``; Luo eq. 1 (bce):
    ``BCE(D(fake, x_low), 1) + λ L1``. L1 is the mean absolute error over all pixels."""
    adv = (tf.reduce_mean(tf.nn.softplus(-critic([low, fake], training=True)))
           if kind == "bce" else -tf.reduce_mean(score(critic, low, fake)))
    return adv + LAMBDA_L1 * tf.reduce_mean(tf.abs(fake - high))


def sgd(loss_fn, variables):
    """One plain SGD step on ``variables`` (all gradients taken before any is applied)."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    for v, g in zip(variables, tape.gradient(loss, variables)):
        v.assign_sub(LR * g)
    return loss


def critic_updates(gen, critic, lows, highs, alphas, kind="wgan-gp"):
    """One critic update (Luo eq. 7 or Luo eq. 2) per batch, each on a fresh ``G(x_low)``
    of the generator, which does not change during them."""
    for low, high, alpha in zip(lows, highs, alphas):
        fake = gen(low, training=True)
        loss = sgd(lambda: critic_loss(critic, low, high, fake, alpha, kind),
                   critic.trainable_variables)
    return loss


def generator_update(gen, critic, low, high, kind="wgan-gp", upstream=None):
    """One generator update (Luo eq. 3 or Luo eq. 1) against the *updated* critic. With
    ``upstream`` (the cascade's G1), the generator's input is ``upstream(low)`` and the
    same loss also updates ``upstream``'s weights."""
    variables = gen.trainable_variables + (upstream.trainable_variables if upstream else [])

    def loss():
        cond = upstream(low, training=False) if upstream else low
        return generator_loss(critic, cond, gen(cond, training=True), high, kind)
    return sgd(loss, variables)


def iteration(gen, critic, lows, highs, alphas, kind="wgan-gp"):
    """Luo §4.2: n_critic critic updates, one per batch, then one generator update on the
    last batch. Returns (last critic loss, generator loss)."""
    d_loss = critic_updates(gen, critic, lows, highs, alphas, kind)
    return d_loss, generator_update(gen, critic, lows[-1], highs[-1], kind)


# --- helpers ----------------------------------------------------------------------------------

def images(seed, n=N_CRITIC * B):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)),
                       tf.float32)


def clone(net):
    copy = keras.models.clone_model(net)
    copy.set_weights(net.get_weights())
    return copy


def record_alphas(stage):
    """Wrap ``stage.draw_alpha`` so the α it draws (Luo eq. 5) are kept for the
    reference."""
    drawn, draw = [], stage.draw_alpha

    def recording(batch):
        drawn.append(draw(batch))
        return drawn[-1]
    stage.draw_alpha = recording
    return drawn


def assert_alphas_uniform(alphas, n):
    """Luo eq. 5's α ∈ (0, 1), "a random number": drawn afresh for every sample of every
    critic update (Gulrajani et al.'s per-sample draw), so no two are equal."""
    assert len(alphas) == n
    values = np.concatenate([a.numpy().ravel() for a in alphas])
    assert all(a.shape == (B, 1, 1, 1) for a in alphas)
    assert np.all((values > 0) & (values < 1)) and len(np.unique(values)) == n * B


def snapshot(nets):
    return {name: [v.numpy() for v in net.trainable_variables] for name, net in nets.items()}


def assert_same_updates(nets, refs, before):
    """Every trainable weight moved by the same amount in the model and the reference."""
    for name, net in nets.items():
        deltas = [(v.numpy() - w0, r.numpy() - w0) for v, r, w0 in
                  zip(net.trainable_variables, refs[name].trainable_variables, before[name])]
        scale = max(np.abs(dr).max() for _, dr in deltas)
        assert scale > 0, f"{name}: the reference did not move it"
        for i, (dm, dr) in enumerate(deltas):
            np.testing.assert_allclose(dm, dr, rtol=RTOL, atol=RTOL * scale,
                                       err_msg=f"{name} weight {i}")


def pix2wgan(**overrides):
    """Networks and loss weights from the config (paper defaults), no dropout, SGD."""
    cfg = Pix2WGANConfig(width=WIDTH, depth=DEPTH, image_size=SIZE, dropout=0.0, **overrides)
    model = Pix2WGAN.from_config_dataclass(cfg)
    model.compile(g_optimizer=keras.optimizers.SGD(LR), d_optimizer=keras.optimizers.SGD(LR))
    return model


def nets_of(model):
    return {"G": model.generator, "D": model.critic}


# --- Pix2WGAN and pix2pix -------------------------------------------------------------------

def test_paper_settings_are_the_defaults():
    """λ (Luo eq. 3), w_p (Luo eq. 7) and n_critic (§4.2) of both configs and of the
    Pix2WGAN constructor are the paper's; pix2pix (``loss="bce"``) updates its critic
    once."""
    for cfg in (Pix2WGANConfig(), CascadeConfig()):
        assert (cfg.l1_weight, cfg.gp_weight, cfg.n_critic) == (LAMBDA_L1, W_P, N_CRITIC)
    gen, critic = build_unet(1, 1), build_patch_critic(1)
    model = Pix2WGAN(gen, critic)
    assert (model.l1_weight, model.gp_weight, model.n_critic) == (LAMBDA_L1, W_P, N_CRITIC)
    assert Pix2WGAN(gen, critic, loss="bce").n_critic == 1


@pytest.mark.parametrize("w_p", [0.0, W_P])
def test_one_critic_update_is_eq7(w_p):
    """One ``_critic_step`` = one SGD step on Luo eq. 7 (w_p = 0: Luo eq. 4's term alone,
    so a flipped sign fails here on its own)."""
    model = pix2wgan(gp_weight=w_p)
    alphas = record_alphas(model)
    low, high = images(1, B), images(2, B)
    ref = clone(model.critic)
    before = snapshot({"D": model.critic})
    fake = model.generator(low, training=True)
    loss, _, _ = model._critic_step(low, high, fake)
    ref_loss = sgd(lambda: critic_loss(ref, low, high, fake, alphas[0], w_p=w_p),
                   ref.trainable_variables)
    assert_alphas_uniform(alphas, 1)
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL)
    assert_same_updates({"D": model.critic}, {"D": ref}, before)


@pytest.mark.parametrize("fused", [True, False], ids=["train_step", "separate_steps"])
def test_wgan_iteration_is_n_critic_eq7_updates_then_one_eq3_update(fused):
    """One ``train_step`` on ``n_critic`` stacked batches = ``n_critic`` critic updates
    (Luo eq. 7), one per batch in order, then one generator update (Luo eq. 3) on the
    last batch against the updated critic. ``train_step`` fuses the last critic update
    with the generator's; ``iterate`` with an explicit generator step does them apart:
    both must be this reference."""
    model = pix2wgan()
    alphas = record_alphas(model)
    x_low, x_high = images(3), images(4)
    refs = {name: clone(net) for name, net in nets_of(model).items()}
    before = snapshot(nets_of(model))
    if fused:
        logs = model.train_step((x_low, x_high))
    else:
        logs = model.iterate(tf.split(x_low, N_CRITIC), tf.split(x_high, N_CRITIC),
                             generator_step=model._generator_step)
    d_loss, g_loss = iteration(refs["G"], refs["D"], tf.split(x_low, N_CRITIC),
                               tf.split(x_high, N_CRITIC), alphas)
    assert_alphas_uniform(alphas, N_CRITIC)
    assert int(model.d_optimizer.iterations) == N_CRITIC
    assert int(model.g_optimizer.iterations) == 1
    np.testing.assert_allclose([logs["d_loss"], logs["g_loss"]], [d_loss, g_loss],
                               rtol=RTOL)
    assert_same_updates(nets_of(model), refs, before)


def test_pix2pix_iteration_is_one_eq2_update_then_one_eq1_update():
    """``loss="bce"`` (classic pix2pix): one critic update on Luo eq. 2, then one
    generator update on Luo eq. 1, on the same batch; no gradient penalty, no α."""
    model = pix2wgan(loss="bce")
    alphas = record_alphas(model)
    x_low, x_high = images(5, B), images(6, B)
    refs = {name: clone(net) for name, net in nets_of(model).items()}
    before = snapshot(nets_of(model))
    logs = model.train_step((x_low, x_high))
    d_loss, g_loss = iteration(refs["G"], refs["D"], [x_low], [x_high], [None], kind="bce")
    assert alphas == []
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 1
    np.testing.assert_allclose([logs["d_loss"], logs["g_loss"]], [d_loss, g_loss],
                               rtol=RTOL)
    assert_same_updates(nets_of(model), refs, before)


# --- Cascade Pix2WGAN -------------------------------------------------------------------------

def cascade(stage2_grad):
    """Two stages with CascadeConfig's loss weights and n_critic, SGD. The generators use
    layer norm instead of batch norm: stage 2 reads G1 with ``training=False``, and with
    batch norm that would depend on moving statistics, i.e. on how many forward passes
    the implementation makes, which the paper does not define."""
    cfg = CascadeConfig()
    stages = [Pix2WGAN(build_unet(WIDTH, DEPTH, dropout=0.0, norm="layer",
                                  image_size=SIZE),
                       build_patch_critic(WIDTH), n_critic=cfg.n_critic,
                       l1_weight=cfg.l1_weight, gp_weight=cfg.gp_weight, seed=seed)
              for seed in (0, 1)]
    model = CascadePix2WGAN(*stages, stage2_grad=stage2_grad)
    model.compile([keras.optimizers.SGD(LR) for _ in range(4)])
    return model


@pytest.mark.parametrize("stage2_grad", [False, True])
def test_cascade_iteration(stage2_grad):
    """Luo §4.3 / Fig. 7, one iteration: stage 1 is a Pix2WGAN iteration of G1/D1 on
    (SDSS, real DECaLS); stage 2 one of G2/D2 on (pseudo-DECaLS = the updated G1's
    output, HSC), so D2's real and fake pairs are both conditioned on G1's output and G2
    never sees real DECaLS. ``stage2_grad=True`` adds to G1 one SGD step of G2's Luo eq. 3
    loss back-propagated through G1 (taken with G2's own update, same gradients);
    ``False`` leaves G1 with its stage-1 update alone."""
    model = cascade(stage2_grad)
    alphas = [record_alphas(model.stage1), record_alphas(model.stage2)]
    sdss, decals, hsc = images(7), images(8), images(9)
    s1, s2 = model.stage1, model.stage2
    nets = {"G1": s1.generator, "D1": s1.critic, "G2": s2.generator, "D2": s2.critic}
    refs = {name: clone(net) for name, net in nets.items()}
    before = snapshot(nets)
    model.train_step((sdss, decals, hsc))

    g1, d1, g2, d2 = refs.values()
    lows, mids, highs = (tf.split(t, N_CRITIC) for t in (sdss, decals, hsc))
    iteration(g1, d1, lows, mids, alphas[0])
    pseudo_decals = [g1(low, training=False) for low in lows]
    critic_updates(g2, d2, pseudo_decals, highs, alphas[1])
    if stage2_grad:
        generator_update(g2, d2, lows[-1], highs[-1], upstream=g1)
    else:
        generator_update(g2, d2, pseudo_decals[-1], highs[-1])

    for drawn in alphas:
        assert_alphas_uniform(drawn, N_CRITIC)
    assert [int(o.iterations) for o in model.optimizers] == [
        1 + stage2_grad, N_CRITIC, 1, N_CRITIC]
    assert_same_updates(nets, refs, before)
