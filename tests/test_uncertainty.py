"""pix2wgan.uncertainty: MC dropout draws differ, leave BatchNorm alone and are seeded;
with dropout off and one model the draws are ordinary prediction; ensembles count their
draws; moments in pixels and in flux. Tiny U-Nets (16 px, width 2)."""
import numpy as np
import pytest

from common.images import denormalize
from data.render import inverse_render, render_planes
from data.surveys import SURVEYS
from pix2wgan.layers import build_unet
from pix2wgan.uncertainty import Sampler, flux_moments, mc_dropout, moments

S = 16


@pytest.fixture(scope="module")
def nets():
    import keras
    keras.utils.set_random_seed(3)
    return [build_unet(2, 2, n_dropout=2, name="generator") for _ in range(2)]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(-1, 1, (2, S, S, 3)).astype(np.float32)


def _bn_stats(net):
    return [w.numpy().copy() for layer in net.layers
            if "BatchNormalization" in type(layer).__name__
            for w in layer.non_trainable_weights]


def test_dropout_draws_differ_and_leave_batchnorm_alone(nets, x):
    net = nets[0]
    before = _bn_stats(net)
    s = Sampler([(net,)], samples=3, seed=1)
    d = s.draws(x)
    assert d.shape == (3, 2, S, S, 3) and d.dtype == np.float32 and s.k == 3
    assert 0 <= d.min() and d.max() <= 255
    plain = denormalize(net(x, training=False)).numpy()
    for i in range(3):
        assert np.abs(d[i] - plain).max() > 1e-3  # dropout is on
        for j in range(i):
            assert np.abs(d[i] - d[j]).max() > 1e-3  # a new mask every draw
    # BatchNorm used (and kept) its moving statistics: the sampler's copies and the
    # original net still have them, unchanged.
    for a, b in zip(before, _bn_stats(net)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, _bn_stats(s.chains[0][0])):
        np.testing.assert_array_equal(a, b)
    # a copy has the original's weights
    copy = mc_dropout(net)
    for a, b in zip(net.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_one_chain_one_sample_is_ordinary_prediction(nets, x):
    d = Sampler([(nets[0],)]).draws(x)
    np.testing.assert_allclose(d[0], denormalize(nets[0](x, training=False)).numpy(),
                               atol=1e-4)
    mean, std = moments(d)
    assert not std.any()
    np.testing.assert_array_equal(mean, d[0])


def test_same_seed_same_draws(nets, x):
    a = Sampler([(nets[0],)], samples=2, seed=7).draws(x)
    b = Sampler([(nets[0],)], samples=2, seed=7).draws(x)
    c = Sampler([(nets[0],)], samples=2, seed=8).draws(x)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_ensemble_counts_chains_times_samples(nets, x):
    s = Sampler([(nets[0],), (nets[1],)], samples=2)
    d = s.draws(x)
    assert s.k == 4 and d.shape[0] == 4
    s1 = Sampler([(nets[0],), (nets[1],)])
    d1 = s1.draws(x)
    assert s1.k == 2
    np.testing.assert_allclose(d1[1], denormalize(nets[1](x, training=False)).numpy(),
                               atol=1e-4)
    cascade = Sampler([(nets[0], nets[1])], samples=3)
    assert cascade.draws(x).shape == (3, 2, S, S, 3)
    with pytest.raises(ValueError):
        Sampler([], samples=2)
    with pytest.raises(ValueError):
        Sampler([(nets[0],)], samples=0)


def test_moments_and_flux_moments():
    rng = np.random.default_rng(2)
    d = rng.normal(100, 5, (400, 4, 4, 3)).astype(np.float32)
    mean, std = moments(d)
    np.testing.assert_allclose(mean, d.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, d.std(0, ddof=1), rtol=1e-4)
    assert abs(float(std.mean()) - 5) < 0.5
    hsc = SURVEYS["hsc"]
    flux = np.abs(rng.normal(0, 0.5, (4, 4, 3))).astype(np.float32)
    rgb = render_planes(flux, hsc).astype(np.float32)
    fm, fs = flux_moments(np.stack([rgb, rgb]), hsc)
    np.testing.assert_allclose(fm, inverse_render(rgb, hsc), rtol=1e-6)
    assert not fs.any()
    # the mean flux of two draws is not the flux of the mean image (nonlinear stretch)
    two = np.stack([rgb * 0.5, np.minimum(rgb * 1.5, 255)])
    fm2, fs2 = flux_moments(two, hsc)
    assert fs2.max() > 0
    assert np.abs(fm2 - inverse_render(two.mean(0), hsc)).max() > 1e-4
