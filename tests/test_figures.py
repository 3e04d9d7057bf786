"""Luo et al. figure scripts (and physics.py's CLI) end to end on a tiny simulated set.

The session's tiny set (``luo_tiny_sim``, tests/conftest.py: 8 + 6 galaxies with high
defect rates) is shared with test_run_all; the first script that needs a model trains
it (width 4, one epoch, eagerly) into the run folder that every later script reuses,
as the scripts reuse Table 1's runs.
"""
import pandas as pd
import pytest

from experiments import (figure1, figure3_4, figure5, figure6, figure7, figure8_9,
                         luo_common as lc, physics)
from tests.conftest import eagerly


@pytest.fixture(scope="module")
def tiny(luo_tiny_sim, tmp_path_factory):
    return luo_tiny_sim, tmp_path_factory.mktemp("figs")


@pytest.fixture(scope="module")
def eager():
    with eagerly():
        yield


@pytest.fixture(scope="module")
def trained(tiny, eager):
    """Train both tiny models once (Table 1's settings under the tiny preset), in the
    run folders the scripts then load with --skip-train."""
    import argparse
    ns = argparse.Namespace(**vars(lc_parser().parse_args(model_argv(tiny))))
    for key in ("pix2wgan", "cascade"):
        lc.get_model(ns, tiny[0], key)
    return tiny


def lc_parser():
    import argparse
    p = argparse.ArgumentParser()
    lc.add_common_args(p)
    return p


def argv(tiny, *extra):
    root, base = tiny
    return ["--preset", "tiny", "--data", str(root), "--results", str(base / "res"),
            "--quiet", *extra]


def model_argv(tiny, *extra):
    return argv(tiny, "--run", str(tiny[1] / "run"), *extra)


def assert_png_pdf(folder, stem):
    png, pdf = folder / f"{stem}.png", folder / f"{stem}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


def test_every_figure_script_writes_png_and_pdf(trained, capsys):
    tiny = trained
    res = tiny[1] / "res"
    assert figure1.main(argv(tiny)) == 0
    assert figure3_4.main(model_argv(tiny, "--skip-train")) == 0
    assert figure8_9.main(model_argv(tiny, "--skip-train")) == 0
    assert figure5.main(model_argv(tiny, "--skip-train")) == 0
    assert figure6.main(model_argv(tiny, "--skip-train")) == 0
    assert figure7.main(model_argv(tiny)) == 0
    for stem in ("figure1", "figure3", "figure4", "figure5", "figure6", "figure7",
                 "figure8", "figure9"):
        assert_png_pdf(res, stem)
    out = capsys.readouterr().out
    assert "paper: Figs 3-4" in out and "RMSE decals-HSC" in out
    # the cascade figures show the galaxies of Figs 3-4, in the same order
    a = pd.read_csv(res / "figure3_4_galaxies.csv")
    b = pd.read_csv(res / "figure8_9_galaxies.csv")
    assert a["id"].tolist() == b["id"].tolist() and len(a) == 6
    assert set(b["input"]) == {"sdss"} and set(a["input"]) == {"decals"}
    # Fig 6's columns are DECaLS-flagged galaxies, in the paper's order where present
    f6 = pd.read_csv(res / "figure6_galaxies.csv")
    man = lc.test_manifest(tiny[0]).set_index("id")
    for _, r in f6.iterrows():
        kind = r["reason"].split(":")[0]
        assert kind in man.loc[r["id"], "defects_decals"].split(";")
    layers = pd.read_csv(res / "figure7_layers.csv")
    enc = layers[layers.layer.str.match(r"enc\d_conv") & (layers.net == "G1")]
    assert enc["side"].tolist() == [64, 32, 16, 8, 4, 2]
    assert enc["filters"].tolist() == [4, 8, 16, 32, 32, 32]  # width 4, capped at 8w
    assert layers[layers.net == "D1"].iloc[-1]["shape"] == "14x14x1"


def test_galaxy_flag_shows_any_galaxy_and_rejects_unknown(trained, capsys):
    tiny = trained
    ids = lc.test_manifest(tiny[0])["id"].tolist()[:2]
    res = tiny[1] / "res"
    assert figure3_4.main(model_argv(tiny, "--skip-train", "--galaxy", ids[1],
                                     "--galaxy", ids[0])) == 0
    assert_png_pdf(res, "figure3_4_custom")
    assert pd.read_csv(res / "figure3_4_custom_galaxies.csv")["id"].tolist() == \
        [ids[1], ids[0]]
    assert figure1.main(argv(tiny, "--galaxy", ids[0])) == 0
    assert_png_pdf(res, "figure1_custom")
    assert figure1.main(argv(tiny, "--galaxy", "nope123")) == 2
    assert "not in the test split" in capsys.readouterr().err


def test_selection_rules_are_reproducible(tiny):
    df = lc.test_manifest(tiny[0])
    first = lc.select_showcase(df)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert lc.select_showcase(shuffled) == first == lc.select_showcase(df)
    assert len({g for g, _ in first}) == len(first) == 6
    assert lc.select_triplets(shuffled) == lc.select_triplets(df)
    arts = lc.select_artifacts(df, "hsc", ("streak", "saturated"))
    assert arts == lc.select_artifacts(shuffled, "hsc", ("streak", "saturated"))
    for (g, why), kind in zip(arts, ("streak", "saturated")):
        assert kind in df.set_index("id").loc[g, "defects_hsc"].split(";")
    # real data (no simulation parameters, no flags): rules still pick, by fixed rules
    bare = df[["id", "ra", "dec", "split"]]
    picks = lc.select_showcase(bare)
    assert [g for g, _ in picks] == sorted(df["id"])[:6]
    by_stat = lc.select_artifacts(bare, "hsc", ("noisy",), root=tiny[0])
    assert by_stat == lc.select_artifacts(bare, "hsc", ("noisy",), root=tiny[0])


def test_physics_cli_writes_tables_and_plots(trained, capsys):
    tiny = trained
    res = tiny[1] / "res"
    assert physics.main(model_argv(tiny, "--skip-train", "--max-galaxies", "3",
                                   "--no-statmorph")) == 0  # statmorph: test_physics
    summ = pd.read_csv(res / "physics.csv")
    assert {"hsc", "truth", "manifest"} <= set(summ.reference)
    # a 1-epoch model may give negative aperture fluxes (no magnitude): its row exists;
    # HSC against the truth needs no model and is measured for every galaxy
    assert len(summ[(summ.kind == "pseudo1") & (summ.reference == "hsc")]) == 7
    row = summ[(summ.kind == "hsc") & (summ.reference == "truth")
               & (summ.quantity == "mag_r")]
    assert row.n.iloc[0] == 3 and abs(row.bias.iloc[0]) < 0.5
    gal = pd.read_csv(res / "physics_galaxies.csv")
    assert set(gal.kind) == {"sdss", "pseudo2", "decals", "pseudo1", "hsc", "truth",
                             "truth_jpeg"}
    hall = pd.read_csv(res / "physics_hallucination.csv")
    assert set(hall.kind) == {"pseudo1", "pseudo2", "hsc"} and len(hall) == 9
    for stem in ("physics_vs_hsc", "physics_vs_truth"):
        assert_png_pdf(res, stem)
    assert "against truth" in (res / "physics.md").read_text()
