"""Reduced-precision safety of the gradient penalty, and the compiled step's hygiene
(one trace, no host callbacks, channels-last). Speed itself is measured by
``benchmarks/``, never asserted here."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2wgan import losses

H = 8  # critic input side; the 1x1 critics below have H*H patches


def _critic(kernels, policy):
    """A chain of bias-free 1x1 convolutions with the given constant kernels, built under
    ``policy`` (its convolutions compute in that dtype), float32 scores out."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        x = inp = keras.Input((H, H, 3))
        for k, kernel in enumerate(kernels):
            x = keras.layers.Conv2D(kernel.shape[-1], 1, use_bias=False,
                                    kernel_initializer=keras.initializers.Constant(kernel),
                                    name=f"conv{k}")(x)
        out = keras.layers.Activation("linear", dtype="float32")(x)
        return keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _norms(kernels, x, scale=None, policy="mixed_float16", eps=losses.GP_EPS):
    critic = _critic(kernels, policy)
    assert critic.get_layer("conv0").compute_dtype == (
        "float16" if policy == "mixed_float16" else "float32")
    return losses.interpolate_gradient_norms(critic, x, scale=scale, eps=eps).numpy()


def _x(scale=1.0, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-scale, scale, (2, H, H, 3)),
                       tf.float32)


def test_norm_is_summed_in_float32_where_fp16_squares_would_overflow():
    # d score / d x = w / (H*H) = 20 per value: each square is 400, their sum over the
    # 192 values 76800 > 65504, fp16's largest number.
    w = np.full((1, 1, 3, 1), 20.0 * H * H, np.float32)
    got = _norms([w], _x())
    ref = _norms([w], _x(), policy="float32")
    np.testing.assert_allclose(ref, 20.0 * np.sqrt(H * H * 3), rtol=1e-5)
    np.testing.assert_allclose(got, ref, rtol=1e-3)
    # The naive fp16 reduction of the same gradient overflows.
    g16 = tf.fill((H, H, 3), tf.constant(20.0, tf.float16))
    assert not np.isfinite(tf.sqrt(tf.reduce_sum(tf.square(g16))).numpy())
    # ... and the penalty built on it is finite and equals float32's.
    critic16, critic32 = _critic([w], "mixed_float16"), _critic([w], "float32")
    alpha = tf.fill((2, 1, 1, 1), 0.25)
    gp16 = losses.gradient_penalty(critic16, _x(seed=1), _x(seed=2), alpha).numpy()
    gp32 = losses.gradient_penalty(critic32, _x(seed=1), _x(seed=2), alpha).numpy()
    assert np.isfinite(gp16)
    np.testing.assert_allclose(gp16, gp32, rtol=1e-3)


def test_loss_scale_rescues_an_inner_gradient_that_underflows_in_fp16():
    # Per-value gradient 2^-6 * 2^-20 = 2^-26, below fp16's smallest subnormal (2^-24).
    w = np.full((1, 1, 3, 1), 2.0**-20, np.float32)
    # (eps = 0 here: sqrt(1e-10) would hide norms this small)
    ref = _norms([w], _x(), policy="float32", eps=0.0)
    np.testing.assert_allclose(ref, 2.0**-26 * np.sqrt(H * H * 3), rtol=1e-4)
    unscaled = _norms([w], _x(), eps=0.0)
    assert unscaled.max() < 0.1 * ref.min()  # flushed to zero
    scaled = _norms([w], _x(), scale=tf.constant(2.0**15), eps=0.0)  # the LSO's start
    np.testing.assert_allclose(scaled, ref, rtol=1e-3)


def test_loss_scale_below_one_rescues_an_inner_gradient_that_overflows_in_fp16():
    # Two layers: gradient w.r.t. the input 2^-6 * 2^12 * 2^10 = 2^16 > 65504; the
    # input is small so that the forward pass itself stays in range.
    k1 = (np.eye(3, dtype=np.float32) * 2.0**10).reshape(1, 1, 3, 3)
    k2 = np.full((1, 1, 3, 1), 2.0**12, np.float32)
    x = _x(1e-3)
    ref = _norms([k1, k2], x, policy="float32")
    assert np.isfinite(ref).all()
    assert not np.isfinite(_norms([k1, k2], x)).all()
    got = _norms([k1, k2], x, scale=tf.constant(2.0**-8))
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_fp16_model_passes_its_loss_scale_to_the_penalty():
    from pix2wgan.config import Pix2WGANConfig
    from pix2wgan.model import _loss_scale
    from pix2wgan.trainer import build
    try:
        model = build(Pix2WGANConfig(width=2, image_size=64, precision="fp16"))
        scale = _loss_scale(model.d_optimizer)
        assert scale is not None and float(scale) == 2.0**15
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = build(Pix2WGANConfig(width=2, image_size=64))
    assert _loss_scale(model.d_optimizer) is None


def test_train_step_traces_once_has_no_host_callbacks_and_is_channels_last():
    from common import training
    from pix2wgan.layers import build_patch_critic, build_unet
    from pix2wgan.model import Pix2WGAN
    # Small nets (32 px, U-Net depth 3) with the paper's layer kinds: tracing is the cost.
    model = Pix2WGAN(build_unet(2, 3, name="generator"), build_patch_critic(2))
    model.compile(g_optimizer=training.make_adam(1e-3, 0.5, 0.999, "float32"),
                  d_optimizer=training.make_adam(1e-3, 0.5, 0.999, "float32"))
    step = tf.function(model.train_step)
    x = tf.random.uniform((3, 32, 32, 3), -1, 1)
    for _ in range(2):
        out = step((x, x))
    assert all(np.isfinite(float(v)) for v in out.values())
    assert step.experimental_get_tracing_count() == 1
    graph = step.get_concrete_function((x, x)).graph
    ops = {op.type for op in graph.get_operations()}
    fn_ops = {op.type for f in graph._functions.values() for op in f.graph.get_operations()}
    assert not ({"PyFunc", "EagerPyFunc", "PyFuncStateless"} & (ops | fn_ops))
    convs = [layer for net in (model.generator, model.critic) for layer in net.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    assert convs and all(layer.data_format == "channels_last" for layer in convs)


@pytest.mark.parametrize("precision, dtype", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_reduced_precision_step_runs_eagerly_with_finite_losses(precision, dtype):
    from common import training
    from pix2wgan.layers import build_patch_critic, build_unet
    from pix2wgan.model import Pix2WGAN
    try:
        training.set_precision(precision)
        model = Pix2WGAN(build_unet(2, 3, name="generator"), build_patch_critic(2))
        model.compile(g_optimizer=training.make_adam(1e-3, 0.5, 0.999, precision),
                      d_optimizer=training.make_adam(1e-3, 0.5, 0.999, precision))
        assert model.generator.get_layer("enc1_conv").compute_dtype == dtype
        assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer) == (
            precision == "fp16")  # bf16 has float32's exponent range: no loss scaling
        x = tf.random.uniform((3, 32, 32, 3), -1, 1, seed=3)
        out = model.train_step((x, -x))  # eager: no trace to pay for
        assert model.generator(x).dtype == tf.float32  # float32 images out
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(float(v)) for v in out.values())
