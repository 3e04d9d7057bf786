"""experiments/survey_gap.py end to end on a tiny hand-made dataset."""
import numpy as np
import pytest

from common import metrics
from data import render
from data.layout import image_path, read_manifest
from experiments import survey_gap
from tests.fakes import make_fake


def test_survey_gap_scores_each_pair_beside_the_paper(tmp_path):
    root = make_fake(tmp_path / "ds", size=32, n_train=1, n_test=3)
    df = survey_gap.run(survey_gap.parse_args(["--data", str(root),
                                               "--out", str(tmp_path / "res")]))
    assert df["pair"].tolist() == ["sdss-hsc", "decals-hsc"]
    ids = read_manifest(root, "test")["id"]
    hsc = np.stack([render.read_jpeg(image_path(root, "test", "hsc", i)) for i in ids])
    sdss = np.stack([render.read_jpeg(image_path(root, "test", "sdss", i)) for i in ids])
    row = df.set_index("pair").loc["sdss-hsc"]
    assert row["rmse"] == pytest.approx(metrics.rmse(sdss, hsc).mean())
    assert row["paper_rmse"] == 34.81 and row["paper_ssim"] == 0.43
    assert (tmp_path / "res" / "survey_gap.md").read_text().count("| ") > 8


def test_survey_gap_missing_data_is_one_line(tmp_path, capsys):
    assert survey_gap.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
