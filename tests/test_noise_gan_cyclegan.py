"""noise_gan.cyclegan: benchmarks (g) CycleGAN and (h) AugCGAN (Lin et al. 2021 §IV-B).

Builders (shapes, bad sizes), the bilinear CFHT regridding, the LSGAN / L1 losses on hand
values, what each sub-step updates, two iterations through ``trainer.train`` and the
translator of the run. Tiny and eager: width 2-4, one band, batch 2; SDSS 24 px / CFHT
56 px (the 70x70 PatchGAN needs >= 24 px, so (g)/(h) refuse the 8/24 px of the other
tests, which is checked here too).
"""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from noise_gan import cyclegan as cg
from noise_gan import losses
from noise_gan import train as train_cli
from noise_gan import trainer
from noise_gan.config import NoiseGANConfig
from tests.fakes import lin_batch

TINY = dict(width=2, sdss_size=24, cfht_size=56, bands=1, batch_unpaired=2, batch_paired=2,
            n_samples=2, checkpoint_every=1, eager=True)


def _cfg(**kw):
    return NoiseGANConfig(**{**TINY, **kw}).validate()




def _snap(nets):
    return [v.numpy().copy() for n in nets for v in n.weights]


def _finite(values):
    return all(np.isfinite(float(v)) for v in values.values())


# --- builders and sizes -----------------------------------------------------------------

@pytest.mark.parametrize("size,bands", [(8, 1), (24, 3), (32, 2)])
def test_generators_keep_the_image_size(size, bands):
    g = cg.build_resnet_generator(size, bands, width=2, name="G_test")
    assert g.name == "G_test"
    assert g(tf.zeros((2, size, size, bands))).shape == (2, size, size, bands)
    gz = cg.build_resnet_generator(size, bands, width=2, latent_dim=3)
    out = gz([tf.zeros((2, size, size, bands)), tf.zeros((2, 3))])
    assert out.shape == (2, size, size, bands) and out.dtype == tf.float32
    # Zhu et al.'s layout: 6 residual blocks, two transposed-convolution up-samplings.
    names = [layer.name for layer in g.layers]
    assert sum(n.endswith("_add") for n in names) == cg.RES_BLOCKS == 6
    assert sum(type(layer).__name__ == "Conv2DTranspose" for layer in g.layers) == 2


@pytest.mark.parametrize("size,side", [(24, 1), (32, 2), (64, 6)])
def test_patchgan_and_latent_networks_shapes(size, side):
    assert cg.patch_map_size(size) == side
    d = cg.build_patch_discriminator(size, bands=2, width=2, name="D_test")
    assert d.name == "D_test"
    assert d(tf.zeros((3, size, size, 2))).shape == (3, side, side, 1)
    e = cg.build_latent_encoder(size, bands=2, width=2, latent_dim=5)
    assert e([tf.zeros((3, size, size, 2))] * 2).shape == (3, 5)
    assert cg.build_latent_discriminator(5, width=2)(tf.zeros((3, 5))).shape == (3, 1)


def test_bad_sizes_and_kinds_raise():
    for size in (4, 10):
        with pytest.raises(ValueError, match="multiple of 4 and >= 8"):
            cg.build_resnet_generator(size, 1, width=2)
    with pytest.raises(ValueError, match="at least 24 px"):
        cg.build_patch_discriminator(16, 1, width=2)
    with pytest.raises(ValueError, match=">= 16"):
        cg.build_latent_encoder(8, 1, width=2)
    with pytest.raises(ValueError, match="width must be >= 1"):
        cg.build_patch_discriminator(24, 1, width=0)
    with pytest.raises(ValueError, match="regrid size"):
        cg.regrid_cfht(tf.zeros((1, 8, 8, 1)), 0)
    with pytest.raises(ValueError, match="benchmark variant"):
        cg.build_networks("b", ["g_x2y"], size=24)
    with pytest.raises(ValueError, match="has no network 'e_x'"):
        cg.build_networks("g", ["e_x"], size=24)
    with pytest.raises(ValueError, match="only h"):
        cg.CycleGANBenchmark("h", *cg.build_networks("g", cg.NETWORKS["g"], 24, 1, 2).values())
    # Config: the sizes of the other tests, and the options (g)/(h) have no use for.
    for v in "gh":
        with pytest.raises(ValueError, match="--sdss-size must be >= 24 for variant"):
            NoiseGANConfig(**{**TINY, "sdss_size": 8, "cfht_size": 24}, variant=v).validate()
    with pytest.raises(ValueError, match="--content-weight: variant g"):
        _cfg(variant="g", content_weight=10.0)
    with pytest.raises(ValueError, match="--adv-reduction: variant h"):
        _cfg(variant="h", adv_reduction="mean")
    with pytest.raises(ValueError, match="--lr-noise: variant h has no noise"):
        _cfg(variant="h", lr_noise=1e-3)
    with pytest.raises(ValueError, match="one step"):
        trainer.steps_of(_cfg(variant="g"), "2")
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--variant", "g", "--content-weight", "10"])


# --- regridding and losses -------------------------------------------------------------------

def test_regrid_cfht_interpolates_values_bilinearly():
    const = cg.regrid_cfht(tf.fill((2, 136, 136, 3), 2.5), 64)
    assert const.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(const, 2.5, rtol=1e-6)      # no flux (pixel-ratio) rescale
    # A ramp along x stays a ramp, sampled at the half-pixel-centred positions.
    ramp = tf.tile(tf.range(136, dtype=tf.float32)[None, None, :, None], (1, 136, 1, 1))
    out = cg.regrid_cfht(ramp, 64).numpy()
    expected = (np.arange(64) + 0.5) * 136 / 64 - 0.5
    np.testing.assert_allclose(out[0, 0, :, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(out[0, :, :, 0], np.tile(expected, (64, 1)), rtol=1e-5)
    assert cg.regrid_cfht(tf.zeros((1, 56, 56, 1)), 24).shape == (1, 24, 24, 1)


def test_losses_on_hand_values():
    real, fake = tf.constant([[1.0, 0.0]]), tf.constant([[0.5, -1.0]])
    # 1/2 [mean((1-1)^2, (0-1)^2) + mean(0.25, 1)] = 1/2 [0.5 + 0.625]
    assert float(losses.lsgan_discriminator_loss(real, fake)) == pytest.approx(0.5625)
    assert float(losses.lsgan_generator_loss(fake)) == pytest.approx((0.25 + 4.0) / 2)
    assert float(losses.l1(real, fake)) == pytest.approx((0.5 + 1.0) / 2)


# --- training ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["g", "h"])
def test_each_substep_changes_only_its_own_weights(variant):
    cfg = _cfg(variant=variant)
    m = trainer.build_step(cfg, "1")
    assert isinstance(m, cg.CycleGANBenchmark)
    groups = {"D": m._disc_nets(), "G": m._gen_nets()}
    assert len(groups["D"]) == len(groups["G"]) == (4 if variant == "h" else 2)
    data = lin_batch(cfg)
    for name, sub in (("D", m.discriminator_step), ("G", m.generator_step)):
        before = {k: _snap(nets) for k, nets in groups.items()}
        values = sub(data)
        assert _finite(values)
        for k, nets in groups.items():
            after = _snap(nets)
            same = [np.array_equal(a, b) for a, b in zip(before[k], after)]
            if k == name:       # most tensors move (a bias before an instance norm
                assert np.mean(same) < 0.5, (name, k)    # gets ~no gradient)
            else:
                assert all(same), (name, k)     # the other group, bit for bit
    assert int(m.disc_optimizer.iterations) == int(m.gen_optimizer.iterations) == 1
    values = m.train_step(data)
    assert float(values["g_loss"]) == pytest.approx(
        float(values["g_adv"]) + 10 * float(values["cyc_loss"])
        + (float(values["g_adv_z"]) + 0.25 * float(values["zcyc_loss"])
           + 10 * float(values["id_loss"]) if variant == "h" else 0.0), rel=1e-5)
    assert ("id_loss" in values) == (variant == "h")
    assert m.gen_optimizer.global_clipnorm == 5.0
    # The checkpoint holds every network, (h)'s encoders and latent critics included.
    held = set(trainer.trackables(m))
    assert set(cg.NETWORKS[variant]) | {"gen_optimizer", "disc_optimizer", "seed"} == held


@pytest.mark.parametrize("variant", ["g", "h"])
def test_train_two_iterations_then_translate(variant, tmp_path):
    cfg = _cfg(variant=variant, iterations=2)
    ds = tf.data.Dataset.from_tensors(lin_batch(cfg)).repeat()
    run = trainer.train(cfg, tmp_path / "run", step="both", dataset=ds, progress=False)
    assert trainer.step_finished(run, "1") == 2
    hist = pd.read_csv(run / "step1" / "history.csv")
    assert list(hist["iteration"]) == [1, 2]
    assert np.isfinite(hist.drop(columns="iteration").to_numpy()).all()
    assert (run / "samples" / "step1_0000002.png").is_file()

    tr = trainer.load_translator(run)
    assert tr.iteration == 2 and not tr.has_noise
    assert tr.cfht_out_size == 24 and tr.latent_dim == (16 if variant == "h" else 0)
    x, y = lin_batch(cfg, seed=1)["sdss"], lin_batch(cfg, seed=1)["cfht"]
    assert tr.sdss_to_cfht(x, seed=0).shape == (2, 24, 24, 1)       # regridded CFHT
    assert tr.cfht_to_sdss(y, seed=0).shape == (2, 24, 24, 1)       # from 56 px CFHT
    np.testing.assert_allclose(tr.cfht_to_sdss(y, noise=False),      # = regrid, then G
                               tr.cfht_to_sdss(cg.regrid_cfht(y, 24), noise=False),
                               rtol=1e-5, atol=1e-6)
    a, b = tr.sdss_to_cfht(x, seed=3), tr.sdss_to_cfht(x, seed=3)
    np.testing.assert_array_equal(a, b)
    other = tr.sdss_to_cfht(x, seed=4)
    if variant == "h":   # the latent code: reproducible per seed, different across seeds
        assert not np.allclose(a, other)
        assert not np.allclose(tr.cfht_to_sdss(y, seed=3), tr.cfht_to_sdss(y, seed=4))
        np.testing.assert_array_equal(tr.sdss_to_cfht(x, noise=False),
                                      tr.sdss_to_cfht(x, noise=False, seed=9))
    else:                # deterministic
        np.testing.assert_array_equal(a, other)
    with pytest.raises(ValueError, match="no noise emulators"):
        tr.noise_cfht(1)


def test_cli_train_then_predict_regridded_fits(tmp_path):
    """(h) end to end on FITS cubes: 64 px-like regridded CFHT out (here 24 px) with the
    CFHT pixel scale x cfht/sdss, a latent draw per file from --seed, 56 px CFHT in."""
    from data.cube import read_cube
    from data.sim_lin import LinSimConfig, ensure_lin_simulated
    from noise_gan import predict as predict_cli
    data = ensure_lin_simulated(LinSimConfig(
        out=tmp_path / "sim", n_paired_train=2, n_paired_test=2, n_unpaired_sdss=2,
        n_unpaired_cfht=2, sdss_size=24, cfht_size=56, progress=False))
    run = tmp_path / "run"
    assert train_cli.main(["--variant", "h", "--data", str(data), "--run-dir", str(run),
                           "--width", "2", "--sdss-size", "24", "--cfht-size", "56",
                           "--batch-unpaired", "2", "--batch-paired", "2", "--n-samples",
                           "2", "--iterations", "1", "--eager", "--no-progress"]) == 0
    src = data / "paired_test" / "sdss"
    outs = {}
    for name, extra in (("a", ["--seed", "3"]), ("b", ["--seed", "3", "--batch-size", "1"]),
                        ("c", ["--seed", "4"])):
        out = tmp_path / name
        assert predict_cli.main(["--run-dir", str(run), "--direction", "sdss_to_cfht",
                                 "--input", str(src), "--out", str(out), "--no-progress",
                                 *extra]) == 0
        outs[name] = [read_cube(f) for f in sorted(out.glob("*.fits"))]
    cube, _, hdr = outs["a"][0]
    assert cube.shape == (5, 24, 24) and np.isfinite(cube).all() and hdr["NOISE"]
    assert hdr["SURVEY"] == "cfht" and hdr["PIXSCALE"] == pytest.approx(0.187 * 56 / 24)
    np.testing.assert_allclose(outs["b"][0][0], cube, rtol=1e-4, atol=1e-5)  # per file
    assert not np.allclose(outs["c"][0][0], cube)                             # per seed
    back = tmp_path / "back"
    assert predict_cli.main(["--run-dir", str(run), "--direction", "cfht_to_sdss",
                             "--input", str(data / "paired_test" / "cfht"), "--out",
                             str(back), "--no-noise", "--no-progress"]) == 0
    cube, _, hdr = read_cube(sorted(back.glob("*.fits"))[0])
    assert cube.shape == (5, 24, 24) and hdr["SURVEY"] == "sdss" and not hdr["NOISE"]
