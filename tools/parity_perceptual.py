"""Parity of our LPIPS and FID with the reference packages, on the same random weights.

    python tools/parity_perceptual.py                # compare; write the golden file
    python tools/parity_perceptual.py --no-write     # compare only
    python tools/parity_perceptual.py --timing 200   # time ours on 200 test galaxies

Needs torch, torchvision, lpips and pytorch-fid (not project requirements; CI does not
run this script). Their pretrained weights are not needed: parity is checked on seeded
random state dicts (``common.weights.seeded_state_dict``), loaded both into the
reference networks and, through our converters, into ours. That checks every line of
the ports: layer order, padding, pooling, input resize and scaling, normalisation, the
lin layers and the spatial mean. Compared, per image:

* LPIPS alex and vgg: ``lpips.LPIPS(net=..., version="0.1")`` on ``[-1, 1]`` 128x128
  pairs (``x / 127.5 - 1``, as ``lpips.im2tensor``) vs :class:`common.lpips.LPIPS`;
* FID features: pytorch-fid ``InceptionV3([3])`` on ``[0, 1]`` images (``uint8 / 255``,
  as its ``ToTensor``), resized by it to 299x299, vs our ``pt_inception`` extractor;
* the Fréchet distance: pytorch-fid ``calculate_frechet_distance`` on ``np.mean`` /
  ``np.cov`` statistics vs :func:`common.fid.fid_from_features`, in float64, on
  synthetic feature sets (:func:`common.fid.parity_features`) with N < D (singular
  covariances, e.g. Table 1's 200 test galaxies with D = 2048) and N > D.

Images: the first ``--pairs`` test galaxies of ``--data`` (SDSS input vs HSC target, the
pairs Table 1 scores), or, without that folder, a seeded synthetic set. The reference
outputs, the images and fingerprints of the seeded weights go to ``--out`` (default
``tests/data/perceptual_parity.npz``), which ``tests/test_perceptual_parity.py`` checks
without torch. Exit code 0 when every difference is within tolerance, 1 otherwise.

``--timing N`` times our LPIPS (alex, vgg) and FID (features of 2N images, Fréchet
distance) on N test pairs with random weights (the speed does not depend on them), and
the reference packages' when torch is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import fid, inception, lpips as lpips_metric, perceptual, weights
from common.cli import Parser, add_verbose, positive_int

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "perceptual_parity.npz"
#: Fréchet-distance cases: name -> (n1, n2, d, shift of set 2); set i has seed i. The
#: first is Table 1's shape (200 test galaxies, 2048-d pool_3): singular covariances.
FD_CASES = {"n200_d2048": (200, 200, 2048, 0.3), "n40_50_d64": (40, 50, 64, 0.3),
            "n3000_d64": (3000, 3000, 64, 0.1)}
#: Tolerances (also in the CI test): features relative to the largest reference feature,
#: LPIPS relative per image, Fréchet distance relative.
TOL = {"features": 1e-4, "lpips": 1e-5, "fd": 1e-6}


def parse_args(argv=None) -> argparse.Namespace:
    ap = Parser(prog="python tools/parity_perceptual.py", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="datasets/sim-default",
                    help="dataset root whose test split gives the images")
    ap.add_argument("--pairs", type=positive_int, default=4, help="image pairs compared")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--out", default=str(GOLDEN.relative_to(REPO)), help="golden file")
    ap.add_argument("--no-write", action="store_true", help="compare only")
    ap.add_argument("--timing", type=int, default=0,
                    help="time LPIPS and FID on this many test pairs instead (default 0: off)")
    add_verbose(ap)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- inputs

def load_pairs(root: str, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` (SDSS, HSC) test pairs ``[n, H, W, 3]`` uint8 and where they came from; a
    seeded synthetic set of 128x128 galaxies when ``root`` has no test split."""
    from PIL import Image

    sdss, hsc = Path(root) / "test" / "sdss", Path(root) / "test" / "hsc"
    if sdss.is_dir() and hsc.is_dir():
        names = sorted(p.name for p in hsc.glob("*.jpg"))[:n]
        if len(names) == n:
            read = lambda d: np.stack([np.asarray(Image.open(d / f).convert("RGB"))
                                       for f in names])
            return read(sdss), read(hsc), f"{root} test split, sdss vs hsc, {names[0]}.."
    return synthetic(n, 0), synthetic(n, 1), "synthetic galaxies (seeded)"


def synthetic(n: int, seed: int, size: int = 128) -> np.ndarray:
    """``[n, size, size, 3]`` uint8: an elliptical exponential blob of random size,
    colour and orientation on a noisy sky."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    out = []
    for _ in range(n):
        q, pa, r = rng.uniform(0.3, 1), rng.uniform(0, np.pi), rng.uniform(3, 15)
        u = xx * np.cos(pa) + yy * np.sin(pa)
        v = (-xx * np.sin(pa) + yy * np.cos(pa)) / q
        blob = np.exp(-np.hypot(u, v) / r)[..., None] * rng.uniform(120, 240, 3)
        out.append(np.clip(blob + 20 + rng.normal(0, 6, (size, size, 3)), 0, 255))
    return np.round(np.stack(out)).astype(np.uint8)


def weight_sets(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """The seeded state dicts (torch layout) of LPIPS alex and vgg and the FID Inception,
    shaped from our networks (the references are checked to have the same layout)."""
    out = {net: weights.seeded_state_dict(lpips_metric.lpips_layout(lpips_metric.build_lpips_model(net), net), seed)
           for net in lpips_metric.NETS}
    out["pt_inception"] = weights.seeded_state_dict(inception.pt_inception_layout(inception.build_pt_inception()),
                                              seed)
    return out


def fingerprint(arrays: dict[str, np.ndarray]) -> float:
    """Sum of the absolute values of all arrays (float64): detects a changed RNG stream."""
    return float(sum(np.abs(np.asarray(a, np.float64)).sum() for a in arrays.values()))


# ----------------------------------------------------------------------------- ours

def our_lpips(net: str, state: dict, tmp: str):
    """Our LPIPS network loaded, through :func:`common.lpips.from_torch` and the .npz,
    with ``state``."""
    backbone = {k: v for k, v in state.items() if k.startswith("features.")}
    lin = {k: v for k, v in state.items() if k.startswith("lin")}
    path = os.path.join(tmp, f"lpips_{net}.npz")
    np.savez(path, **lpips_metric.from_torch(net, backbone, lin))
    return lpips_metric.build_lpips(net, weights=path)


def our_fid(state: dict, tmp: str):
    """Our pt_inception extractor loaded, through the converter's mapping, with ``state``."""
    path = os.path.join(tmp, "pt_inception.npz")
    np.savez(path, **inception.pt_inception_from_torch(state))
    return fid.build_fid_extractor("pt_inception", weights=path)


# ----------------------------------------------------------------------------- references

def import_references():
    """Import torch, lpips and pytorch-fid. torchvision's CUDA wheel on a CPU-only torch
    cannot load its C++ ops, and its import then fails registering fake kernels for
    ``nms``/``qnms``; defining those two schemas first lets it import (the ops are never
    called here: only its AlexNet, VGG16 and Inception3 modules are)."""
    import torch
    try:
        import torchvision  # noqa: F401
    except RuntimeError:
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import_references.keep = lib  # the schemas live as long as the library object
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
    import lpips
    import pytorch_fid.fid_score
    import pytorch_fid.inception
    return torch, lpips, pytorch_fid


def ref_lpips(lpips, torch, net: str, state: dict):
    """``lpips.LPIPS`` with the backbone ``features.<i>`` and lin weights of ``state``."""
    with warnings.catch_warnings():  # lpips passes torchvision a deprecated argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False).eval()
    own = model.state_dict()
    new, used = {}, set()
    for key, value in own.items():
        m = re.fullmatch(r"net\.slice\d\.(\d+)\.(weight|bias)", key)
        # lins.<l> is the same module as lin<l> (a ModuleList of them): both are listed
        src = f"features.{m[1]}.{m[2]}" if m else re.sub(r"^lins\.(\d)\.", r"lin\1.", key)
        if src in state:
            new[key], _ = torch.from_numpy(state[src]), used.add(src)
        elif key.startswith("scaling_layer."):
            new[key] = value  # the fixed shift/scale buffers
        else:
            raise SystemExit(f"lpips {net}: no seeded weight for {key}")
    if used != set(state):
        raise SystemExit(f"lpips {net}: our layout has extra arrays {sorted(set(state) - used)}")
    model.load_state_dict(new, strict=True)
    return model


def ref_inception(torch, pytorch_fid, state: dict, seed: int):
    """pytorch-fid's ``InceptionV3([3])`` whose FID Inception loads ``state`` (plus seeded
    ``fc.*``, unused by pool_3) where it would download its .pth."""
    full = dict(state)
    full.update(weights.seeded_state_dict({"fc.weight": (1008, 2048), "fc.bias": (1008,)}, seed))
    mod = pytorch_fid.inception
    original = mod.load_state_dict_from_url
    mod.load_state_dict_from_url = lambda *a, **k: {k: torch.from_numpy(v)
                                                    for k, v in full.items()}
    try:
        model = mod.InceptionV3([3]).eval()
    finally:
        mod.load_state_dict_from_url = original
    theirs = {k: tuple(v.shape) for k, v in model.blocks.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    ours = inception.pt_inception_layout(inception.build_pt_inception())
    if sorted(theirs.values()) != sorted(ours.values()) or len(theirs) != len(ours):
        raise SystemExit("pytorch-fid's InceptionV3 has another layout than ours")
    return model


def to_nchw(torch, x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# ----------------------------------------------------------------------------- parity

def parity(a: argparse.Namespace) -> int:
    torch, lpips, pytorch_fid = import_references()
    x, y, where = load_pairs(a.data, a.pairs)
    weights = weight_sets(a.seed)
    golden = {"x": x, "y": y}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for net in lpips_metric.NETS:
            ref = ref_lpips(lpips, torch, net, weights[net])
            theirs = ref(to_nchw(torch, x / 127.5 - 1.0).float(),
                         to_nchw(torch, y / 127.5 - 1.0).float()).numpy().reshape(-1)
            ours = our_lpips(net, weights[net], tmp)(perceptual.to_unit(x), perceptual.to_unit(y))
            golden[f"lpips_{net}"] = theirs.astype(np.float64)
            rel = np.abs(ours - theirs) / np.abs(theirs)
            rows.append((f"LPIPS {net}", np.abs(ours - theirs).max(), rel.max(),
                         TOL["lpips"], f"values {theirs.min():.4g}..{theirs.max():.4g}"))
        images = np.concatenate([x, y])
        ref = ref_inception(torch, pytorch_fid, weights["pt_inception"], a.seed)
        theirs = ref(to_nchw(torch, images.astype(np.float32) / 255.0))[0]
        theirs = theirs.numpy().reshape(len(images), -1)
        ours = our_fid(weights["pt_inception"], tmp)(images)
        golden["fid_features"] = theirs.astype(np.float32)
        diff = np.abs(ours - theirs)
        rows.append(("FID features", diff.max(), diff.max() / np.abs(theirs).max(),
                     TOL["features"], f"{len(images)} images x 2048, max {theirs.max():.4g}"))
    from pytorch_fid.fid_score import calculate_frechet_distance
    for name, (n1, n2, d, shift) in FD_CASES.items():
        f1, f2 = fid.parity_features(n1, d, 1), fid.parity_features(n2, d, 2, shift)
        stats = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (f1, f2)]  # as pytorch-fid
        theirs = float(calculate_frechet_distance(*stats[0], *stats[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fid.FewSamplesWarning)
            ours = fid.fid_from_features(f1, f2)["value"]  # N <= D: the low-rank route
        by_stats = fid.frechet_distance(*stats[0], *stats[1])  # the O(D^3) eigen route
        golden[f"fd_{name}"] = np.float64(theirs)
        golden[f"fd_{name}_case"] = np.array([n1, n2, d, shift], np.float64)
        golden[f"fd_{name}_inputs"] = np.array([fingerprint({"a": f1}), fingerprint({"b": f2})])
        for how, v in (("features", ours), ("stats", by_stats)):
            rows.append((f"Frechet {name} {how}", abs(v - theirs), abs(v - theirs) / abs(theirs),
                         TOL["fd"], f"N={n1}/{n2}, D={d}, value {theirs:.6g}"))
    for key, state in weights.items():
        golden[f"weights_{key}"] = np.float64(fingerprint(state))
    from importlib.metadata import version
    golden["meta"] = np.array(json.dumps({
        "seed": a.seed, "images": where, "command": "python tools/parity_perceptual.py",
        **{k: version(k) for k in ("torch", "torchvision", "lpips", "pytorch-fid", "numpy",
                                   "scipy", "tensorflow", "keras")}}))
    ok = report(rows)
    if not a.no_write:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        np.savez_compressed(a.out, **golden)
        print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e3:.0f} kB)")
    return 0 if ok else 1


def report(rows) -> bool:
    """Print one line per metric; True when all are within tolerance."""
    print(f"{'metric':<28} {'max abs diff':>13} {'max rel diff':>13} {'tolerance':>10}  verdict")
    ok = True
    for name, ab, rel, tol, note in rows:
        good = rel <= tol
        ok &= good
        print(f"{name:<28} {ab:13.3e} {rel:13.3e} {tol:10.0e}  "
              f"{'ok' if good else 'FAIL'}  ({note})")
    return ok


# ----------------------------------------------------------------------------- timing

def timing(a: argparse.Namespace) -> int:
    """Time our metrics (and the references' if torch is importable) on ``a.timing``
    test pairs of 128x128 images."""
    x, y, where = load_pairs(a.data, a.timing)
    weights = weight_sets(a.seed)
    print(f"{len(x)} pairs from {where}; random weights (seed {a.seed}); "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for net in lpips_metric.NETS:
            t0 = time.perf_counter()
            m = our_lpips(net, weights[net], tmp)
            t1 = time.perf_counter()
            m(perceptual.to_unit(x), perceptual.to_unit(y))
            print(f"ours  LPIPS {net}: {time.perf_counter() - t1:6.1f} s "
                  f"(+ {t1 - t0:.1f} s build)")
        t0 = time.perf_counter()
        ext = our_fid(weights["pt_inception"], tmp)
        t1 = time.perf_counter()
        f1, f2 = ext(x), ext(y)
        t2 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fid.FewSamplesWarning)
            fid.fid_from_features(f1, f2)
        t3 = time.perf_counter()
        print(f"ours  FID features of {2 * len(x)} images: {t2 - t1:6.1f} s "
              f"(+ {t1 - t0:.1f} s build); Frechet distance {t3 - t2:.1f} s")
    try:
        torch, lpips, pytorch_fid = import_references()
    except ImportError:
        return 0
    with torch.no_grad():
        for net in lpips_metric.NETS:
            ref = ref_lpips(lpips, torch, net, weights[net])
            t0 = time.perf_counter()
            for i in range(0, len(x), 32):
                ref(to_nchw(torch, x[i:i + 32] / 127.5 - 1.0).float(),
                    to_nchw(torch, y[i:i + 32] / 127.5 - 1.0).float())
            print(f"torch LPIPS {net}: {time.perf_counter() - t0:6.1f} s")
        ref = ref_inception(torch, pytorch_fid, weights["pt_inception"], a.seed)
        t0 = time.perf_counter()
        feats = [ref(to_nchw(torch, im[i:i + 32].astype(np.float32) / 255.0))[0]
                 .reshape(-1, 2048).numpy() for im in (x, y) for i in range(0, len(im), 32)]
        t1 = time.perf_counter()
        n = len(x)
        f = np.concatenate(feats)
        from pytorch_fid.fid_score import calculate_frechet_distance
        stats = [(g.mean(axis=0), np.cov(g, rowvar=False)) for g in (f[:n], f[n:])]
        calculate_frechet_distance(*stats[0], *stats[1])
        print(f"torch FID features of {2 * n} images: {t1 - t0:6.1f} s; Frechet distance "
              f"{time.perf_counter() - t1:.1f} s")
    return 0


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    a = parse_args(argv)
    quiet_tensorflow(a.verbose)
    return timing(a) if a.timing else parity(a)


if __name__ == "__main__":
    sys.exit(main())
