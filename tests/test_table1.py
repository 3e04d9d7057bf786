"""experiments/table1.py end to end on a tiny hand-made dataset."""
import json

import numpy as np
import pandas as pd
import pytest

from common.paper import TABLE1
from experiments import table1
from experiments.luo_models import MODELS, flag_overrides, train_config
from experiments.presets import LUO_PRESETS, TABLE1_PRESETS
from tests.fakes import make_fake

#: Luo et al. Table 1 as printed in the paper (RMSE, PSNR, SSIM, LPIPS, FID), typed
#: again here, independently of common.paper.TABLE1, so a slip in either shows.
PAPER = {pair: dict(zip(("rmse", "psnr", "ssim", "lpips", "fid"), values)) for pair, values in {
    "SDSS–HSC": (34.81, 17.59, 0.43, 0.19, 179.59),
    "Pseudo-HSC²–HSC": (21.69, 23.19, 0.71, 0.11, 105.16),
    "DECaLS–HSC": (27.39, 19.95, 0.56, 0.06, 78.91),
    "Pseudo-HSC¹–HSC": (20.04, 24.21, 0.72, 0.09, 98.46),
}.items()}


def test_paper_values_are_the_papers():
    assert TABLE1 == PAPER


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_fake(tmp_path_factory.mktemp("ds") / "tiny", size=128, n_train=6, n_test=3)


def test_table1_trains_all_models_and_writes_every_row(tiny, tmp_path, capsys, eager,
                                                      monkeypatch):
    for var in ("LPIPS_WEIGHTS", "FID_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached weights
    results = tmp_path / "results"
    argv = ["--data", str(tiny), "--run", str(tmp_path / "run"), "--results", str(results),
            "--epochs", "1", "--width", "4", "--batch-size", "2",
            "--quiet", "--seeds", "2"]
    assert table1.main(argv) == 0
    df = pd.read_csv(results / "table1.csv")
    assert df["pair"].tolist() == list(table1.ROWS)
    rows = df.set_index("pair")
    for pair in table1.ROWS:
        assert rows.loc[pair, "n"] == 3
        for m in ("rmse", "psnr", "ssim"):
            ours = float(rows.loc[pair, m])
            assert np.isfinite(ours)
            if pair in TABLE1:
                assert rows.loc[pair, f"{m}_paper"] == PAPER[pair][m]
                assert rows.loc[pair, f"{m}_diff"] == pytest.approx(
                    ours - PAPER[pair][m], abs=1e-3)
            else:
                assert pd.isna(rows.loc[pair, f"{m}_paper"])
        for m in ("lpips", "fid"):
            assert rows.loc[pair, m] == "unavailable (no weights)"
    for key, (_, suffix) in MODELS.items():  # every model, every seed, saved
        for seed, base in ((0, "run"), (1, "run-seed1")):
            saved = json.loads((tmp_path / f"{base}{suffix}" / "config.json").read_text())
            assert saved["seed"] == seed and saved["epochs"] == 1, (key, seed)
    # two seeds: a spread for trained rows, none for the untrained ones
    assert rows.loc["Pseudo-HSC²–HSC", "seeds"] == 2 and rows.loc["SDSS–HSC", "seeds"] == 1
    assert np.isfinite(rows.loc["Pseudo-HSC¹–HSC", "rmse_std"])
    assert np.isnan(rows.loc["DECaLS–HSC", "rmse_std"])
    per_galaxy = pd.read_csv(results / "table1_galaxies.csv")
    assert len(per_galaxy) == 3 * (4 + 4 * 2)  # 4 untrained rows, 4 model rows x 2 seeds
    cascade = per_galaxy[per_galaxy["pair"] == "Pseudo-HSC²–HSC"]
    assert float(rows.loc["Pseudo-HSC²–HSC", "rmse"]) == pytest.approx(
        cascade["rmse"].mean(), abs=1e-4)
    assert float(rows.loc["Pseudo-HSC²–HSC", "rmse_std"]) == pytest.approx(
        cascade.groupby("seed")["rmse"].mean().std(), abs=1e-4)
    assert json.loads((tmp_path / "run-cascade" / "config.json").read_text())[
        "source"] == "sdss"
    assert json.loads((tmp_path / "run-pix2pix" / "config.json").read_text())[
        "loss"] == "bce"
    md = (results / "table1.md").read_text()
    assert "unavailable (no weights) / 105.16" in md and "| DECaLS–HSC | 3 |" in md
    assert "Pix2WGAN SDSS→HSC (direct)" in md and "cascade row sits below" in md
    assert "verdict rule: per test galaxy" in md and " ± " in md and "sky offset" in md
    assert "minimum meaningful difference" in md
    # the settings line states what the flags changed, not the preset's values alone
    settings = next(line for line in md.splitlines() if "training settings" in line)
    for text in ("width 4* (--width; preset 8)", "epochs 1* (--epochs; preset 40)",
                 "batch_size 2* (--batch-size; preset 8)", "lr_decay 1.1,",
                 "precision float32"):
        assert text in settings, (text, settings)
    assert "width 8" not in settings and "epochs 40," not in settings
    tex = (results / "table1.tex").read_text()
    assert tex.count(r"\\") == 1 + len(table1.ROWS) and "Pseudo-HSC$^2$--HSC" in tex
    assert r"\end{tabular}" in tex
    out = capsys.readouterr().out
    assert "Pseudo-HSC¹" in out and "width            4  *" in out

    # --skip-train (one seed) reuses seed 0's finished runs and reproduces its
    # per-galaxy numbers; --model overrides Pix2WGAN's run.
    assert table1.main(["--data", str(tiny), "--run", str(tmp_path / "run"), "--skip-train",
                        "--model", str(tmp_path / "run" / "generator.keras"),
                        "--results", str(tmp_path / "again"), "--quiet"]) == 0
    again = pd.read_csv(tmp_path / "again" / "table1.csv").set_index("pair")
    seed0 = per_galaxy[per_galaxy["seed"] == 0].groupby("pair").mean(numeric_only=True)
    for pair in ("Pseudo-HSC¹–HSC", "Pseudo-HSC²–HSC", "pix2pix (BCE) DECaLS→HSC"):
        for m in ("rmse", "psnr", "ssim"):
            assert float(again.loc[pair, m]) == pytest.approx(seed0.loc[pair, m], abs=1e-4)
    assert "one seed: training noise not measured" in (tmp_path / "again" /
                                                       "table1.md").read_text()
    # with nothing trained, --skip-train says so instead of inventing numbers
    assert table1.main(["--data", str(tiny), "--run", str(tmp_path / "none"),
                        "--skip-train", "--results", str(tmp_path / "empty"),
                        "--quiet"]) == 0
    empty = pd.read_csv(tmp_path / "empty" / "table1.csv").set_index("pair")
    assert empty.loc["Pseudo-HSC²–HSC", "rmse"] == table1.NO_MODEL
    assert np.isfinite(float(empty.loc["SDSS–HSC", "rmse"]))


def test_bicubic_baseline_resamples_to_the_native_grid():
    import tensorflow as tf
    x = tf.random.uniform((1, 128, 128, 3), -1, 1, seed=0)
    y = table1.bicubic_fn("sdss")(x)
    assert y.shape == x.shape and float(tf.reduce_max(tf.abs(y))) <= 1
    # a flat image survives; pixel-scale noise does not
    flat = tf.fill((1, 128, 128, 3), 0.25)
    np.testing.assert_allclose(table1.bicubic_fn("decals")(flat), flat, atol=1e-5)
    assert float(tf.math.reduce_std(y)) < 0.5 * float(tf.math.reduce_std(x))


def test_table1_direct_rows_match_the_metrics_module(tiny, tmp_path):
    from common import metrics
    from data import render
    from data.layout import image_path, read_manifest
    ids = read_manifest(tiny, "test")["id"]
    x = np.stack([render.read_jpeg(image_path(tiny, "test", "decals", i)) for i in ids])
    y = np.stack([render.read_jpeg(image_path(tiny, "test", "hsc", i)) for i in ids])
    from pix2wgan.evaluate import score_split
    got = score_split(tiny, "decals", "hsc", progress=False).result()
    assert got["rmse"]["mean"] == pytest.approx(metrics.rmse(x, y).mean(), rel=1e-9)
    assert got["ssim"]["mean"] == pytest.approx(metrics.ssim(x, y).mean(), rel=1e-6)


def test_table1_rejects_missing_data(tmp_path, capsys):
    assert table1.main(["--data", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_presets_give_the_four_models_one_schedule(tiny):
    import argparse
    args = argparse.Namespace(width=None, batch_size=None, epochs=None, precision=None)
    schedule = ("epochs", "lr", "lr_decay", "batch_size", "width", "precision",
                "n_critic", "beta_1", "beta_2", "l1_weight", "gp_weight", "depth")
    for name in TABLE1_PRESETS:
        preset = LUO_PRESETS[name]
        cfgs = {k: train_config(preset, tiny, k, seed=2, overrides=flag_overrides(args))
                for k in MODELS}
        first = cfgs["pix2wgan"]
        for key, cfg in cfgs.items():
            assert cfg.seed == 2, (name, key)
            for field in schedule:
                assert getattr(cfg, field) == getattr(first, field), (name, key, field)
    # a flag overrides all four alike
    args.epochs = 3
    assert {train_config(LUO_PRESETS["cpu"], tiny, k, overrides=flag_overrides(args)).epochs
            for k in MODELS} == {3}


def test_settings_line_marks_every_flag_override():
    p = table1.build_parser()
    plain = table1.describe_settings(p.parse_args([]))
    assert "preset cpu;" in plain and "width 8, epochs 40, batch_size 8" in plain
    assert "*" not in plain
    line = table1.describe_settings(p.parse_args(["--preset", "paper", "--epochs", "3",
                                                  "--width", "16", "--skip-train"]))
    assert "epochs 3* (--epochs; the paper's 500)" in line
    assert "width 16* (--width; the paper's 64)" in line
    assert "--skip-train keep the settings they were trained with" in line


def test_a_difference_below_the_printed_precision_is_within_noise():
    rng = np.random.default_rng(0)
    base = {m: rng.normal(20, 5, (1, 50)) for m in ("rmse", "psnr", "ssim")}
    worse = {"values": base, "seeds": 1}
    # better on every galaxy, but by 0.001 (RMSE lower, PSNR and SSIM higher)
    better = {"values": {"rmse": base["rmse"] - 0.001, "psnr": base["psnr"] + 0.001,
                         "ssim": base["ssim"] + 0.001}, "seeds": 1}
    line = table1.compare({"A": better, "B": worse}, "A", "B", "claim")
    assert line.startswith("claim: within noise (on RMSE, PSNR, SSIM)"), line
    assert "holds" not in line
    better["values"] = {"rmse": base["rmse"] - 0.5, "psnr": base["psnr"] + 0.5,
                        "ssim": base["ssim"] + 0.5}
    assert table1.compare({"A": better, "B": worse}, "A", "B", "claim").startswith(
        "claim: holds")


def test_precision_auto_follows_the_hardware(tmp_path, monkeypatch):
    from common import training
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert training.cpu_has_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f\n")
    assert not training.cpu_has_bf16(info)
    assert not training.cpu_has_bf16(tmp_path / "absent")
    assert training.resolve_precision("float32") == "float32"
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)
    assert training.resolve_precision("auto") == "bf16"  # no GPU in CI
    from pix2wgan.train import parse_args
    cfg, _ = parse_args(["--precision", "auto"])  # the config records the choice
    assert cfg.precision == "bf16"
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: False)
    assert training.resolve_precision("auto") == "float32"


def test_bad_seed_flags_are_one_line_errors(tiny, capsys):
    with pytest.raises(SystemExit) as got:  # argparse: usage + one error line, exit 2
        table1.main(["--seeds", "0"])
    assert got.value.code == 2
    assert "--seeds: must be a positive integer, got '0'" in capsys.readouterr().err
    assert table1.main(["--data", str(tiny), "--quiet", "--seeds", "2",
                        "--model", "x.keras"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use them with --seeds 1" in err[0]
