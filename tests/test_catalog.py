"""data.catalog: cuts, footprint, split, ids, bad input, the cached download."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from data import catalog
from data.catalog import CatalogConfig, build_catalog, fetch_catalog, parse_args, safe_id
from data.http import HttpClient
from data.layout import check_id
from data.surveys import HSC_WIDE_BOXES
from tests.fake_servers import Reply, Script, fake_server, text_reply  # noqa: F401


def gz_like(n=400, seed=1) -> pd.DataFrame:
    """A GZ-DECaLS-like table: half inside the HSC boxes, with cut columns."""
    rng = np.random.default_rng(seed)
    inside = np.arange(n) % 2 == 0
    ra = np.where(inside, rng.uniform(130, 220, n), rng.uniform(60, 110, n))
    dec = np.where(inside, rng.uniform(-5, 5, n), rng.uniform(20, 30, n))
    return pd.DataFrame({
        "iauname": [f"J{i:06d}+0000" for i in range(n)], "RA": ra, "Dec": dec,
        "redshift": rng.uniform(0.01, 0.2, n),
        "petro_theta": rng.uniform(1.0, 10.0, n),
        "sersic_nmgy_r": 10 ** ((22.5 - rng.uniform(14, 18.5, n)) / 2.5),
    })


def expected_mask(df):
    mag = 22.5 - 2.5 * np.log10(df["sersic_nmgy_r"])
    return ((mag < 17.77) & (df["redshift"] <= 0.15) & (df["petro_theta"] >= 3.0)
            & (df["RA"].between(125, 230)) & (df["Dec"].between(-10, 10)))


def cfg(tmp_path, src, **kw):
    return CatalogConfig(out=tmp_path / "out", input=src, **kw)


def write(tmp_path, df, name="in.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def test_cuts_footprint_split(tmp_path, capsys):
    df = gz_like()
    n_pass = int(expected_mask(df).sum())
    assert 30 < n_pass < 150
    src = write(tmp_path, df)
    out = build_catalog(cfg(tmp_path, src, n_train=20, n_test=5, seed=3))
    assert (out["split"] == "train").sum() == 20 and (out["split"] == "test").sum() == 5
    passing = set(df["iauname"][expected_mask(df)])
    assert set(out["id"]) <= passing
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype={"id": str})
    assert list(m.columns[:4]) == ["id", "ra", "dec", "split"]
    assert {"redshift", "petro_theta", "mag_r"} <= set(m.columns)
    assert m["id"].is_unique
    info = json.loads((tmp_path / "out" / "catalog.json").read_text())
    assert info["counts"]["in HSC-Wide boxes"] == n_pass
    assert info["cut_columns"]["--max-rmag"] == "sersic_nmgy_r"
    # the same seed gives the same sample whatever the row order; another seed differs
    shuffled = write(tmp_path, df.sample(frac=1, random_state=0), "shuffled.csv")
    again = build_catalog(CatalogConfig(out=tmp_path / "o2", input=shuffled, n_train=20,
                                        n_test=5, seed=3))
    pd.testing.assert_frame_equal(out, again)
    other = build_catalog(CatalogConfig(out=tmp_path / "o3", input=src, n_train=20,
                                        n_test=5, seed=4))
    assert set(other["id"]) != set(out["id"])


def test_footprint_boxes():
    ra = np.array([340.0, 10.0, 150.0, 200.0, 215.0, 100.0, 150.0])
    dec = np.array([0.0, -9.0, 2.0, 44.0, 52.0, 0.0, 30.0])
    assert catalog.in_footprint(ra, dec).tolist() == [True] * 5 + [False] * 2
    assert all(len(b) == 5 and b[1] < b[2] and b[3] < b[4] for b in HSC_WIDE_BOXES)


def test_too_few_uses_all_in_proportion(tmp_path, capsys):
    df = gz_like(60)
    n_pass = int(expected_mask(df).sum())
    out = build_catalog(cfg(tmp_path, write(tmp_path, df)))  # asks 15000 + 2000
    assert len(out) == n_pass
    assert (out["split"] == "test").sum() == round(n_pass * 2000 / 17000)
    assert f"only {n_pass} galaxies" in capsys.readouterr().err


def test_missing_cut_column_skipped_with_warning(tmp_path, capsys):
    df = gz_like().drop(columns=["redshift"])
    build_catalog(cfg(tmp_path, write(tmp_path, df), n_train=5, n_test=1))
    err = capsys.readouterr().err
    assert "no column for the --max-z cut: cut skipped" in err


def test_fits_input_uppercase_columns(tmp_path):
    from astropy.table import Table
    df = gz_like(100)
    t = Table({"IAUNAME": df["iauname"].to_numpy().astype("U20"), "RA": df["RA"].to_numpy(),
               "DEC": df["Dec"].to_numpy(), "Z": df["redshift"].to_numpy(),
               "PETRO_THETA": df["petro_theta"].to_numpy(),
               "SERSIC_NMGY_R": df["sersic_nmgy_r"].to_numpy(),
               "VEC": np.zeros((100, 3))})  # a 2-d column is ignored
    t.write(tmp_path / "nsa.fits")
    out = build_catalog(cfg(tmp_path, tmp_path / "nsa.fits", n_train=5, n_test=2))
    assert len(out) == 7 and set(out["id"]) <= set(df["iauname"][expected_mask(df)])


@pytest.mark.parametrize("change,message", [
    (lambda d: d.drop(columns=["Dec"]), "has no dec column"),
    (lambda d: d.assign(RA=np.where(d.index == 7, 400.0, d["RA"])), "row 8: ra=400.0"),
    (lambda d: d.assign(RA=np.where(d.index == 3, 360.0, d["RA"])), "outside [0, 360)"),
    (lambda d: d.assign(Dec=np.where(d.index == 2, np.nan, d["Dec"])), "dec missing"),
    (lambda d: d.assign(iauname="J1"), "duplicate id(s)"),
    (lambda d: d.assign(iauname=["a/b" if i == 0 else ("a_b" if i == 2 else x)
                                 for i, x in enumerate(d["iauname"])]),
     "duplicate id(s) after sanitising (first: 'a_b')"),
])
def test_bad_input_one_line_error(tmp_path, change, message):
    src = write(tmp_path, change(gz_like()))
    with pytest.raises(DataError) as err:
        build_catalog(cfg(tmp_path, src, n_train=5, n_test=1))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(src) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_drop_duplicates(tmp_path):
    df = gz_like()
    df.loc[2, "iauname"] = df.loc[0, "iauname"]  # both inside the footprint
    df.loc[[0, 2], ["sersic_nmgy_r", "redshift", "petro_theta"]] = [100.0, 0.05, 5.0]
    out = build_catalog(cfg(tmp_path, write(tmp_path, df), n_train=500, n_test=0,
                            drop_duplicates=True))
    assert out["id"].is_unique and df.loc[0, "iauname"] in set(out["id"])


@pytest.mark.parametrize("raw,safe", [
    ("J094651.40-010228.5", "J094651.40-010228.5"), ("a/b", "a_b"),
    ("../../etc/passwd", "etc_passwd"), ("x..y", "x_y"), (" NGC 4321 ", "NGC_4321"),
    (".hidden", "hidden"), ("ü", "_") ,
])
def test_safe_id(raw, safe):
    if safe == "_":
        with pytest.raises(DataError):
            safe_id(raw)
    else:
        assert safe_id(raw) == safe and check_id(safe) == safe


def test_cli_writes_only_under_out(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_DATA", str(tmp_path / "root"))
    src = write(tmp_path, gz_like())
    before = tree(tmp_path)
    assert catalog.main(["--input", str(src), "--out", str(tmp_path / "ds"),
                         "--n-train", "10", "--n-test", "3", "--seed", "1"]) == 0
    new = sorted(set(tree(tmp_path)) - set(before))
    assert new == ["ds/catalog.json", "ds/manifest.csv"]


def test_cli_bad_input_exit_2(tmp_path, capsys):
    src = write(tmp_path, gz_like().drop(columns=["RA"]))
    assert catalog.main(["--input", str(src), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has no ra column" in err and "\n" not in err


def test_parse_args_defaults(tmp_path):
    c = parse_args(["--out", str(tmp_path)])
    assert (c.max_rmag, c.max_z, c.min_petro_theta) == (17.77, 0.15, 3.0)
    assert (c.n_train, c.n_test, c.seed, c.input) == (15000, 2000, 0, None)
    assert "zenodo.org/records/4573248/files/gz_decals_volunteers_5.csv" in c.catalog_url


def test_download_cached_and_checked(fake_server, tmp_path):
    body = gz_like().to_csv(index=False).encode()
    path = "/records/4573248/files/gz_decals_volunteers_5.csv"
    srv = fake_server(Script({path: [Reply(503), Reply(200, {"Content-Type": "text/csv"},
                                                       body)]}))
    client = HttpClient(srv.base_url, rate=0, sleep=lambda s: None)
    url = srv.base_url + path + "?download=1"
    cache = tmp_path / "cache"
    got = fetch_catalog(url, cache, client, min_bytes=1000)
    assert got.read_bytes() == body and srv.count() == 2
    assert srv.requests[-1].query == {"download": "1"}
    side = json.loads((cache / "gz_decals_volunteers_5.csv.sha256.json").read_text())
    assert side["size"] == len(body) and len(side["sha256"]) == 64
    fetch_catalog(url, cache, client, min_bytes=1000)  # cached: no new request
    assert srv.count() == 2
    got.write_bytes(body[:-10])  # a damaged cache is fetched again
    fetch_catalog(url, cache, client, min_bytes=1000)
    assert got.read_bytes() == body and srv.count() == 3
    # the full build from the download
    out = build_catalog(CatalogConfig(out=tmp_path / "ds", catalog_url=url,
                                      cache_dir=cache, n_train=5, n_test=1), client)
    assert len(out) == 6


def test_download_error_page_rejected(fake_server, tmp_path):
    srv = fake_server(Script({"/f.csv": [text_reply("<html>maintenance</html>")]}))
    client = HttpClient(srv.base_url, rate=0, sleep=lambda s: None)
    with pytest.raises(DataError) as err:
        fetch_catalog(srv.base_url + "/f.csv", tmp_path, client, min_bytes=1000)
    assert "gave only" in str(err.value)
    assert list(tmp_path.iterdir()) == []
