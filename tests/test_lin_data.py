"""Tests for the Lin et al. (2021) data: ``data.simulate --setup lin`` and ``data.lin_pipeline``.

Tiny sets: a handful of galaxies at the paper's stamp sizes (64 / 136 px) for the
simulator's physics, and hand-made 8 / 16 px cubes for the pipeline's bookkeeping.
"""
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from astropy.io import fits

from common.errors import DataError
from data import layout, lin_pipeline as lp, scene, sim_lin, sim_luo, simulate
from data.cube import read_cube, write_cube
from data.sim_lin import LinSimConfig
from data.surveys import CFHT, SDSS

SEED = 5
COUNTS = dict(n_paired_train=2, n_paired_test=3, n_unpaired_sdss=2, n_unpaired_cfht=2)


def _cfg(out, **kw):
    base = dict(out=out, seed=SEED, workers=1, progress=False, rate_companion=0.0,
                rate_star=0.0, **COUNTS)
    base.update(kw)
    return LinSimConfig(**base)


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _manifest(root):
    return pd.read_csv(root / layout.LIN_MANIFEST, dtype={"id": str, "source_id": str})


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return sim_lin.simulate_lin(_cfg(tmp_path_factory.mktemp("lin") / "a"))


# ---------------------------------------------------------------------------- stretch
def test_stretch_values_and_roundtrip():
    x = np.array([0.0, 3.0, -3.0, 8.0, -15.0, 99.0])
    want = np.array([0.0, 1.0, -1.0, 2.0, -3.0, 9.0])  # sign(x) (sqrt(|x| + 1) - 1)
    np.testing.assert_allclose(lp.stretch(x), want, atol=1e-12)
    np.testing.assert_allclose(lp.stretch(tf.constant(x)).numpy(), want, atol=1e-6)
    assert lp.stretch(tf.constant(x)).dtype == tf.float32
    xs = np.concatenate([-np.logspace(5, -6, 50), [0.0], np.logspace(-6, 5, 50)])
    np.testing.assert_allclose(lp.unstretch(lp.stretch(xs)), xs, rtol=1e-12, atol=1e-15)
    back = lp.unstretch(lp.stretch(tf.constant(xs, tf.float32))).numpy()
    np.testing.assert_allclose(back, xs.astype(np.float32), rtol=1e-5, atol=1e-6)
    s = lp.stretch(xs)
    assert np.all(np.diff(s) > 0) and np.allclose(s, -s[::-1])  # monotonic, odd


# -------------------------------------------------------------------------- simulator
def test_layout_shapes_units_manifest(ds):
    ids = {"paired_train": ["ptrain000001", "ptrain000002"],
           "paired_test": ["ptest000001", "ptest000002", "ptest000003"]}
    want = {"lin_manifest.csv", "sim_config.json"}
    for subset, gids in ids.items():
        for g in gids:
            want |= {f"{subset}/{s}/{g}.fits" for s in ("sdss", "cfht")}
    want |= {f"paired_test/truth_{s}/{g}.fits" for s in ("sdss", "cfht")
             for g in ids["paired_test"]}
    want |= {f"unpaired/sdss/usdss00000{k}.fits" for k in (1, 2)}
    want |= {f"unpaired/cfht/ucfht00000{k}.fits" for k in (1, 2)}
    assert set(_files(ds)) == want

    df = _manifest(ds)
    assert tuple(df.columns[:8]) == sim_lin.LIN_MANIFEST_COLUMNS
    assert len(df) == 2 * 2 + 2 * 3 + 2 + 2  # one row per observed file
    paired = df[df["subset"] != "unpaired"]
    assert (paired["match_sep_arcsec"] == 0).all() and (paired["peak_sep_arcsec"] == 0).all()
    un = df[df["subset"] == "unpaired"]
    assert un["match_sep_arcsec"].isna().all() and un["peak_sep_arcsec"].isna().all()
    # Unpaired SDSS and CFHT galaxies are different galaxies.
    us, uc = un[un["survey"] == "sdss"], un[un["survey"] == "cfht"]
    assert not set(us["id"]) & set(uc["id"])
    assert not set(us["r_mag"].round(6)) & set(uc["r_mag"].round(6))
    for col in ("r_mag", "hlr_disk", "flux_r", "has_arms", "noise_factor_r", "sky_sigma_g",
                "fwhm_factor_z", "fwhm_u", "noise_corr"):
        assert col in df.columns, col

    for r in df.itertuples():
        sv = SDSS if r.survey == "sdss" else CFHT
        size = 64 if r.survey == "sdss" else 136
        cube, wcs, hdr = read_cube(layout.fits_path(ds, r.subset, r.survey, r.id))
        assert cube.shape == (5, size, size) and cube.dtype == np.float32
        assert hdr["BUNIT"] == "nanomaggy" and hdr["BANDS"] == "ugriz"
        assert hdr["SURVEY"] == r.survey and hdr["PIXSCALE"] == sv.pixel_scale
        ra, dec = wcs.pixel_to_world_values((size - 1) / 2, (size - 1) / 2)
        assert abs(ra - r.ra) < 1e-6 and abs(dec - r.dec) < 1e-6
        assert (cube < 0).mean() > 0.05  # background subtracted: sky pixels go negative
        # The galaxy sits at the centre: the r-band peak is within 2 px of it.
        y, x = np.unravel_index(np.argmax(cube[2]), cube[2].shape)
        assert max(abs(y - (size - 1) / 2), abs(x - (size - 1) / 2)) <= 2.5
        assert r.sky_sigma_r == pytest.approx(
            scene.pixel_noise(sv, "r") * r.noise_factor_r, rel=1e-6)
        assert r.fwhm_r == pytest.approx(sv.psf_fwhm["r"] * r.fwhm_factor_r, rel=1e-6)
    # The field of view is the same ~25.4" patch in both surveys (§IV-A).
    assert abs(64 * SDSS.pixel_scale - 136 * CFHT.pixel_scale) < 0.1
    # Observing conditions vary from image to image.
    assert df["noise_factor_r"].nunique() == len(df)


def test_truth_flux_and_noise(ds):
    """Truth: the r-band sum equals the galaxy's r flux (manifest, no companion or star
    in this set) to within the light of the profile's wings beyond the 25.4" stamp:
    ratio in [0.85, 1.001] (Sersic n = 4 bulges lose up to ~13 % in their wings; a
    unit slip -- pixel area, CFHT's x1000 -- is a factor >= 2); SDSS and CFHT, whose
    pixel areas differ 4.5 x, see the same flux to 0.5 %.
    Noise (image - truth): sigma within 5 % of ``sky_sigma_r`` over the image and 15 %
    in a 40x40 corner; CFHT neighbours correlated as the kernel says, SDSS white."""
    df = _manifest(ds)
    test = df[df["subset"] == "paired_test"]
    for gid, rows in test.groupby("id"):
        sums = {}
        for r in rows.itertuples():
            obs = lp.read_cube_hwc(layout.fits_path(ds, "paired_test", r.survey, gid))
            truth = lp.read_cube_hwc(layout.lin_truth_path(ds, "paired_test", r.survey, gid))
            sums[r.survey] = truth[..., 2].sum(dtype=np.float64)
            assert 0.85 <= sums[r.survey] / r.flux_r <= 1.001, (gid, r.survey)
            res = (obs - truth)[..., 2].astype(np.float64)
            assert res.std() == pytest.approx(r.sky_sigma_r, rel=0.05)
            assert res[:40, :40].std() == pytest.approx(r.sky_sigma_r, rel=0.15)
            rho = np.mean(res[:, 1:] * res[:, :-1]) / res.var()
            if r.survey == "cfht":
                a = r.noise_corr
                assert rho == pytest.approx(2 * a / (1 + 2 * a * a), abs=0.05)
            else:
                assert abs(rho) < 0.07
        assert sums["sdss"] == pytest.approx(sums["cfht"], rel=5e-3)


def test_correlated_noise_kernel():
    rng = np.random.default_rng(0)
    n = sim_lin.correlated_noise(rng, 400, 0.5, 0.1)
    assert n.std() == pytest.approx(0.5, rel=0.02)
    rho = np.mean(n[1:] * n[:-1]) / n.var()
    assert rho == pytest.approx(0.2 / 1.02, abs=0.02)
    w = sim_lin.correlated_noise(rng, 200, 2.0, 0.0)
    assert w.std() == pytest.approx(2.0, rel=0.03)


def test_deterministic_across_workers(ds, tmp_path):
    b = sim_lin.simulate_lin(_cfg(tmp_path / "b", workers=2))
    assert _files(ds) == _files(b)
    for f in _files(ds):
        assert (ds / f).read_bytes() == (b / f).read_bytes(), f


def test_resume_after_deleting_a_file(ds, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(ds, root)
    victim = layout.fits_path(root, "unpaired", "cfht", "ucfht000002")
    want = victim.read_bytes()
    victim.unlink()
    (root / layout.LIN_MANIFEST).unlink()  # as if killed before the end
    before = {f: (root / f).stat().st_mtime_ns for f in _files(root)}
    sim_lin.simulate_lin(_cfg(root))
    assert victim.read_bytes() == want
    assert (root / layout.LIN_MANIFEST).read_bytes() == (ds / layout.LIN_MANIFEST).read_bytes()
    for f, t in before.items():
        assert (root / f).stat().st_mtime_ns == t, f  # nothing else rewritten


def test_refuses_other_settings(ds, tmp_path, capsys):
    root = tmp_path / "s"
    shutil.copytree(ds, root)
    with pytest.raises(DataError, match=r"other settings: seed=5 \(now 6\)") as e:
        sim_lin.simulate_lin(_cfg(root, seed=6))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="setup"):  # a Luo et al. run into a Lin folder
        sim_luo.simulate(sim_luo.SimConfig(out=root, n_train=1, n_test=0, progress=False))
    assert simulate.main(["--setup", "lin", "--out", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "other settings" in err and err.count("\n") == 1
    real = tmp_path / "real"  # a downloaded set (manifest, no sim_config.json)
    real.mkdir()
    (real / layout.LIN_MANIFEST).write_text("id,survey\n")
    with pytest.raises(DataError, match="not simulated"):
        sim_lin.simulate_lin(_cfg(real))


def test_cli_and_tiny_sizes(tmp_path, capsys):
    out = tmp_path / "cli"
    simulate.main(["--setup", "lin", "--out", str(out), "--n-paired-train", "1",
                   "--n-paired-test", "1", "--n-unpaired-sdss", "1", "--n-unpaired-cfht", "0",
                   "--sdss-size", "12", "--cfht-size", "25", "--no-truth", "--workers", "1",
                   "--no-progress", "--seed", "2"])
    assert "1 + 1 pairs" in capsys.readouterr().out
    assert set(_files(out)) == {
        "lin_manifest.csv", "sim_config.json", "paired_train/sdss/ptrain000001.fits",
        "paired_train/cfht/ptrain000001.fits", "paired_test/sdss/ptest000001.fits",
        "paired_test/cfht/ptest000001.fits", "unpaired/sdss/usdss000001.fits"}
    assert lp.read_cube_hwc(out / "paired_test/cfht/ptest000001.fits", 25).shape == (25, 25, 5)
    cfg = simulate.parse_args(["--setup", "lin"])
    assert isinstance(cfg, LinSimConfig) and cfg.out == sim_lin.default_lin_dir()
    assert cfg.counts() == {"paired_train": 200, "paired_test": 100, "unpaired_sdss": 400,
                            "unpaired_cfht": 400}
    assert (cfg.sdss_size, cfg.cfht_size, cfg.truth) == (64, 136, True)
    assert isinstance(simulate.parse_args(["--n-train", "3"]), sim_luo.SimConfig)
    assert simulate.parse_args(["--setup", "luo"]).n_train == 300
    with pytest.raises(SystemExit):
        simulate.parse_args(["--setup", "lin", "--cfht-corr", "2"])
    # ensure_lin_simulated: a finished set is returned as is.
    assert sim_lin.ensure_lin_simulated(LinSimConfig(
        out=out, n_paired_train=1, n_paired_test=1, n_unpaired_sdss=1, n_unpaired_cfht=0,
        sdss_size=12, cfht_size=25, truth=False, seed=2, progress=False)) == out


# --------------------------------------------------------------------------- pipeline
S_SIZE, C_SIZE = 8, 16


def _write(path, cube):
    write_cube(path, np.ascontiguousarray(cube, np.float32), fits.Header())


def _upsample(x, axes=(0, 1)):
    """SDSS -> CFHT of the hand-made sets: each pixel becomes 2x2 (commutes with D4)."""
    return np.repeat(np.repeat(x, 2, axis=axes[0]), 2, axis=axes[1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """8 px SDSS / 16 px CFHT cubes; a pair's CFHT is its SDSS upsampled x2 (x3 in
    value), so augmentation mismatches are visible."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(1)
    for k in range(5):
        s = rng.normal(0, 2, (5, S_SIZE, S_SIZE))
        _write(layout.fits_path(root, "paired_train", "sdss", f"p{k}"), s)
        _write(layout.fits_path(root, "paired_train", "cfht", f"p{k}"),
               3 * _upsample(s, (1, 2)))
    for k in range(3):
        s = rng.normal(0, 2, (5, S_SIZE, S_SIZE))
        _write(layout.fits_path(root, "paired_test", "sdss", f"t{k}"), s)
        _write(layout.fits_path(root, "paired_test", "cfht", f"t{k}"), _upsample(s, (1, 2)))
    for k in range(4):
        _write(layout.fits_path(root, "unpaired", "sdss", f"s{k}"),
               rng.normal(0, 2, (5, S_SIZE, S_SIZE)))
        _write(layout.fits_path(root, "unpaired", "cfht", f"c{k}"),
               rng.normal(0, 2, (5, C_SIZE, C_SIZE)))
    return root


def _kw(**kw):
    return dict(sdss_size=S_SIZE, cfht_size=C_SIZE, **kw)


def _d4_all(x):
    """The 8 D4 images of ``x`` ([H, W, C]) in ``lin_pipeline.d4`` order."""
    return [lp.d4(tf.constant(x), tf.constant(g)).numpy() for g in range(8)]


def _which(img, candidates):
    """(candidate index, D4 element) such that d4(candidate, g) == img."""
    for i, c in enumerate(candidates):
        for g, t in enumerate(_d4_all(c)):
            if np.allclose(t, img, atol=1e-6):
                return i, g
    raise AssertionError("image is no D4 transform of any input")


def test_batch_composition_and_pair_augmentation(tiny):
    ds = lp.lin_dataset(tiny, batch_unpaired=3, batch_paired=4, seed=3, **_kw())
    assert ds.element_spec["cfht"].shape.as_list() == [3, C_SIZE, C_SIZE, 5]
    raw = {s: [lp.stretch(lp.read_cube_hwc(p)) for p in lp.list_cubes(tiny, sub, s)]
           for sub, s in (("unpaired", "sdss"), ("unpaired", "cfht"))}
    raw_pairs = [lp.stretch(lp.read_cube_hwc(p))
                 for p in lp.pair_files(tiny)[1][0]]
    pair_g, sdss_g = [], []
    for b in lp.iterate_checked(ds.take(3)):
        assert {k: v.shape.as_list() for k, v in b.items()} == {
            "sdss": [3, S_SIZE, S_SIZE, 5], "cfht": [3, C_SIZE, C_SIZE, 5],
            "pair_sdss": [4, S_SIZE, S_SIZE, 5], "pair_cfht": [4, C_SIZE, C_SIZE, 5]}
        assert all(v.dtype == tf.float32 for v in b.values())
        ps, pc = b["pair_sdss"].numpy(), b["pair_cfht"].numpy()
        # The CFHT member is the same function of the SDSS member after augmentation:
        # stretch(3 up(s)), with up(s) the x2 upsampling, i.e. the same D4 element.
        want = lp.stretch(3 * _upsample(lp.unstretch(ps), (1, 2)))
        np.testing.assert_allclose(pc, want, rtol=1e-4, atol=1e-4)
        pair_g += [_which(x, raw_pairs)[1] for x in ps]
        sdss_g += [_which(x, raw["sdss"])[1] for x in b["sdss"].numpy()]
        for x in b["cfht"].numpy():
            _which(x, raw["cfht"])
    assert len(set(pair_g)) > 2 and len(set(sdss_g)) > 2  # transforms do vary
    assert pair_g != sdss_g[:len(pair_g)]  # independent streams


def test_lin_dataset_deterministic_and_unaugmented(tiny):
    a = next(iter(lp.lin_dataset(tiny, batch_unpaired=2, batch_paired=2, seed=9,
                                 num_parallel_calls=1, **_kw())))
    b = next(iter(lp.lin_dataset(tiny, batch_unpaired=2, batch_paired=2, seed=9, **_kw())))
    c = next(iter(lp.lin_dataset(tiny, batch_unpaired=2, batch_paired=2, seed=10, **_kw())))
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    assert any(not np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)
    # Without augmentation the images are exactly the stretched files; ``ids`` limits pairs.
    d = next(iter(lp.lin_dataset(tiny, batch_unpaired=1, batch_paired=2, seed=0,
                                 augment=False, ids=["p1", "p3"], **_kw())))
    want = {tuple(lp.stretch(lp.read_cube_hwc(tiny / f"paired_train/sdss/{i}.fits"))
                  .ravel()[:5].astype(float).round(5)) for i in ("p1", "p3")}
    got = {tuple(x.ravel()[:5].astype(float).round(5)) for x in d["pair_sdss"].numpy()}
    assert got == want


def test_lin_dataset_start_continues_the_stream(tiny):
    # A resumed noise_gan step starts at batch `done`: the same batches (files, order and
    # D4 elements) as the uninterrupted stream from there, across a reshuffled pass.
    kw = dict(batch_unpaired=3, batch_paired=2, seed=4, **_kw())
    full = list(lp.lin_dataset(tiny, **kw).take(5))
    later = list(lp.lin_dataset(tiny, start=3, **kw).take(2))
    for want, got in zip(full[3:], later):
        for k in want:
            np.testing.assert_array_equal(want[k].numpy(), got[k].numpy())


def test_paired_test_dataset(tiny, ds):
    batches = list(lp.paired_test_dataset(tiny, 2, **_kw()))
    assert [b["id"].numpy().tolist() for b in batches] == [[b"t0", b"t1"], [b"t2"]]
    assert set(batches[0]) == {"id", "sdss", "cfht"}  # no truth folders
    x = lp.read_cube_hwc(tiny / "paired_test/sdss/t1.fits")
    np.testing.assert_allclose(batches[0]["sdss"].numpy()[1], lp.stretch(x), atol=1e-6)
    raw = next(iter(lp.paired_test_dataset(tiny, 3, stretched=False, **_kw())))
    np.testing.assert_array_equal(raw["sdss"].numpy()[1], x)
    # A simulated set carries its truth cubes.
    sim = next(iter(lp.paired_test_dataset(ds, 3)))
    assert set(sim) == {"id", "sdss", "cfht", "truth_sdss", "truth_cfht"}
    assert sim["truth_cfht"].shape.as_list() == [3, 136, 136, 5]
    assert sim["id"].numpy().tolist() == [b"ptest000001", b"ptest000002", b"ptest000003"]


def test_bad_files_name_the_file(tiny, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(tiny, root)
    # Missing folder / empty folder / missing partner: up front, naming the folder or file.
    shutil.rmtree(root / "unpaired" / "cfht")
    with pytest.raises(DataError, match=r"unpaired/cfht: folder is missing"):
        lp.lin_dataset(root, **_kw())
    (root / "unpaired" / "cfht").mkdir()
    with pytest.raises(DataError, match=r"unpaired/cfht: folder holds no \.fits"):
        lp.lin_dataset(root, **_kw())
    for k in range(4):
        _write(layout.fits_path(root, "unpaired", "cfht", f"c{k}"),
               np.zeros((5, C_SIZE, C_SIZE)))
    (root / "paired_train/cfht/p2.fits").unlink()
    with pytest.raises(DataError, match=r"paired_train/sdss/p2\.fits: no partner"):
        lp.lin_dataset(root, **_kw())
    with pytest.raises(DataError, match="does not exist"):
        lp.lin_dataset(tmp_path / "nowhere", **_kw())
    shutil.copy(tiny / "paired_train/cfht/p2.fits", root / "paired_train/cfht/p2.fits")
    with pytest.raises(DataError, match="not in"):
        lp.lin_dataset(root, ids=["p9"], **_kw())

    # NaN pixel: named by read_cube_hwc, by validate=True, and while iterating.
    nan = root / "paired_train/sdss/p0.fits"
    cube = np.ones((5, S_SIZE, S_SIZE), np.float32)
    cube[3, 2, 2] = np.nan
    fits.PrimaryHDU(cube).writeto(nan, overwrite=True)
    with pytest.raises(DataError, match=r"p0\.fits: 1 NaN/inf pixel\(s\) \(first in band i\)"):
        lp.read_cube_hwc(nan)
    with pytest.raises(DataError, match=r"p0\.fits: 1 NaN"):
        lp.lin_dataset(root, validate=True, **_kw())
    ds = lp.lin_dataset(root, batch_unpaired=1, batch_paired=5, augment=False, **_kw())
    with pytest.raises(DataError, match=r"paired_train/sdss/p0\.fits: 1 NaN") as e:
        list(lp.iterate_checked(ds.take(1)))
    assert "\n" not in str(e.value)

    # Wrong shape and unreadable files.
    wrong = root / "unpaired/sdss/s1.fits"
    _write(wrong, np.zeros((5, S_SIZE + 2, S_SIZE + 2)))
    with pytest.raises(DataError, match=r"s1\.fits: expected 8x8 pixels, got 10x10"):
        lp.read_cube_hwc(wrong, S_SIZE)
    fits.PrimaryHDU(np.zeros((3, S_SIZE, S_SIZE), np.float32)).writeto(wrong, overwrite=True)
    with pytest.raises(DataError, match=r"s1\.fits: expected a \[5, H, W\]"):
        lp.read_cube_hwc(wrong)
    wrong.write_bytes(b"not a FITS file at all")
    with pytest.raises(DataError, match=r"s1\.fits: not a readable FITS"):
        lp.read_cube_hwc(wrong)
    with pytest.raises(DataError, match=r"nope\.fits: file is missing"):
        lp.read_cube_hwc(root / "nope.fits")
