"""LPIPS and FID number for number against the reference packages, without torch.

``tests/data/perceptual_parity.npz`` holds what ``lpips.LPIPS`` (alex, vgg),
pytorch-fid's ``InceptionV3([3])`` and its ``calculate_frechet_distance`` returned
(``python tools/parity_perceptual.py``; versions in its ``meta``) for seeded random
weights, on 4 pairs of 128x128 simulated test cutouts stored in the file. Here the same
weights are rebuilt from the seed (``common.weights.seeded_state_dict``), loaded into
our networks through the converters' mappings and the weight files, and our outputs
must match: LPIPS to 1e-5 relative per image, pool_3 features to 1e-4 of the largest
feature, Fréchet distances to 1e-6 relative (float64), including singular covariances
(N < D, as Table 1's 200 test galaxies give).
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from common import fid, inception, lpips, perceptual, weights

GOLDEN = Path(__file__).parent / "data" / "perceptual_parity.npz"
with np.load(GOLDEN) as _z:
    G = {k: _z[k] for k in _z.files}
META = json.loads(str(G["meta"]))
FD_CASES = sorted(k[3:-5] for k in G if k.startswith("fd_") and k.endswith("_case"))


def fingerprint(arrays) -> float:
    """As in tools/parity_perceptual.py: sum of |values| in float64."""
    return float(sum(np.abs(np.asarray(a, np.float64)).sum() for a in arrays.values()))


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
    """Seeded pt_inception weights in torch layout, and our .npz made from them."""
    state = weights.seeded_state_dict(inception.pt_inception_layout(inception.build_pt_inception()), META["seed"])
    path = str(tmp_path_factory.mktemp("fid") / "pt_inception.npz")
    np.savez(path, **inception.pt_inception_from_torch(state))
    return state, path


def test_golden_file_is_small_and_says_how_it_was_made():
    assert GOLDEN.stat().st_size < 1_000_000
    assert META["command"] == "python tools/parity_perceptual.py"
    assert {"torch", "lpips", "pytorch-fid"} <= set(META)
    assert G["x"].shape == G["y"].shape == (4, 128, 128, 3) and G["x"].dtype == np.uint8


@pytest.mark.parametrize("net", lpips.NETS)
def test_lpips_equals_the_lpips_package(net, tmp_path):
    state = weights.seeded_state_dict(lpips.lpips_layout(lpips.build_lpips_model(net), net), META["seed"])
    assert fingerprint(state) == pytest.approx(float(G[f"weights_{net}"]), rel=1e-12)
    path = str(tmp_path / "w.npz")
    np.savez(path, **lpips.from_torch(net, {k: v for k, v in state.items() if k[0] == "f"},
                                  {k: v for k, v in state.items() if k[0] == "l"}))
    ours = lpips.build_lpips(net, weights=path)(perceptual.to_unit(G["x"]), perceptual.to_unit(G["y"]))
    ref = G[f"lpips_{net}"]
    assert ref.shape == (4,) and (ref > 0).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=0)


def test_fid_features_equal_pytorch_fid(fid_weights):
    state, path = fid_weights
    assert fingerprint(state) == pytest.approx(float(G["weights_pt_inception"]), rel=1e-12)
    ext = fid.build_fid_extractor("tf2015", weights=path)  # the alias of pt_inception
    assert ext.extractor == "pt_inception" and ext.size == 299
    ours = ext(np.concatenate([G["x"], G["y"]]))  # 128x128 uint8, resized to 299 inside
    ref = G["fid_features"].astype(np.float64)
    assert ours.shape == ref.shape == (8, 2048)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("case", FD_CASES)
def test_frechet_distance_equals_pytorch_fid(case):
    n1, n2, d, shift = G[f"fd_{case}_case"]
    f1 = fid.parity_features(int(n1), int(d), 1)
    f2 = fid.parity_features(int(n2), int(d), 2, float(shift))
    np.testing.assert_allclose([fingerprint({"a": f1}), fingerprint({"b": f2})],
                               G[f"fd_{case}_inputs"], rtol=1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fid.fid_from_features(f1, f2)
    assert (min(n1, n2) < fid.FID_DIMS) == any(
        issubclass(w.category, fid.FewSamplesWarning) for w in caught)
    assert r["value"] == pytest.approx(float(G[f"fd_{case}"]), rel=1e-6, abs=0)


def test_golden_cases_include_singular_covariances():
    singular = [c for c in FD_CASES if G[f"fd_{c}_case"][:2].min() < G[f"fd_{c}_case"][2]]
    assert any(G[f"fd_{c}_case"][2] == fid.FID_DIMS for c in singular)
    assert len(singular) < len(FD_CASES)  # a full-rank case too
