"""experiments/table1.py end to end on a tiny hand-made dataset."""
import numpy as np
import pandas as pd
import pytest

from common.paper import TABLE1
from experiments import table1
from tests.fakes import make_fake


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_fake(tmp_path_factory.mktemp("ds") / "tiny", size=128, n_train=6, n_test=3)


def test_table1_trains_scores_and_marks_missing_rows(tiny, tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["--data", str(tiny), "--run", str(tmp_path / "run"), "--results", str(results),
            "--epochs", "1", "--width", "4", "--batch-size", "2", "--quiet"]
    assert table1.main(argv) == 0
    df = pd.read_csv(results / "table1.csv")
    assert df["pair"].tolist() == list(TABLE1)
    rows = df.set_index("pair")
    for pair in ("SDSS–HSC", "DECaLS–HSC", "Pseudo-HSC¹–HSC"):
        assert rows.loc[pair, "n"] == 3
        for m in ("rmse", "psnr", "ssim"):
            ours = float(rows.loc[pair, m])
            assert np.isfinite(ours)
            assert rows.loc[pair, f"{m}_paper"] == TABLE1[pair][m]
            assert rows.loc[pair, f"{m}_diff"] == pytest.approx(ours - TABLE1[pair][m],
                                                                abs=1e-3)
        for m in ("lpips", "fid"):
            assert rows.loc[pair, m] == table1.NOT_YET
    assert (rows.loc["Pseudo-HSC²–HSC", ["rmse", "psnr", "ssim", "lpips", "fid"]]
            == table1.NOT_YET).all()
    md = (results / "table1.md").read_text()
    assert "not yet computed / 105.16" in md and "| DECaLS–HSC | 3 |" in md
    out = capsys.readouterr().out
    assert "Pseudo-HSC¹" in out and "width            4  *" in out

    # Scoring a given model skips training and reproduces the same numbers.
    assert table1.main(["--data", str(tiny), "--model", str(tmp_path / "run"),
                        "--results", str(tmp_path / "again"), "--quiet"]) == 0
    again = pd.read_csv(tmp_path / "again" / "table1.csv").set_index("pair")
    for m in ("rmse", "psnr", "ssim"):
        assert float(again.loc["Pseudo-HSC¹–HSC", m]) == pytest.approx(
            float(rows.loc["Pseudo-HSC¹–HSC", m]), rel=1e-6)


def test_table1_direct_rows_match_the_metrics_module(tiny, tmp_path):
    from common import metrics
    from data import render
    from data.layout import image_path, read_manifest
    ids = read_manifest(tiny, "test")["id"]
    x = np.stack([render.read_jpeg(image_path(tiny, "test", "decals", i)) for i in ids])
    y = np.stack([render.read_jpeg(image_path(tiny, "test", "hsc", i)) for i in ids])
    from common.evaluate import score_split
    got = score_split(tiny, "decals", "hsc", progress=False).result()
    assert got["rmse"]["mean"] == pytest.approx(metrics.rmse(x, y).mean(), rel=1e-9)
    assert got["ssim"]["mean"] == pytest.approx(metrics.ssim(x, y).mean(), rel=1e-6)


def test_table1_rejects_missing_data(tmp_path, capsys):
    assert table1.main(["--data", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
