"""Tests for data.simulate (the CLI), data.sim_luo and data.scene: layout, determinism,
resume, survey ordering, defects, CLI.

Tiny datasets (a handful of 128x128 galaxies) so the file runs in well under a minute
on two shared cores. One dataset is made per module and shared between tests.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.io import _host
from common.errors import DataError
from data import layout, render, scene, sim_luo, simulate
from data.sim_luo import SimConfig
from data.surveys import get_survey

N_TRAIN, N_TEST, SEED = 4, 2, 7
REPO = Path(__file__).resolve().parent.parent
#: a tiny set through the CLI: 1 + 1 galaxies of 32 px, one process
TINY = ["--n-train", "1", "--n-test", "1", "--size", "32", "--workers", "1",
        "--no-progress"]


def _cfg(out, **kw):
    base = dict(out=out, n_train=N_TRAIN, n_test=N_TEST, seed=SEED, workers=1,
                progress=False)
    base.update(kw)
    return SimConfig(**base)


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _read_manifest(root):
    return pd.read_csv(layout.manifest_path(root), dtype={"id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return sim_luo.simulate(_cfg(tmp_path_factory.mktemp("sim") / "a"))


def test_layout_and_manifest(ds):
    df = layout.read_manifest(ds)
    assert len(df) == N_TRAIN + N_TEST
    assert df["id"].tolist() == [f"sim{i:06d}" for i in range(1, 7)]
    assert (df["split"] == "train").sum() == N_TRAIN
    for col in ("r_mag", "hlr_bulge", "hlr_disk", "bulge_frac", "q", "pa", "has_arms",
                "n_knots", "companion", "n_stars", "defects_sdss", "defects_decals",
                "defects_hsc", "petro_theta"):
        assert col in df.columns, col
    assert df["r_mag"].between(14.0, 17.77).all()
    assert (df["petro_theta"] >= 3.0 - 1e-6).all()
    assert df["ra"].between(130, 220).all() and df["dec"].between(-2, 2).all()
    for r in df.itertuples():
        for s in ("sdss", "decals", "hsc"):
            img = render.read_jpeg(layout.image_path(ds, r.split, s, r.id))
            assert img.shape == (128, 128, 3)
        has_truth = layout.truth_path(ds, r.split, r.id).exists()
        assert has_truth == (r.split == "test")  # default --truth test
    t = np.load(layout.truth_path(ds, "test", df["id"].iloc[-1]))
    assert t.shape == (128, 128, 3) and t.dtype == np.float32
    assert t.min() >= -1e-3 and t.max() > 0.01  # noise-free nanomaggies, galaxy present
    assert not [f for f in _files(ds) if f.endswith(".tmp")]


def test_deterministic_and_worker_independent(ds, tmp_path):
    b = sim_luo.simulate(_cfg(tmp_path / "b", workers=2))
    assert _files(ds) == _files(b)
    for f in _files(ds):
        assert (ds / f).read_bytes() == (b / f).read_bytes(), f
    c = scene.draw_params(SEED + 1, 0, _cfg(tmp_path / "c"))
    assert c["r_mag"] != scene.draw_params(SEED, 0, _cfg(tmp_path / "c"))["r_mag"]


def test_resume_regenerates_only_missing(ds, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(ds, root)
    victim = layout.image_path(root, "train", "decals", "sim000002")
    want = victim.read_bytes()
    victim.unlink()
    (root / layout.MANIFEST).unlink()  # as if killed before the end
    before = {f: (root / f).stat().st_mtime_ns for f in _files(root)}
    sim_luo.simulate(_cfg(root))
    assert victim.read_bytes() == want
    for f, t in before.items():
        assert (root / f).stat().st_mtime_ns == t, f"{f} was rewritten"
    assert (root / layout.MANIFEST).read_bytes() == (ds / layout.MANIFEST).read_bytes()


def test_resume_refuses_other_settings(ds, tmp_path):
    root = tmp_path / "o"
    shutil.copytree(ds, root)
    with pytest.raises(DataError, match="seed"):
        sim_luo.simulate(_cfg(root, seed=SEED + 1))


def _sharpness(x):
    """Mean over images of peak / total: a blurrier view spreads the same galaxy out.

    ``x``: ``[N, H, W]`` noise-free images; unit-free, so native-pixel units cancel.
    """
    return np.mean([im.max() / im.sum() for im in x])


def test_survey_ordering():
    """On the images themselves: SDSS blurrier and noisier than DECaLS, DECaLS than HSC."""
    cfg = _cfg("/unused", n_train=0, n_test=6, rate_star=0.0, rate_companion=0.0,
               rate_streak=0, rate_saturated=0, rate_noisy=0, rate_blurred=0)
    noisy = {s: [] for s in ("sdss", "decals", "hsc")}
    clean = {s: [] for s in ("sdss", "decals", "hsc")}
    for i in range(cfg.n_test):
        p = scene.draw_params(cfg.seed, i, cfg)
        sc = scene.Scene(p)
        for s in noisy:
            noisy[s].append(sim_luo.observe(sc, p, s))
            clean[s].append(sim_luo.observe(sc, p, s, noise_scale=0.0))
    # resolution: concentration of the noise-free r band (plane 1 of every survey)
    hf = {s: _sharpness(np.stack(clean[s])[..., 1]) for s in clean}
    assert hf["sdss"] < hf["decals"] < hf["hsc"], hf
    # noise in g (plane 0 of every survey), as surface brightness: native-pixel values
    # / native pixel area = nanomaggies per arcsec^2, measured as images - noise-free
    sb = {s: np.std(np.stack(noisy[s])[..., 0] - np.stack(clean[s])[..., 0])
          / get_survey(s).pixel_scale ** 2 for s in noisy}
    assert sb["sdss"] > sb["decals"] > sb["hsc"], sb
    # the same ordering read back from the rendered 8-bit images via inverse_render
    # (robust MAD std of the top rows, mostly sky)
    def mad(x):
        return 1.4826 * np.median(np.abs(x - np.median(x)))

    edge = {}
    for s in noisy:
        sv = get_survey(s)
        inv = render.inverse_render(render.render_planes(np.stack(noisy[s])[0], sv), sv)
        edge[s] = mad(inv[:16, :, 0]) / sv.pixel_scale ** 2
    assert edge["sdss"] > edge["decals"] > edge["hsc"], edge


def test_rmse_decals_closer_to_hsc_than_sdss(ds):
    df = layout.read_manifest(ds)
    err = {s: [] for s in ("sdss", "decals")}
    for r in df.itertuples():
        hsc = render.read_jpeg(layout.image_path(ds, r.split, "hsc", r.id)).astype(float)
        for s in err:
            x = render.read_jpeg(layout.image_path(ds, r.split, s, r.id)).astype(float)
            err[s].append(np.sqrt(np.mean((x - hsc) ** 2)))
    assert np.mean(err["decals"]) < np.mean(err["sdss"]), err


def test_defects_recorded_and_applied(tmp_path):
    cfg = _cfg(tmp_path / "d", n_train=2, n_test=0, rate_streak=1.0, rate_saturated=0.0,
               rate_noisy=0.0, rate_blurred=0.0, rate_star=0.0, rate_companion=0.0)
    p = scene.draw_params(cfg.seed, 0, cfg)
    assert p["defects_sdss"] == p["defects_decals"] == p["defects_hsc"] == "streak"
    sc = scene.Scene(p)
    with_d = sim_luo.observe(sc, p, "hsc", noise_scale=0.0)
    without = sim_luo.observe(sc, p, "hsc", defects=False, noise_scale=0.0)
    assert (with_d - without).max() > 0.01  # a bright trail was added
    # noisy: x3-5 sky noise; blurred: lower peak
    p2 = dict(p, defects_hsc="noisy")
    diff = sim_luo.observe(sc, p2, "hsc") - without
    assert 2.5 < diff.std() / (sim_luo.observe(sc, p, "hsc", defects=False) - without).std() < 5.5
    p3 = dict(p, defects_hsc="blurred")
    assert sim_luo.observe(sc, p3, "hsc", noise_scale=0.0).max() < without.max()
    p4 = dict(p, defects_hsc="saturated")
    rgb = render.render_planes(sim_luo.observe(sc, p4, "hsc"), get_survey("hsc"))
    assert (rgb == 255).all(-1).sum() > 20  # a white, saturated patch
    # rates 0 -> nothing, written to the manifest of a real run
    sim_luo.simulate(_cfg(tmp_path / "e", n_train=2, n_test=0, rate_streak=0.0,
                           rate_saturated=0.0, rate_noisy=0.0, rate_blurred=0.0))
    m = _read_manifest(tmp_path / "e")
    assert (m[["defects_sdss", "defects_decals", "defects_hsc"]] == "").all().all()


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    assert simulate.main(["--out", str(out), *TINY, "--seed", "3", "--truth", "all",
                          "--rate-streak", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote 2 galaxies (1 train, 1 test), seed 3, to {out} "
        f"(manifest: {out / 'manifest.csv'})")
    df = layout.read_manifest(out)
    assert len(df) == 2
    assert layout.truth_path(out, "train", "sim000001").exists()
    assert render.read_jpeg(layout.image_path(out, "test", "hsc", "sim000002")).shape == (32, 32, 3)
    cfg = simulate.parse_args(["--out", str(out), "--truth", "none"])
    assert cfg.truth == "none" and cfg.n_train == 300


@pytest.mark.parametrize("argv,word", [
    (["--n-train", "-3"], "-3"),
    (["--n-test", "x"], "'x'"),
    (["--rate-streak", "1.5"], "1.5"),
    (["--rate-noisy", "-0.1"], "-0.1"),
    (["--truth", "some"], "some"),
    (["--workers", "0"], "0"),
    (["--noise-sdss", "-1"], "-1"),
    (["--bogus"], "--bogus"),
])
def test_cli_bad_arguments(argv, word, capsys):
    with pytest.raises(SystemExit) as e:
        simulate.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m data.simulate: error:") and word in err


def _tree(root):
    """{relative path: (size, mtime)} of every file and folder under ``root``."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def test_cli_refuses_before_writing_anything(tmp_path, capsys):
    """Bad --out, no galaxies, another seed: one `error:` line, exit 2, nothing written."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    ok = tmp_path / "ok"
    assert simulate.main(["--out", str(ok), *TINY]) == 0
    before = _tree(tmp_path)
    capsys.readouterr()
    for argv, msg in (
            (["--out", str(afile), *TINY], f"--out {afile} exists and is not a folder"),
            (["--out", str(tmp_path / "zero"), *TINY, "--n-train", "0", "--n-test", "0"],
             "nothing to simulate: --n-train = --n-test = 0"),
            (["--out", str(ok), *TINY, "--seed", "1"],
             f"{ok} was simulated with other settings: seed=0 (now 1)")):
        assert simulate.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {msg}") and err.count("\n") == 1, err
        assert _tree(tmp_path) == before


def test_resume_removes_a_killed_runs_temporaries(tmp_path):
    root = tmp_path / "t"
    sim_luo.simulate(_cfg(root, n_train=1, n_test=0, size=32))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: a killed writer's
    stale = [root / f".manifest.csv.tmp~{_host()}~{gone.pid}~0badcafe.csv",
             root / "train" / "hsc" / f".sim000001.jpg.tmp~{_host()}~{gone.pid}~00c0ffee.jpg"]
    for p in stale:
        p.write_bytes(b"half a file")
    (root / layout.MANIFEST).unlink()  # killed before the end
    sim_luo.simulate(_cfg(root, n_train=1, n_test=0, size=32))
    assert not [p for p in stale if p.exists()]


def _ppid_and_state(pid):
    """(parent pid, state letter) of a process, from ``/proc/<pid>/stat``; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]  # after the command's name
    return int(ppid), state


def _children(pid):
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and (_ppid_and_state(p.name) or (0,))[0] == pid]


def _running(pid):
    got = _ppid_and_state(pid)
    return got is not None and got[1] not in "ZX"  # a zombie has ended


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    """`kill -9` of the simulator: its two workers end too (not reparented to PID 1)."""
    out = tmp_path / "k"
    proc = subprocess.Popen(
        [sys.executable, "-m", "data.simulate", "--out", str(out), "--n-train", "40",
         "--n-test", "0", "--size", "64", "--workers", "2", "--no-progress"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers, deadline = [], time.monotonic() + 15
    try:  # wait for both workers and a first galaxy (workers are set up by then)
        while time.monotonic() < deadline and proc.poll() is None and not (
                len(workers) >= 2 and any(out.glob("train/*/*.jpg"))):
            time.sleep(0.05)
            workers = _children(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert len(workers) == 2, "the simulator ended or stalled before it could be killed"
    deadline = time.monotonic() + 5
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [w for w in workers if _running(w)]
    for w in left:  # do not leave them behind for the rest of the suite
        os.kill(w, signal.SIGKILL)
    assert not left, f"worker(s) {left} outlived their parent"


@pytest.mark.parametrize("argv", [["data.simulate"], ["data.simulate", "--setup", "lin"],
                                  ["data.shard"], ["data.download"],
                                  ["data.download", "legacy"], ["data.catalog"]])
def test_help_shows_every_default_once_without_tensorflow(argv):
    code = ("import runpy, sys\n"
            f"sys.argv = {[argv[0], *argv[1:], '--help']!r}\n"
            "try:\n"
            f"    runpy.run_module({argv[0]!r}, run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "print('tensorflow' in sys.modules, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # What makes --help slow is TensorFlow's import (~5 s); timings are benchmarks' job.
    assert res.stderr.splitlines()[-1] == "False", "--help imported TensorFlow"
    text = " ".join(res.stdout.split())  # unwrapped
    assert text.startswith("usage: python -m " + " ".join(argv))
    assert "(default: None)" not in text and "['" not in text
    assert not re.search(r"\(default[^)]*\) \(default", text)  # each default once
    if argv == ["data.simulate"]:
        for shown in ("training galaxies (default: 300)", "test galaxies (default: 200)",
                      "derives from it (default: 0)", "per survey (default: 0.03)",
                      "sky noise (default: 1.0)", "processes (default: all CPUs)"):
            assert shown in text


def test_config_validation():
    with pytest.raises(ValueError, match="rate_star"):
        SimConfig(rate_star=2.0)
    with pytest.raises(ValueError, match="n_train"):
        SimConfig(n_train=-1)


@pytest.mark.parametrize("survey", ["sdss", "decals", "hsc"])
def test_sky_noise_has_the_rms_and_correlation_the_model_predicts(survey):
    """Blank sky through the coadd resampling and the viewer's resampling (the code path
    of ``observe``) against ``sky_noise_model``: per-pixel rms within 3 %, neighbour
    correlation within 0.03, integral correlation length within 10 %; and resampling is
    flux-conserving, so sums over large boxes keep the depth's noise (surveys.py)."""
    sv = get_survey(survey)
    band = sv.rgb_bands[1]
    model = sim_luo.sky_noise_model(sv, band)
    sigma = scene.pixel_noise(sv, band)
    rng = np.random.default_rng(3)
    n = sim_luo.native_size(sv)
    natives, outs = [], []
    for _ in range(96):  # SDSS has one exposure, so its rms varies with that offset
        native = sim_luo.coadd_noise(rng, n, sigma, sv, band)
        natives.append(native)
        outs.append(native if n == 128 else sim_luo._resample(native, sv.pixel_scale, 128))
    outs = np.stack(outs)[:, 8:-8, 8:-8]  # away from the stamp's edges
    assert np.sqrt(np.mean(outs ** 2)) == pytest.approx(model["rms"], rel=0.03)
    rho = [np.mean(outs[:, :, k:] * outs[:, :, :outs.shape[2] - k]) / np.mean(outs ** 2)
           for k in range(12)]
    assert rho[1] == pytest.approx(model["rho1"], abs=0.03)
    assert 1 + 2 * sum(rho[1:]) == pytest.approx(model["corr_length"], rel=0.1)
    # lower per pixel than the depth's white noise, and correlated
    assert model["rms_native"] < 0.95 * sigma and model["rho1"] > 0.05
    # flux conservation: an 8x8-pixel box sum has (almost) the white noise's variance
    box = np.stack(natives)[:, 10:-10, 10:-10]
    sums = box[:, : box.shape[1] // 8 * 8, : box.shape[2] // 8 * 8]
    sums = sums.reshape(len(sums), sums.shape[1] // 8, 8, -1, 8).sum((2, 4))
    assert np.std(sums) == pytest.approx(8 * sigma, rel=0.12)
