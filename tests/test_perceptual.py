"""LPIPS and FID (common/perceptual.py, lpips.py, fid.py, inception.py, weights.py): the
Fréchet distance against hand-computed and scipy values, LPIPS properties on random-init
networks (behind the explicit flag), the weight-file formats and lookups, refusal
without weights, and the cached, checksummed download (fake server on 127.0.0.1)."""
import hashlib
import os
import warnings

import numpy as np
import pytest

from common import fid, inception, lpips, perceptual, weights
from tests.fake_servers import FakeServer, Reply


@pytest.fixture(autouse=True)
def _no_weights(tmp_path, monkeypatch):
    """Every test starts with an empty KERAS_HOME and no weight variables."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(lpips.LPIPS_ENV, raising=False)
    monkeypatch.delenv(fid.FID_ENV, raising=False)


def exact_gaussian(mu, cov, n, seed):
    """``n`` rows whose sample mean and (ddof=1) covariance are exactly ``mu`` and ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mu)))
    z -= z.mean(axis=0)
    w, v = np.linalg.eigh(np.cov(z, rowvar=False))
    z = z @ v @ np.diag(w ** -0.5) @ v.T  # whitened: sample covariance = I
    l, u = np.linalg.eigh(cov)
    return z @ (u * np.sqrt(l)) @ u.T + mu


# ----------------------------------------------------------------------------- FID

def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(60, 10))
    with pytest.warns(fid.FewSamplesWarning):
        r = fid.fid_from_features(f, f)
    assert abs(r["value"]) < 1e-8
    assert r["n"] == 60 and r["n1"] == r["n2"] == 60


def test_frechet_distance_diagonal_covariances_by_hand():
    # ||mu1-mu2||^2 = 1 + 4 = 5; per axis s1 + s2 - 2 sqrt(s1 s2): (1+4-4) + (4+1-4) + 0 = 2
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    assert fid.frechet_distance(mu1, s1, mu2, s2, eps=0.0) == pytest.approx(7.0, abs=1e-12)
    # from feature sets whose sample statistics are exactly these
    f1, f2 = exact_gaussian(mu1, s1, 500, 1), exact_gaussian(mu2, s2, 400, 2)
    with pytest.warns(fid.FewSamplesWarning):
        r = fid.fid_from_features(f1, f2, eps=0.0)
    assert r["value"] == pytest.approx(7.0, abs=1e-9)
    assert r["n"] == 400 and (r["n1"], r["n2"]) == (500, 400)


def test_frechet_distance_matches_scipy_sqrtm_on_full_covariances():
    from scipy import linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
           - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2, eps=0.0) == pytest.approx(ref, rel=1e-9)
    assert fid.FID_EPS == 0.0 and fid.frechet_distance(mu1, s1, mu2, s2) == fid.frechet_distance(
        mu1, s1, mu2, s2, eps=0.0)
    # eps moves a well-conditioned value only slightly
    assert fid.frechet_distance(mu1, s1, mu2, s2, eps=1e-6) == pytest.approx(ref, abs=1e-4)


def test_low_rank_route_equals_eigen_route_for_singular_covariances():
    # N <= D: fid_from_features uses singular values of A1 A2^T; frechet_distance the
    # rank-clipped eigen route. Without the rank clip the eigen route is ~1e-7 high.
    f1, f2 = fid.parity_features(30, 256, 1), fid.parity_features(40, 256, 2, 0.2)
    with pytest.warns(fid.FewSamplesWarning, match="no eps"):
        fast = fid.fid_from_features(f1, f2)["value"]
    slow = fid.frechet_distance(*fid.feature_stats(f1), *fid.feature_stats(f2))
    assert fast == pytest.approx(slow, rel=1e-12) and fast > 0
    with pytest.warns(fid.FewSamplesWarning, match="eps=0.001 added"):
        with_eps = fid.fid_from_features(f1, f2, eps=1e-3)["value"]  # the eigen route
    assert with_eps == pytest.approx(fid.frechet_distance(
        *fid.feature_stats(f1), *fid.feature_stats(f2), eps=1e-3), rel=1e-12)
    with pytest.raises(ValueError, match="one D"):
        fid.fid_from_features(f1, f2[:, :100])


def test_singular_covariances_stay_finite_and_warn_below_2048():
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 0.5  # N < D: singular
    with pytest.warns(fid.FewSamplesWarning, match="N=20 < 2048"):
        r = fid.fid_from_features(f1, f2)
    assert np.isfinite(r["value"]) and r["value"] > 0 and "biased" in r["warning"]
    g = rng.normal(size=(2048, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at N = 2048
        assert fid.fid_from_features(g, g)["warning"] is None


def test_fid_extractors_aliases_and_default():
    assert fid.FID_EXTRACTORS[0] == "pt_inception"  # the default: comparable FIDs
    assert fid._check_extractor("tf2015") == "pt_inception"
    with pytest.raises(ValueError, match="unknown FID extractor 'inception'.*pt_inception"):
        fid.build_fid_extractor("inception")


def test_pt_inception_lookup_order_and_one_line_refusal(tmp_path, monkeypatch):
    with pytest.raises(weights.WeightsNotFound) as err:
        fid.fid_weights_path("pt_inception", download=True)  # nothing to download ready-made
    msg = str(err.value)
    assert "\n" not in msg and fid.FID_ENV in msg and "convert_fid_weights.py" in msg
    assert weights.cache_path(inception.PT_INCEPTION_NPZ) in msg and os.environ["KERAS_HOME"] in msg
    cached, env, arg = (str(tmp_path / n) for n in ("c.npz", "e.npz", "a.npz"))
    for f in (env, arg):
        open(f, "wb").close()
    os.makedirs(os.path.dirname(weights.cache_path(inception.PT_INCEPTION_NPZ)))
    open(weights.cache_path(inception.PT_INCEPTION_NPZ), "wb").close()
    assert fid.fid_weights_path() == weights.cache_path(inception.PT_INCEPTION_NPZ)  # default extractor
    monkeypatch.setenv(fid.FID_ENV, env)
    assert fid.fid_weights_path("tf2015") == env
    assert fid.fid_weights_path("pt_inception", weights=arg) == arg
    with pytest.raises(weights.WeightsNotFound, match="no such file"):
        fid.fid_weights_path("pt_inception", weights=cached)


def test_pt_inception_random_init_is_labelled_and_npz_loads(tmp_path):
    raw = fid.build_fid_extractor("pt_inception", allow_uncalibrated=True, size=75, seed=1)
    assert raw.label == weights.UNCALIBRATED and "pt_inception" in raw.describe()
    assert "not comparable" not in raw.describe()
    imgs = np.random.default_rng(5).integers(0, 256, (2, 40, 40, 3)).astype(np.uint8)
    x = raw.prepare(imgs)
    assert x.shape == (2, 75, 75, 3) and -1 <= float(np.min(x)) <= float(np.max(x)) <= 1
    state = weights.seeded_state_dict(inception.pt_inception_layout(raw.model), 2)
    path = str(tmp_path / "w.npz")
    np.savez(path, **inception.pt_inception_from_torch(state, raw.model))
    loaded = fid.build_fid_extractor(weights=path, size=75)
    assert loaded.label == "calibrated" and loaded.weights == path
    feats = loaded(imgs)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64 and (feats >= 0).all()
    assert not np.allclose(feats, raw(imgs))


def test_fid_extractor_weights_round_trip_and_labels(tmp_path, monkeypatch):
    kind = "keras-inceptionv3"
    with pytest.raises(weights.WeightsNotFound, match=fid.FID_ENV):
        fid.build_fid_extractor(kind, size=75)
    raw = fid.build_fid_extractor(kind, allow_uncalibrated=True, size=75, seed=1)
    assert raw.label == weights.UNCALIBRATED and weights.UNCALIBRATED in raw.describe()
    imgs = np.random.default_rng(5).integers(0, 256, (2, 40, 40, 3)).astype(np.uint8)
    feats = raw(imgs)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    path = str(tmp_path / "inc.weights.h5")
    raw.model.save_weights(path)
    monkeypatch.setenv(fid.FID_ENV, path)
    loaded = fid.build_fid_extractor(kind, size=75)
    assert loaded.label == "calibrated" and loaded.weights == path
    assert "keras-inceptionv3" in loaded.describe()
    np.testing.assert_allclose(loaded(imgs), feats, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- LPIPS

def images(seed, n=2, size=32):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def alex():
    return lpips.build_lpips("alex", allow_uncalibrated=True, seed=0)


def test_lpips_identity_symmetry_and_positivity(alex):
    x, y = images(0), images(1)
    assert alex.label == weights.UNCALIBRATED
    np.testing.assert_array_equal(alex(x, x), 0.0)
    d = alex(x, y)
    assert d.shape == (2,) and (d > 0).all()
    np.testing.assert_allclose(alex(y, x), d, rtol=1e-6)


def test_lpips_vgg_shape_and_symmetry():
    vgg = lpips.build_lpips("vgg", allow_uncalibrated=True, seed=0)
    x, y = images(2, 1), images(3, 1)
    d = vgg(x, y)
    assert d.shape == (1,) and d[0] > 0
    np.testing.assert_allclose(vgg(y, x), d, rtol=1e-6)
    assert vgg(x, x)[0] == 0.0


def test_lpips_input_checks(alex):
    with pytest.raises(ValueError, match="32x32"):
        alex(images(0, size=16), images(1, size=16))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        perceptual.to_unit(np.full((1, 32, 32, 3), 300.0))
    np.testing.assert_allclose(perceptual.to_unit(np.array([[[[0, 255, 127.5]]]])), [[[[-1, 1, 0]]]])


def test_lpips_refuses_without_weights_unless_flag():
    with pytest.raises(weights.WeightsNotFound, match="LPIPS_WEIGHTS") as err:
        lpips.build_lpips("alex")
    msg = str(err.value)
    assert "\n" not in msg and os.environ["KERAS_HOME"] in msg and "lpips_alex_v0.1.npz" in msg
    with pytest.raises(weights.WeightsNotFound, match="no such file"):
        lpips.build_lpips("alex", weights="/nonexistent/w.npz")


def test_lpips_npz_round_trip_by_flag_env_and_cache(alex, tmp_path, monkeypatch):
    path = str(tmp_path / "w.npz")
    lpips.save_npz(alex.model, "alex", path)
    x, y = images(4), images(5)
    ref = alex(x, y)
    by_flag = lpips.build_lpips("alex", weights=path, seed=7)
    assert by_flag.label == "calibrated" and by_flag.weights == path
    np.testing.assert_array_equal(by_flag(x, y), ref)
    assert not np.allclose(lpips.build_lpips("alex", allow_uncalibrated=True, seed=7)(x, y), ref)
    monkeypatch.setenv(lpips.LPIPS_ENV, path)
    np.testing.assert_array_equal(lpips.build_lpips("alex", seed=7)(x, y), ref)
    monkeypatch.delenv(lpips.LPIPS_ENV)
    cached = weights.cache_path(lpips.lpips_cache_name("alex"))
    os.makedirs(os.path.dirname(cached))
    os.replace(path, cached)  # a pre-placed cache file is found with no argument
    found = lpips.build_lpips("alex", seed=7)
    assert found.weights == cached
    np.testing.assert_array_equal(found(x, y), ref)


def test_lpips_npz_rejects_negative_lin_and_wrong_net(alex, tmp_path):
    path = str(tmp_path / "w.npz")
    lpips.save_npz(alex.model, "alex", path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["lin2/kernel"] = -arrays["lin2/kernel"]
    np.savez(tmp_path / "neg.npz", **arrays)
    with pytest.raises(ValueError, match="negative"):
        lpips.build_lpips("alex", weights=str(tmp_path / "neg.npz"))
    with pytest.raises(ValueError, match="not 'vgg'"):
        lpips.build_lpips("vgg", weights=path)


def test_from_torch_layout_conversion_round_trip(alex, tmp_path):
    # torch layouts: conv [out, in, kh, kw] under features.<i>, lin [1, C, 1, 1]
    layers = lpips._conv_layers(alex.model, "alex")
    backbone, lin = {}, {}
    for conv, i in zip(lpips._backbone_convs("alex"), lpips.ALEX_TORCH):
        k, b = layers[conv].get_weights()
        backbone[f"features.{i}.weight"] = k.transpose(3, 2, 0, 1)
        backbone[f"features.{i}.bias"] = b
    for i in range(5):
        lin[f"lin{i}.model.1.weight"] = layers[f"lin{i}"].get_weights()[0].transpose(3, 2, 0, 1)
    assert backbone["features.0.weight"].shape == (64, 3, 11, 11)
    assert lin["lin1.model.1.weight"].shape == (1, 192, 1, 1)
    np.savez(tmp_path / "c.npz", **lpips.from_torch("alex", backbone, lin))
    x, y = images(6), images(7)
    conv = lpips.build_lpips("alex", weights=str(tmp_path / "c.npz"), seed=9)
    np.testing.assert_array_equal(conv(x, y), alex(x, y))
    with pytest.raises(ValueError, match="lin4"):
        lpips.from_torch("alex", backbone, {k: v for k, v in lin.items() if "lin4" not in k})


# ----------------------------------------------------------------------------- Table 1 API

def test_perceptual_set_unavailable_without_weights():
    ps = perceptual.PerceptualSet.build()
    ps.update(np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8))
    r = ps.result()
    for key in ("lpips", "fid"):
        assert r[key]["unavailable"] == perceptual.UNAVAILABLE == "unavailable (no weights)"
        assert perceptual.cell(r[key]) == perceptual.UNAVAILABLE
    assert all(perceptual.UNAVAILABLE in line for line in ps.describe())


def test_perceptual_set_uncalibrated_label_everywhere():
    rng = np.random.default_rng(8)
    pairs = [(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
              rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    r = perceptual.perceptual_scores(pairs, allow_uncalibrated=True, fid_extractor=None)
    lp = r["lpips"]
    assert lp["n"] == 4 and lp["mean"] > 0 and lp["net"] == "alex"
    assert lp["label"] == weights.UNCALIBRATED and weights.UNCALIBRATED in lp["weights"]
    assert perceptual.cell(lp).endswith("(uncalibrated)")
    assert "uncalibrated" in r["describe"][0]
    assert r["fid"] == {"unavailable": perceptual.UNAVAILABLE, "reason": "not requested"}


# ----------------------------------------------------------------------------- download

def test_fetch_uses_keras_home_cache_and_checksum(monkeypatch):
    body = b"fake weights " * 100
    good = hashlib.sha256(body).hexdigest()
    with FakeServer(lambda req: Reply(200, body=body) if req.path == "/w.bin"
                    else Reply(404, body=b"no")) as srv:
        src = weights.Source(srv.base_url + "/w.bin", "w.bin", file_hash=good)
        path = weights.fetch(src)
        assert path == weights.cache_path("w.bin")
        assert path.startswith(os.environ["KERAS_HOME"])
        assert open(path, "rb").read() == body and srv.count("/w.bin") == 1
        assert weights.fetch(src) == path and srv.count("/w.bin") == 1  # cached: no request
        bad = weights.Source(srv.base_url + "/w.bin", "w2.bin", file_hash="0" * 64)
        with pytest.raises(Exception, match="(?i)corrupt|incomplete|hash"):
            weights.fetch(bad)
        wrong_prefix = weights.Source(srv.base_url + "/w.bin", "w3-00000000.bin",
                                sha256_prefix="00000000" if not good.startswith("0" * 8) else "f")
        with pytest.raises(ValueError, match="sha256"):
            weights.fetch(wrong_prefix)
        assert not os.path.exists(weights.cache_path("w3-00000000.bin"))
        ok_prefix = weights.Source(srv.base_url + "/w.bin", "w4.bin", sha256_prefix=good[:8])
        assert open(weights.fetch(ok_prefix), "rb").read() == body


def test_preplaced_cache_file_skips_the_download(monkeypatch):
    body = b"pre-placed"
    src = weights.Source("http://127.0.0.1:9/never-contacted", "pre.bin",
                   file_hash=hashlib.sha256(body).hexdigest())
    os.makedirs(os.path.dirname(weights.cache_path("pre.bin")))
    with open(weights.cache_path("pre.bin"), "wb") as f:
        f.write(body)
    assert weights.fetch(src) == weights.cache_path("pre.bin")  # port 9 would refuse: no download
    # the FID lookup goes through the same cache, under Keras' own file name and md5
    keras_src = weights.SOURCES["keras-inceptionv3"]
    assert keras_src.file_hash == "bcbd6486424b2319ff4ef7d526e38f63"
    monkeypatch.setitem(weights.SOURCES, "keras-inceptionv3",
                        weights.Source(src.url, keras_src.fname, file_hash=src.file_hash))
    with open(weights.cache_path(keras_src.fname), "wb") as f:
        f.write(body)
    assert fid.fid_weights_path("keras-inceptionv3") == weights.cache_path(keras_src.fname)


# ----------------------------------------------------------------------------- converters

def load_tool(name: str):
    """A script of tools/ as a module (tools/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tool_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fid_converter_round_trip_gives_identical_keras_weights(tmp_path):
    conv = load_tool("convert_fid_weights")
    model = inception.build_pt_inception()
    state = weights.seeded_state_dict(inception.pt_inception_layout(model), 7)
    # what pytorch-fid's file has besides: the 1008-class logits and BN step counters
    extra = {"fc.weight": np.ones((1008, 2048), np.float32), "fc.bias": np.ones(1008, np.float32),
             "Mixed_5b.branch1x1.bn.num_batches_tracked": np.array(0)}
    out = conv.write_npz({**state, **extra}, str(tmp_path / "w.npz"), "ab" * 32)
    assert inception.load_pt_inception(model, out) == "ab" * 32  # the .pth's sha256, kept
    back, n_conv = {}, 0
    for layer in model.layers:  # Keras weights -> torch layout again
        if layer.name.endswith(".conv"):
            back[f"{layer.name}.weight"] = layer.get_weights()[0].transpose(3, 2, 0, 1)
            n_conv += 1
        elif layer.name.endswith(".bn"):
            for (_, t), w in zip(inception._BN, layer.get_weights()):
                back[f"{layer.name}.{t}"] = w
    assert n_conv == 94 and back.keys() == state.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)  # identical, not close
    with np.load(out) as z:
        assert str(z["source_sha256"]) == "ab" * 32 and str(z["extractor"]) == "pt_inception"


def test_wrong_state_dicts_and_weight_files_are_one_line_errors(tmp_path):
    model = inception.build_pt_inception()
    state = weights.seeded_state_dict(inception.pt_inception_layout(model), 0)
    aux = {**state, "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1), np.float32)}
    cases = [(lambda: inception.pt_inception_from_torch(aux, model), "unexpected key AuxLogits"),
             (lambda: inception.pt_inception_from_torch(
                 {k: v for k, v in state.items() if "Mixed_7c" not in k}, model),
              "missing key Mixed_7c"),
             (lambda: inception.pt_inception_from_torch(
                 {**state, "Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 5, 5))}, model),
              r"shape \(32, 3, 5, 5\)")]
    alex = lpips.build_lpips("alex", allow_uncalibrated=True)
    lpips.save_npz(alex.model, "alex", str(tmp_path / "lpips.npz"))
    (tmp_path / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    cases += [(lambda: inception.load_pt_inception(model, str(tmp_path / "lpips.npz")),
               "not pt_inception weights"),
              (lambda: inception.load_pt_inception(model, str(tmp_path / "keras.h5")),
               "not a pt_inception .npz"),
              (lambda: lpips.from_torch("vgg", {"features.0.weight": np.zeros(1)}, {}),
               "lacks features.0.bias")]
    for fn, says in cases:
        with pytest.raises(ValueError, match=says) as err:
            fn()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("tool, argv, says", [
    ("convert_fid_weights", ["--pth", "{bad}"], "does not start with 6726825d"),
    ("convert_lpips_weights", ["--backbone", "{bad}", "--lin", "{bad}"],
     "does not start with 7be5be79"),
    ("convert_fid_weights", ["--pth", "{tmp}/none.pth"], "no such file")])
def test_converters_refuse_a_wrong_file_in_one_line(tool, argv, says, tmp_path, capfd):
    bad = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    bad.write_bytes(b"not the weights")  # right name, wrong hash: checked before torch
    argv = [a.replace("{bad}", str(bad)).replace("{tmp}", str(tmp_path)) for a in argv]
    capfd.readouterr()
    assert load_tool(tool).main([*argv, "--out", str(tmp_path / "o.npz")]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and says in err
    assert not list(tmp_path.glob("o.npz*"))
