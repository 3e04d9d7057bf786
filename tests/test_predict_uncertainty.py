"""The predict CLIs with uncertainty (issue 16): several --model runs and --samples K
write the draws' mean and a _std.png; one model with K = 1 is ordinary prediction;
--format fits writes nanomaggies, SIGMA, HALLUC and a WCS centred on the manifest's
ra/dec. Tiny sizes (16 px, width 2)."""
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from PIL import Image

from cascade import predict as cascade_cli
from data.surveys import HSC
from pix2wgan import predict as cli
from pix2wgan.convert import ensemble_model, read_tag
from pix2wgan.layers import build_unet
from pix2wgan.trainer import find_generator, load_generator
from pix2wgan.uncertainty import Sampler, flux_moments
from tests.fakes import fake_image, write_jpeg
from tests.test_predict_shard import S

N = 4  # inputs


def _saved(folder, seed: int):
    """A tiny generator whose convolutions have N(0, 0.3) weights (not pix2pix's 0.02
    initial ones, whose outputs are ~0 whatever the dropout mask), saved."""
    rng = np.random.default_rng(seed)
    net = build_unet(2, 2, name="generator")
    net.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) if w.ndim == 4 else w
                     for w in net.get_weights()])
    net.save(folder / "generator.keras")
    return folder / "generator.keras"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _saved(tmp_path_factory.mktemp("model"), 0)


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second trained model: other weights (another training seed, in spirit)."""
    return _saved(tmp_path_factory.mktemp("other"), 1)


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """N JPEGs and a catalogue with id, path, ra, dec."""
    root = tmp_path_factory.mktemp("cat")
    rng = np.random.default_rng(4)
    rows = []
    for k in range(N):
        write_jpeg(root / "img" / f"g{k}.jpg", fake_image(rng, S))
        rows.append((f"g{k}", f"img/g{k}.jpg", 150.0 + 0.01 * k, 2.0 - 0.02 * k))
    pd.DataFrame(rows, columns=["id", "path", "ra", "dec"]).to_csv(root / "cat.csv",
                                                                   index=False)
    return root


def _x(folder) -> np.ndarray:
    """The inputs g0..g{N-1} as the network sees them, [N, S, S, 3] in [-1, 1]."""
    return np.stack([np.asarray(Image.open(folder / f"g{k}.jpg"), np.float32)
                     for k in range(N)]) / 127.5 - 1.0


def _main(module, *args) -> int:
    return module.main([str(a) for a in args])


def _px(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64)


def test_ensemble_with_dropout_writes_mean_and_std(model, other, cat, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--input", cat / "img", "--out", out, "--batch-size", N]
    assert _main(cli, "--model", model, other, "--samples", 2, *args) == 0
    assert "wrote 4 PNGs and their _std.png (std of 4 draws)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"g{k}.png" for k in range(N)] + [f"g{k}_std.png" for k in range(N)])
    # the same draws in memory: both generators, dropout on, the sampler's default seed
    nets = [(load_generator(model),), (load_generator(other),)]
    draws = Sampler(nets, samples=2).draws(_x(cat / "img"))
    assert draws.shape[0] == 4
    for k in range(N):
        mean, std = _px(out / f"g{k}.png"), _px(out / f"g{k}_std.png")
        assert np.abs(mean - draws[:, k].mean(0)).max() <= 0.5 + 1e-3
        spread = np.minimum(draws[:, k].std(0, ddof=1), 255)
        assert np.abs(std - spread).max() <= 0.5 + 1e-3
        assert std.max() > 0  # the draws disagree somewhere
    # the tag covers both models and K: a rerun with other K or other models refuses
    sha = cli.generator_model([model, other], 2).sha256
    assert {read_tag(p) for p in out.iterdir()} == {sha}
    assert len({sha, cli.generator_model([model, other], 3).sha256,
                cli.generator_model([model], 2).sha256,
                cli.generator_model(model).sha256}) == 4
    assert _main(cli, "--model", model, other, "--samples", 3, *args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _main(cli, "--model", model, model, *args) == 2
    assert "given twice" in capsys.readouterr().err


def test_one_model_one_draw_is_ordinary_prediction(model, cat, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _main(cli, "--model", model, "--input", cat / "img", "--out", a) == 0
    assert _main(cli, "--model", model, "--samples", 1, "--input", cat / "img",
                 "--out", b) == 0
    assert {p.name: p.read_bytes() for p in a.iterdir()} == \
        {p.name: p.read_bytes() for p in b.iterdir()}
    assert not list(a.glob("*_std.png"))
    # an ensemble of one model with one draw (the Sampler's path) gives the same pixels
    saved = find_generator(model)
    one = ensemble_model([saved], lambda: [(load_generator(saved),)], 1)
    assert one.draws == 1
    cli.convert(one, cat / "img", c, progress=False)
    for p in a.iterdir():
        np.testing.assert_array_equal(_px(p), _px(c / p.name))


def _open(path):
    with fits.open(path) as hdul:
        hdus = {h.name: (h.header.copy(), None if h.data is None else h.data.copy())
                for h in hdul}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdus["PRIMARY"][0], naxis=2) if "CTYPE1" in hdus["PRIMARY"][0] else None
    return hdus, wcs


def test_fits_from_a_manifest_has_flux_sigma_mask_and_wcs(model, other, cat, tmp_path,
                                                          capsys):
    out = tmp_path / "out"
    assert _main(cli, "--model", model, other, "--samples", 2, "--manifest",
                 cat / "cat.csv", "--out", out, "--format", "fits", "--survey", "decals",
                 "--batch-size", N) == 0
    assert "no celestial WCS" not in capsys.readouterr().out
    draws = Sampler([(load_generator(model),), (load_generator(other),)],
                    samples=2).draws(_x(cat / "img"))
    rows = pd.read_csv(cat / "cat.csv")
    sha = cli.generator_model([model, other], 2).sha256
    for k, row in rows.iterrows():
        path = out / "shard-00000-of-00001" / f"{row['id']}.fits"
        hdus, wcs = _open(path)
        hdr, data = hdus["PRIMARY"]
        assert list(hdus) == ["PRIMARY", "SIGMA", "HALLUC"]
        assert data.shape == (3, S, S) and hdus["SIGMA"][1].shape == (3, S, S)
        assert hdus["HALLUC"][1].shape == (S, S) and hdus["HALLUC"][1].dtype == np.uint8
        assert hdr["BUNIT"] == "nanomaggy" and hdr["NSAMPLES"] == 4
        assert hdr["NMODELS"] == 2 and hdr["MODELSHA"] == sha == read_tag(path)
        assert hdr["SOFTVER"] and hdr["STR_Q"] > 0 and "STRSC_G" in hdr
        x, y = wcs.world_to_pixel_values(row["ra"], row["dec"])
        assert abs(x - (S - 1) / 2) < 1e-6 and abs(y - (S - 1) / 2) < 1e-6
        assert np.isclose(abs(wcs.wcs.cdelt[0]) * 3600, HSC.pixel_scale)
        flux, sigma = flux_moments(draws[:, k], HSC)
        np.testing.assert_allclose(np.moveaxis(data, 0, -1), flux, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.moveaxis(hdus["SIGMA"][1], 0, -1), sigma,
                                   rtol=1e-4, atol=1e-6)
        assert sigma.max() > 0


def test_fits_from_input_without_positions_or_survey_says_what_it_lacks(
        model, cat, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(cli, "--model", model, "--input", cat / "img", "--out", out,
                 "--format", "fits") == 0
    text = capsys.readouterr().out
    assert text.count("no celestial WCS") == 1 and text.count("no HALLUC") == 1
    hdus, wcs = _open(out / "g0.fits")
    assert list(hdus) == ["PRIMARY"] and wcs is None  # one draw: no SIGMA either
    assert hdus["PRIMARY"][0]["NSAMPLES"] == 1
    # --positions: stem, ra, dec
    pos = tmp_path / "pos.csv"
    pd.read_csv(cat / "cat.csv").drop(columns="path").to_csv(pos, index=False)
    assert _main(cli, "--model", model, "--input", cat / "img", "--out", out,
                 "--format", "fits", "--positions", pos, "--survey", "decals",
                 "--overwrite") == 0
    assert "no celestial WCS" not in capsys.readouterr().out
    hdus, wcs = _open(out / "g1.fits")
    x, y = wcs.world_to_pixel_values(150.01, 1.98)
    assert abs(x - (S - 1) / 2) < 1e-6 and abs(y - (S - 1) / 2) < 1e-6
    assert "HALLUC" in hdus
    # a rerun with another K is another model's output
    assert _main(cli, "--model", model, "--samples", 2, "--input", cat / "img",
                 "--out", out, "--format", "fits") == 2
    assert "--overwrite" in capsys.readouterr().err
    pd.read_csv(pos).iloc[:2].to_csv(pos, index=False)
    assert _main(cli, "--model", model, "--input", cat / "img", "--out", out,
                 "--format", "fits", "--positions", pos, "--overwrite") == 2
    assert "no position for 'g2'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:  # positions without fits: a usage error
        _main(cli, "--model", model, "--input", cat / "img", "--out", out,
              "--positions", pos)
    assert err.value.code == 2


def test_cascade_ensemble_with_dropout(model, other, cat, tmp_path):
    runs = []
    for name, (a, b) in {"c0": (model, other), "c1": (other, model)}.items():
        run = tmp_path / name
        run.mkdir()
        shutil.copy(a, run / "g1.keras")
        shutil.copy(b, run / "g2.keras")
        runs.append(run)
    out = tmp_path / "out"
    assert _main(cascade_cli, "--model", *runs, "--samples", 2, "--input", cat / "img",
                 "--out", out, "--format", "jpg") == 0
    assert len(list(out.glob("*_std.png"))) == N and len(list(out.glob("*.jpg"))) == N
    sha = cascade_cli.cascade_model(runs, 2, 2).sha256
    assert {read_tag(p) for p in out.iterdir()} == {sha}
    assert sha != cascade_cli.cascade_model(runs, 1, 2).sha256
