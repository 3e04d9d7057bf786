"""Tests of noise_gan.networks and noise_gan.layers (Lin, Fouchez & Pasquet 2021, Fig. 2):
tiny widths, fixed seeds, explicit tolerances."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from noise_gan import layers as L
from noise_gan import networks as N

W = 4  # tiny width for every network test


@pytest.fixture
def mixed_precision():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _images(batch, size, bands=5, seed=0):
    """Stretched-domain-like images: noise plus a bright central blob, in ~[-1, 10]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    blob = 9.0 * np.exp(-(xx**2 + yy**2) / (2 * (size / 10) ** 2))
    x = blob[None, :, :, None] + 0.3 * rng.standard_normal((batch, size, size, bands))
    return x.astype(np.float32)


# ---------------------------------------------------------------- fixed filters, FFT

def test_highpass_filter_is_the_published_one_and_sums_to_zero():
    published = [[-1, 3, -4, 3, -1], [3, -8, 10, -8, 3], [-4, 10, -12, 10, -4],
                 [3, -8, 10, -8, 3], [-1, 3, -4, 3, -1]]
    np.testing.assert_array_equal(N.HIGHPASS_5X5, np.array(published, np.float32))
    assert N.HIGHPASS_5X5.dtype == np.float32
    assert N.HIGHPASS_5X5.sum() == 0.0
    out = N.highpass(tf.fill((2, 12, 10, 3), 7.5))
    assert out.shape == (2, 8, 6, 3) and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), 0.0)


def test_highpass_is_a_per_channel_valid_filter():
    x = np.random.default_rng(1).standard_normal((1, 9, 9, 2)).astype(np.float32)
    out = N.highpass(tf.constant(x, tf.float16)).numpy()   # any float input -> float32
    x = x.astype(np.float16).astype(np.float32)
    expected = np.zeros((1, 5, 5, 2), np.float32)
    for c in range(2):
        for i in range(5):
            for j in range(5):
                expected[0, i, j, c] = np.sum(x[0, i:i + 5, j:j + 5, c] * N.HIGHPASS_5X5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_fourier_amplitude_and_parts_match_numpy():
    x = np.random.default_rng(2).standard_normal((2, 8, 6, 3)).astype(np.float32)
    ref = np.fft.fft2(x, axes=(1, 2))
    amp = N.fourier_amplitude(x)
    assert amp.dtype == tf.float32 and amp.shape == x.shape
    np.testing.assert_allclose(amp.numpy(), np.abs(ref), rtol=1e-4, atol=1e-4)
    parts = N.fourier_parts(tf.constant(x)).numpy()
    assert parts.shape == (2, 8, 6, 6)
    np.testing.assert_allclose(parts[..., 0::2], ref.real, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(parts[..., 1::2], ref.imag, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- symmetric filter

def _released_code_symmetrise(kernel):
    """The authors' symmetrisation: mean of the four rot90s, then mean with the mirror."""
    k = sum(np.rot90(kernel, r, axes=(0, 1)) for r in range(4)) / 4.0
    return (k + k[:, ::-1]) / 2.0


def test_symmetric_filter_has_ten_free_weights_per_band_and_a_d4_invariant_kernel():
    layer = L.SymmetricFilter()
    layer.build((None, 13, 13, 3))
    assert layer.count_params() == 30
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(10, 3)]
    layer.free.assign(np.random.default_rng(3).standard_normal((10, 3)).astype(np.float32))
    kernel = layer.kernel.numpy()
    assert kernel.shape == (7, 7, 3)
    assert len(np.unique(kernel[:, :, 0])) == 10
    for r in (1, 2, 3):
        np.testing.assert_array_equal(np.rot90(kernel, r, axes=(0, 1)), kernel)
    np.testing.assert_array_equal(kernel[:, ::-1], kernel)
    np.testing.assert_array_equal(kernel[::-1], kernel)
    np.testing.assert_array_equal(kernel.transpose(1, 0, 2), kernel)


def test_symmetric_filter_spans_exactly_the_released_code_symmetrised_kernels():
    layer = L.SymmetricFilter()
    layer.build((None, 7, 7, 2))
    full = np.random.default_rng(4).standard_normal((7, 7, 2)).astype(np.float32)
    target = _released_code_symmetrise(full)
    orbits = L._orbit_index(7)
    free = np.stack([[full[:, :, b][orbits == o].mean() for b in range(2)]
                     for o in range(10)])
    layer.free.assign(free.astype(np.float32))
    np.testing.assert_allclose(layer.kernel.numpy(), target, atol=1e-6)


def test_symmetric_filter_commutes_with_rotations_and_is_a_valid_depthwise_conv():
    layer = L.SymmetricFilter()
    x = np.random.default_rng(5).standard_normal((2, 15, 15, 2)).astype(np.float32)
    y = layer(x).numpy()
    assert y.shape == (2, 9, 9, 2)
    for r in (1, 2, 3):
        rotated = layer(np.ascontiguousarray(np.rot90(x, r, axes=(1, 2)))).numpy()
        np.testing.assert_allclose(rotated, np.rot90(y, r, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(layer(x[:, :, ::-1].copy()).numpy(), y[:, :, ::-1],
                               atol=1e-5)
    kernel = layer.kernel.numpy()
    np.testing.assert_allclose(y[0, 4, 4, 1], np.sum(x[0, 4:11, 4:11, 1] * kernel[:, :, 1]),
                               rtol=1e-5, atol=1e-5)


def test_symmetric_filter_initial_kernel_is_small_and_symmetric():
    keras.utils.set_random_seed(0)
    layer = L.SymmetricFilter()
    layer.build((None, 7, 7, 5))
    free = layer.free.numpy()
    limit = np.sqrt(6 / 98)
    assert np.all(np.abs(free) <= limit) and np.std(free) > 0
    assert np.abs(free[0]).max() > 0  # the centre is drawn, not zero


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("upsample", N.UPSAMPLES)
def test_generator_shapes_at_paper_sizes(upsample):
    g = N.build_generator("sdss_to_cfht", width=W, upsample=upsample)
    assert g.name == "G_sdss_to_cfht"
    y = g(_images(2, 64))
    assert y.shape == (2, 136, 136, 5) and y.dtype == tf.float32
    g = N.build_generator("cfht_to_sdss", width=W, upsample=upsample)
    assert g.name == "G_cfht_to_sdss"
    y = g(_images(2, 136))
    assert y.shape == (2, 64, 64, 5) and y.dtype == tf.float32
    assert np.all(np.isfinite(y.numpy()))


def test_generator_tiny_sizes_and_bands():
    g = N.build_generator("sdss_to_cfht", bands=3, width=W, sdss_size=16, cfht_size=40,
                          name="g")
    assert g.name == "g" and g(_images(1, 16, 3)).shape == (1, 40, 40, 3)
    g = N.build_generator("cfht_to_sdss", bands=3, width=W, sdss_size=8, cfht_size=24)
    assert g(_images(1, 24, 3)).shape == (1, 8, 8, 3)


@pytest.mark.parametrize("size", [64, 136])
def test_autoencoder_shapes(size):
    a = N.build_autoencoder(size, width=W)
    y = a(_images(2, size))
    assert a.name == "autoencoder" and y.shape == (2, size, size, 5)
    assert y.dtype == tf.float32
    a = N.build_autoencoder(16, bands=2, width=W, upsample="pixelshuffle", name="ae")
    assert a.name == "ae" and a(_images(1, 16, 2)).shape == (1, 16, 16, 2)


@pytest.mark.parametrize("size", [64, 136])
def test_discriminator_outputs_one_logit_per_band(size):
    d = N.build_discriminator(size, width=W)
    logits = d(_images(3, size))
    assert logits.shape == (3, 5) and logits.dtype == tf.float32
    assert np.all(np.isfinite(logits.numpy()))
    assert len(d.get_layer("discriminator_band0").trainable_weights) > 0


def test_symmetric_pad_and_pixel_shuffle_layers():
    x = np.arange(2 * 3 * 3 * 8, dtype=np.float32).reshape(2, 3, 3, 8)
    np.testing.assert_array_equal(
        L.SymmetricPad(2)(x).numpy(),
        np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="symmetric"))
    y = L.PixelShuffle(2)(x).numpy()
    assert y.shape == (2, 6, 6, 2)
    for i, j, a, c, g in [(0, 0, 0, 0, 0), (1, 2, 1, 0, 1), (2, 1, 1, 1, 0), (2, 2, 0, 1, 1)]:
        assert y[1, 2 * i + a, 2 * j + c, g] == x[1, i, j, 4 * g + 2 * a + c]


# ---------------------------------------------------------------- parameter counts

def test_parameter_counts_at_paper_width():
    # Regression values at width 64, 5 bands (reported in the README draft).
    assert N.build_autoencoder(64).count_params() == 2_162_501
    assert N.build_generator("sdss_to_cfht").count_params() == 1_425_093
    assert N.build_generator("cfht_to_sdss").count_params() == 1_019_269
    ne = N.build_noise_emulator(64)
    # per band: FC 1->64, 64->64, 64->1 (with biases) + 10 filter weights.
    assert ne.count_params() == 5 * ((64 + 64) + (64 * 64 + 64) + (64 + 1) + 10)
    sub = N.build_sub_discriminator(64)
    assert sub.count_params() * 5 == 3_859_845


# ---------------------------------------------------------------- mixed precision

def test_networks_under_mixed_float16(mixed_precision):
    x = _images(2, 64)
    d = N.build_discriminator(64, width=W)
    with tf.GradientTape() as tape:
        logits = d(x * 1.1)
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, d.trainable_weights)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    sub = d.get_layer("discriminator_band0")
    assert sub.get_layer("fft").compute_dtype == "float32"
    assert sub.get_layer("fft_conv1").compute_dtype == "float32"
    assert sub.get_layer("pix_conv1").compute_dtype == "float16"
    for g in (N.build_generator("sdss_to_cfht", width=W),
              N.build_autoencoder(64, width=W)):
        y = g(x)
        assert y.dtype == tf.float32 and np.all(np.isfinite(y.numpy()))
    ne = N.build_noise_emulator(64)
    noise = ne(list(N.sample_noise_inputs(2, 64, seed=(1, 2))))
    assert noise.dtype == tf.float32 and ne.get_layer("symmetric_filter").compute_dtype == "float32"


# ---------------------------------------------------------------- noise emulator

def test_noise_emulator_amplitude_scales_the_noise():
    keras.utils.set_random_seed(1)
    size, bands = 24, 5
    ne = N.build_noise_emulator(size, bands=bands, hidden=16)
    amp_model = keras.Model(ne.inputs, ne.get_layer("amplitude").output)
    _, z2 = N.sample_noise_inputs(1, size, bands, seed=(3, 4))
    z2 = tf.repeat(z2, 64, axis=0)
    z1 = tf.constant(np.linspace(-3, 3, 64)[:, None].repeat(bands, 1), tf.float32)
    noise = ne([z1, z2]).numpy()
    amp = amp_model([z1, z2]).numpy()
    assert noise.shape == (64, size, size, bands) and noise.dtype == np.float32
    assert amp.shape == (64, bands) and np.all(amp > 0)
    assert np.all(amp.std(axis=0) > 1e-4)          # z1 controls the amplitude
    # Same z2: the noise is exactly proportional to the amplitude, band by band.
    std = noise.std(axis=(1, 2))
    np.testing.assert_allclose(std / amp, np.broadcast_to(std[:1] / amp[:1], std.shape),
                               rtol=1e-4)
    # Extreme seeds still give a positive amplitude (softplus).
    extreme = tf.constant([[-30.0] * bands, [30.0] * bands])
    assert np.all(amp_model([extreme, z2[:2]]).numpy() > 0)


def test_noise_emulator_noise_is_zero_mean_and_bands_are_independent():
    keras.utils.set_random_seed(2)
    ne = N.build_noise_emulator(48, bands=3, hidden=8)
    z1, z2 = N.sample_noise_inputs(8, 48, 3, seed=(5, 6))
    noise = ne([z1, z2]).numpy()
    mean, std = noise.mean(axis=(0, 1, 2)), noise.std(axis=(0, 1, 2))
    assert np.all(std > 0) and np.all(np.abs(mean) < 0.1 * std)
    # Changing z1 of band 0 changes band 0 only (no weight sharing across bands).
    z1_changed = z1.numpy().copy()
    z1_changed[:, 0] += 2.0
    changed = ne([tf.constant(z1_changed), z2]).numpy()
    assert not np.allclose(changed[..., 0], noise[..., 0])
    np.testing.assert_array_equal(changed[..., 1:], noise[..., 1:])
    weights = {w.path.split("/")[-2] + "/" + w.name: tuple(w.shape) for w in ne.weights}
    assert weights["fc1/kernel"] == (3, 1, 8) and weights["fc2/kernel"] == (3, 8, 8)


def test_sample_noise_inputs_shapes_and_seeds():
    z1, z2 = N.sample_noise_inputs(4, 10, 2)
    assert z1.shape == (4, 2) and z2.shape == (4, 16, 16, 2) and z2.dtype == tf.float32
    a = N.sample_noise_inputs(4, 10, 2, seed=tf.constant([7, 8]))
    b = N.sample_noise_inputs(4, 10, 2, seed=(7, 8))
    c = N.sample_noise_inputs(4, 10, 2, seed=(7, 9))
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.allclose(a[1].numpy(), c[1].numpy())
    gen = tf.random.Generator.from_seed(0)
    g1, g2 = N.sample_noise_inputs(3, 10, 2, seed=gen)
    assert g1.shape == (3, 2) and g2.shape == (3, 16, 16, 2)
    k1, k2 = N.sample_noise_inputs(tf.constant(3), 10, 2, seed=keras.random.SeedGenerator(0))
    assert k1.shape == (3, 2) and k2.shape == (3, 16, 16, 2) and k2.dtype == tf.float32
    np.testing.assert_array_equal(N.sample_noise_inputs(2, 4, 1, seed=7)[1].numpy(),
                                  N.sample_noise_inputs(2, 4, 1, seed=(7, 0))[1].numpy())
    big = N.sample_noise_inputs(2, 64, 5, seed=(1, 1))[1].numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05


# ---------------------------------------------------------------- discriminator

def test_discriminator_bands_are_independent():
    keras.utils.set_random_seed(3)
    bands = 3
    d = N.build_discriminator(24, bands=bands, width=W)
    x = tf.constant(_images(2, 24, bands))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = d(x)
        per_band = [logits[:, b] for b in range(bands)]
    for b in range(bands):
        grad = tape.gradient(per_band[b], x).numpy()
        for c in range(bands):
            if c == b:
                assert np.abs(grad[..., c]).max() > 0
            else:
                np.testing.assert_array_equal(grad[..., c], 0.0)
    subs = [d.get_layer(f"discriminator_band{b}") for b in range(bands)]
    ids = [{id(w) for w in s.trainable_weights} for s in subs]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])


def test_acm_gates_each_channel_in_zero_one():
    acm = L.ACM()
    x = np.abs(np.random.default_rng(6).standard_normal((2, 5, 5, 3))).astype(np.float32)
    y = acm(x).numpy()
    assert acm.count_params() == 3 * 3 + 3
    gate = y / x
    np.testing.assert_allclose(gate, gate[:, :1, :1, :].repeat(5, 1).repeat(5, 2), rtol=1e-5)
    assert np.all((gate > 0) & (gate < 1))


# ---------------------------------------------------------------- errors, saving

def test_unknown_kinds_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="sdss_to_cfht"):
        N.build_generator("sdss_to_hsc", width=W)
    with pytest.raises(ValueError, match="pixelshuffle"):
        N.build_generator("sdss_to_cfht", width=W, upsample="deconv")
    with pytest.raises(ValueError, match="nearest"):
        N.build_autoencoder(64, width=W, upsample="bilinear")
    with pytest.raises(ValueError, match="divisible by 8"):
        N.build_autoencoder(60, width=W)
    with pytest.raises(ValueError, match="cfht_size"):
        N.build_generator("cfht_to_sdss", width=W, sdss_size=64, cfht_size=128)
    with pytest.raises(ValueError, match="multiple of 8"):
        N.build_generator("cfht_to_sdss", width=W, sdss_size=60, cfht_size=128)
    with pytest.raises(ValueError, match="even width"):
        N.build_generator("sdss_to_cfht", width=3, upsample="pixelshuffle")
    with pytest.raises(ValueError, match="at least 5"):
        N.build_discriminator(4, width=W)
    with pytest.raises(ValueError, match="odd"):
        L.SymmetricFilter(6)


def test_save_and_load_round_trip(tmp_path):
    keras.utils.set_random_seed(4)
    ne = N.build_noise_emulator(8, bands=2, hidden=4)
    d = N.build_discriminator(12, bands=2, width=W)
    g = N.build_generator("sdss_to_cfht", bands=2, width=W, upsample="pixelshuffle",
                          sdss_size=8, cfht_size=24)
    z = N.sample_noise_inputs(2, 8, 2, seed=(0, 1))
    cases = [(ne, list(z)), (d, _images(2, 12, 2)), (g, _images(2, 8, 2))]
    for model, inputs in cases:
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded(inputs).numpy(), model(inputs).numpy(),
                                   rtol=1e-5, atol=1e-5)
