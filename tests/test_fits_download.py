"""data.sdss / data.cfht (sdss-fits, cfht-fits) and data.lin_pairs (pairs) against the
in-process fake server: synthetic bz2 SDSS frames with rotated TAN WCSs, a synthetic
CFHT stack served through a fake CADC ``caom2ops/sync`` cutout route."""
from __future__ import annotations

import argparse
import bz2
import io
import os
import re
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from common.errors import DataError
from data import cfht, lin_pairs, sdss, surveys
from data.cube import (BANDS, CutoutError, cube_header, read_cube, sample_nearest, stamp_wcs,
                       write_cube)
from data.cfht import download_cfht
from data.pool import State, state_path
from data.sdss import SQL_SEARCH, download_sdss, fields_path, lookup_sql, parse_skyserver_csv
from data.http import FetchError, HttpClient
from data.layout import fits_path
from data.lin_pairs import make_sets, separation_arcsec
from tests.fake_servers import Reply, Script, fake_server, unavailable  # noqa: F401

SAS = "/sas/dr17"
CADC = "/cadc"
SD, CF = surveys.SDSS, surveys.CFHT
FLUX = 50.0  # nanomaggies of each synthetic galaxy


def client(srv, prefix, **kw):
    kw = {"rate": 0, "sleep": lambda s: None, "timeout": (2.0, 5.0), **kw}
    return HttpClient(srv.base_url + prefix, **kw)


def blob(shape, x0, y0, flux, sigma):
    """Gaussian of total ``flux`` centred on 0-based pixel (x0, y0)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    g = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    return flux * g / (2 * np.pi * sigma**2)


def tan_wcs(ra, dec, crpix, scale, angle_deg=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = list(crpix)
    t = np.radians(angle_deg)
    s = scale / 3600.0
    w.wcs.cd = [[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]]
    return w


def fits_bytes(data, header):
    buf = io.BytesIO()
    fits.PrimaryHDU(data, header).writeto(buf)
    return buf.getvalue()


def test_sample_nearest_aligned_grid_is_an_exact_cut():
    """Same scale, north-up, galaxy on a pixel centre (half-pixel phase for the even
    stamp): every source pixel is taken once, none twice."""
    src = tan_wcs(20.0, 10.0, (50, 40), 0.2)
    image = np.arange(80 * 100, dtype=np.float64).reshape(80, 100)
    ra, dec = src.pixel_to_world_values(49.0, 39.0)
    stamp = sample_nearest(image, src, stamp_wcs(float(ra), float(dec), 16, 0.2), 16)
    assert np.array_equal(stamp, image[31:47, 41:57])
    with pytest.raises(CutoutError, match="does not cover the 16x16 stamp"):
        far = src.pixel_to_world_values(2.0, 2.0)
        sample_nearest(image, src, stamp_wcs(*map(float, far), 16, 0.2), 16)


# --------------------------------------------------------------------------- SDSS sky
# Fields (run 756, camcol 3): 1 good (two galaxies + one at the edge), 2 NaN patch in r,
# 3 band u missing on the server, 4 band g answers 503 once.
FRAME_H, FRAME_W = 150, 180
RA0, DEC0 = 150.0, 2.0


def field_centre(field):
    return RA0 + 0.03 * field, DEC0


SDSS_ROWS = [  # id, field, offset (arcsec east, north) from the field centre
    ("s1", 1, (6.0, 4.0)), ("s2", 1, (-14.0, -2.0)), ("sedge", 1, (28.0, 0.0)),
    ("snan", 2, (0.0, 0.0)), ("smiss", 3, (0.0, 0.0)), ("s503", 4, (2.0, 2.0)),
]


def sdss_pos(field, off):
    ra, dec = field_centre(field)
    return ra + off[0] / 3600.0 / np.cos(np.radians(dec)), dec + off[1] / 3600.0


def sdss_frame(field, band):
    """bz2 bytes of one synthetic calibrated frame: rotated 30 deg, per-band sub-pixel
    offsets (like real SDSS bands), galaxies of ``FLUX`` nMgy at the manifest rows."""
    k = BANDS.index(band)
    ra, dec = field_centre(field)
    w = tan_wcs(ra, dec, (FRAME_W / 2 + 0.3 * k, FRAME_H / 2 - 0.2 * k), SD.pixel_scale, 30)
    rng = np.random.default_rng(100 * field + k)
    img = 0.05 + rng.normal(0, 0.01, (FRAME_H, FRAME_W))
    for gid, f, off in SDSS_ROWS:
        if f == field:
            x, y = w.world_to_pixel_values(*sdss_pos(f, off))
            img += blob(img.shape, x, y, FLUX, 2.0)
    if field == 2 and band == "r":
        img[40:80, 60:100] = np.nan
    hdr = w.to_header()
    hdr["BUNIT"] = "nanomaggy"
    return bz2.compress(fits_bytes(img.astype(np.float32), hdr))


FRAME_RE = re.compile(r"/frame-([ugriz])-000756-3-(\d{4})\.fits\.bz2$")


@pytest.fixture(scope="module")
def frames():
    return {(f, b): sdss_frame(f, b) for f in (1, 2, 3, 4) for b in BANDS}


class _Callable(Script):
    """A Script whose replies may also be callables ``request -> Reply``."""

    def __call__(self, req):
        reply = super().__call__(req)
        return reply(req) if callable(reply) else reply


G4 = SAS + "/eboss/photoObj/frames/301/756/3/frame-g-000756-3-0004.fits.bz2"


def sdss_server(fake_server, frames):
    def default(req):
        m = FRAME_RE.search(req.path)
        if not req.path.startswith(SAS + "/eboss/photoObj/frames/301/756/3/") or not m:
            return Reply(404, {"Content-Type": "text/plain"}, b"not found")
        band, field = m.group(1), int(m.group(2))
        if field == 3 and band == "u":
            return Reply(404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>")
        return Reply(200, {"Content-Type": "application/x-bzip2"}, frames[(field, band)])

    return fake_server(_Callable({G4: [unavailable(), default]}, default=default))


def sdss_manifest(path):
    rows = [{"id": g, "ra": sdss_pos(f, off)[0], "dec": sdss_pos(f, off)[1], "run": 756,
             "camcol": 3, "field": f} for g, f, off in SDSS_ROWS]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def statuses(out, survey):
    st = State(state_path(out, survey))
    return {g: v[2] for g, v in st.rows.items()}


def test_sdss_happy_path_and_failures(fake_server, frames, tmp_path):
    srv = sdss_server(fake_server, frames)
    man = sdss_manifest(tmp_path / "sdss.csv")
    out = tmp_path / "out"
    counts = download_sdss(man, out, client(srv, SAS), progress=False)
    st = statuses(out, "sdss")
    assert st["s1"] == st["s2"] == st["s503"] == "ok"
    assert st["snan"].startswith("failed: NaN pixels in band r")
    assert st["smiss"].startswith("failed: missing band u: frame-u-000756-3-0003.fits.bz2"
                                  ": HTTP 404")
    assert st["sedge"].startswith("failed: wrong shape: band ")
    assert counts == {"ok": 3, "failed": 3, "pending": 0}
    for g in ("snan", "smiss", "sedge"):
        assert not fits_path(out, "pool", "sdss", g).exists()

    for gid, f, off in SDSS_ROWS[:2]:
        cube, wcs, hdr = read_cube(fits_path(out, "pool", "sdss", gid))
        assert cube.shape == (5, 64, 64) and cube.dtype == np.float32
        assert hdr["BANDS"] == "ugriz" and [hdr[f"BAND{k}"] for k in range(5)] == list(BANDS)
        assert hdr["BUNIT"] == "nanomaggy" and hdr["SURVEY"] == "sdss"
        assert (hdr["RUN"], hdr["CAMCOL"], hdr["FIELD"]) == (756, 3, f)
        ra, dec = sdss_pos(f, off)
        cra, cdec = wcs.pixel_to_world_values(31.5, 31.5)
        assert separation_arcsec(cra, cdec, ra, dec) < SD.pixel_scale
        assert np.allclose(np.abs(wcs.pixel_scale_matrix.diagonal()) * 3600, SD.pixel_scale)
        assert wcs.pixel_scale_matrix[0, 0] < 0 < wcs.pixel_scale_matrix[1, 1]  # N up, E left
        for k in range(5):  # units: the galaxy's flux comes back in nanomaggies
            y, x = np.unravel_index(np.argmax(cube[k]), cube[k].shape)
            assert abs(x - 31.5) <= 1.5 and abs(y - 31.5) <= 1.5
            assert cube[k].sum() - 0.05 * 64 * 64 == pytest.approx(FLUX, rel=0.05)

    assert srv.count(G4) == 2  # 503, then ok
    # one download per field and band although field 1 holds three galaxies
    assert srv.count(SAS + "/eboss/photoObj/frames/301/756/3/frame-r-000756-3-0001.fits.bz2") == 1
    assert all(r.path.startswith(SAS + "/") for r in srv.requests)
    # only OUT and the manifest exist; the frame cache is gone; the summary lists reasons
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sdss.csv"]
    assert not (out / "pool" / ".cache").exists()
    assert set(files_under(out)) == {"pool/sdss_state.csv", "pool/sdss_summary.md",
                                     "pool/sdss/s1.fits", "pool/sdss/s2.fits",
                                     "pool/sdss/s503.fits"}
    summary = (out / "pool" / "sdss_summary.md").read_text()
    assert "| ok | 3 |" in summary and "NaN pixels in band r" in summary

    # rerun: ok galaxies are skipped, failed ones retried (their frames fetched again)
    before = {g: fits_path(out, "pool", "sdss", g).read_bytes() for g in ("s1", "s2")}
    n = srv.count()
    download_sdss(man, out, client(srv, SAS), progress=False)
    again = [r.path for r in srv.requests[n:]]
    assert not any("-0004.fits" in p for p in again)  # s503 is ok: field 4 not refetched
    assert any("-0002.fits" in p for p in again)  # snan is retried
    assert statuses(out, "sdss") == st
    assert {g: fits_path(out, "pool", "sdss", g).read_bytes() for g in before} == before


class KillAfter:
    """A client that raises KeyboardInterrupt (Ctrl-C) before its ``n``-th request."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def _tick(self):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt

    def get(self, *a, **k):
        self._tick()
        return self.inner.get(*a, **k)

    def download(self, *a, **k):
        self._tick()
        return self.inner.download(*a, **k)


def test_sdss_kill_and_rerun_gives_same_files(fake_server, frames, tmp_path):
    srv = sdss_server(fake_server, frames)
    man = sdss_manifest(tmp_path / "sdss.csv")
    ref, out = tmp_path / "ref", tmp_path / "out"
    download_sdss(man, ref, client(srv, SAS), progress=False)
    with pytest.raises(KeyboardInterrupt):  # dies while fetching field 2
        download_sdss(man, out, KillAfter(client(srv, SAS), 7), workers=1, progress=False)
    assert not [p for p in out.rglob("*.tmp*")]
    assert statuses(out, "sdss") == {"s1": "ok", "s2": "ok", "sedge": statuses(ref, "sdss")
                                     ["sedge"]}
    assert "| pending | 3 |" in (out / "pool" / "sdss_summary.md").read_text()
    with open(state_path(out, "sdss"), "a") as f:  # a row cut by a kill mid-write
        f.write("snan,150.06,2.0,o")
    download_sdss(man, out, client(srv, SAS), progress=False)
    assert files_under(out) == files_under(ref)
    for rel in files_under(ref):
        if rel.endswith(".fits") or rel.endswith("_state.csv"):
            assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_sdss_manifest_errors(tmp_path):
    bad = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a"], "ra": [1.0], "dec": [2.0], "run": 1}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="has run but lacks camcol, field"):
        download_sdss(bad, tmp_path / "o", None)
    pd.DataFrame({"id": ["a"], "ra": [1.0], "dec": [2.0]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="no run, camcol, field and no lookup"):
        download_sdss(bad, tmp_path / "o", None)
    pd.DataFrame({"id": ["a", "a"], "ra": [1.0, 1.0], "dec": [2.0, 2.0], "run": 1,
                  "camcol": 1, "field": 1}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="duplicate id 'a'"):
        download_sdss(bad, tmp_path / "o", None)
    pd.DataFrame({"id": ["a"], "ra": [400.0], "dec": [2.0], "run": 1, "camcol": 1,
                  "field": 1}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="ra=400.0 outside"):
        download_sdss(bad, tmp_path / "o", None)
    pd.DataFrame({"id": ["a"], "ra": [1.0], "dec": [2.0], "tile": [""]}).to_csv(bad,
                                                                              index=False)
    with pytest.raises(DataError, match="id 'a' has no tile"):
        download_cfht(bad, tmp_path / "o", None)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- workers
class Busy:
    """Wraps routes: counts requests in flight (``peak``) and per path (``peak_path``),
    each answer delayed a little so that overlapping requests show up."""

    def __init__(self, routes, delay=0.02):
        self.routes, self.delay = routes, delay
        self.lock = threading.Lock()
        self.now, self.peak, self.paths, self.peak_path = 0, 0, Counter(), 0

    def __call__(self, req):
        with self.lock:
            self.now += 1
            self.paths[req.path] += 1
            self.peak = max(self.peak, self.now)
            self.peak_path = max(self.peak_path, self.paths[req.path])
        try:
            time.sleep(self.delay)
            return self.routes(req)
        finally:
            with self.lock:
                self.now -= 1
                self.paths[req.path] -= 1


def outputs(out):
    """Every file under ``out`` with its bytes."""
    return {rel: (out / rel).read_bytes() for rel in files_under(out)}


def test_sdss_workers_match_sequential_and_share_frames(fake_server, frames, tmp_path):
    man = sdss_manifest(tmp_path / "sdss.csv")
    runs = {}
    for workers in (1, 4):
        busy = Busy(sdss_server(fake_server, frames).routes)
        srv = fake_server(busy)
        out = tmp_path / f"w{workers}"
        download_sdss(man, out, client(srv, SAS), workers=workers, progress=False)
        paths = Counter(r.path for r in srv.requests)
        runs[workers] = (outputs(out), statuses(out, "sdss"), busy, paths)
    (f1, s1, b1, p1), (f4, s4, b4, p4) = runs[1], runs[4]
    assert f4 == f1 and s4 == s1  # byte-identical cubes, state and summary
    assert p4 == p1  # the same requests: one per frame (G4: 503 then ok)
    assert max(n for p, n in p4.items() if p != G4) == 1
    assert b1.peak == 1 and b4.peak > 1  # the 4 fields really were fetched in parallel
    assert b4.peak_path == 1  # never two concurrent requests for one frame


def test_cfht_workers_match_sequential(fake_server, tiles, tmp_path):
    man = cfht_manifest(tmp_path / "cfht.csv")
    runs = {}
    for workers in (1, 4):
        busy = Busy(cadc_route(tiles), delay=0.01)
        srv = fake_server(busy)
        out = tmp_path / f"w{workers}"
        download_cfht(man, out, client(srv, CADC), workers=workers, progress=False)
        runs[workers] = (outputs(out), statuses(out, "cfht"), busy.peak, srv.count())
    assert runs[4][:2] == runs[1][:2] and runs[4][3] == runs[1][3] == 30 - 3 - 4 + 1
    assert runs[1][2] == 1 and runs[4][2] > 1


# --------------------------------------------------------------------------- lookup
SKY = "/skyserver"
POS_RE = re.compile(r"\((\d+),([-+0-9.eE]+),([-+0-9.eE]+)\)")
OUTSIDE = ("sout", 210.0, 40.0)  # no field of the fake sky


def skyserver_route(req):
    """Minimal SkyServer SqlSearch: reads the (idx, ra, dec) rows of the VALUES table
    of ``cmd`` and answers the field whose centre is within 0.01 deg, in SkyServer's
    CSV (``#Table1``, header, rows)."""
    cmd = req.query.get("cmd", "")
    if req.path != SKY + "/" + SQL_SEARCH or req.query.get("format") != "csv" or \
            "fGetNearbyObjEq(v.ra, v.dec, 0.05)" not in cmd or "PhotoPrimary" not in cmd:
        return Reply(400, {"Content-Type": "text/plain"}, b"bad query")
    lines = ["#Table1", "idx,run,rerun,camcol,field"]
    for idx, ra, dec in POS_RE.findall(cmd):
        for f in (1, 2, 3, 4):
            fra, fdec = field_centre(f)
            if abs(float(ra) - fra) < 0.01 and abs(float(dec) - fdec) < 0.01:
                lines.append(f"{idx},756,301,3,{f}")
    return Reply(200, {"Content-Type": "text/plain"}, ("\n".join(lines) + "\n").encode())


def test_sdss_field_lookup(fake_server, frames, tmp_path):
    sas = sdss_server(fake_server, frames).routes
    srv = fake_server(_Callable({SKY + "/" + SQL_SEARCH: [
        Reply(400, {"Content-Type": "text/plain"}, b"Incorrect syntax near 'x'"),
        skyserver_route]}, default=sas))
    full = sdss_manifest(tmp_path / "full.csv")
    ref = tmp_path / "ref"
    download_sdss(full, ref, client(srv, SAS), progress=False)
    bare = pd.read_csv(full)[["id", "ra", "dec"]]
    bare = pd.concat([bare, pd.DataFrame([OUTSIDE], columns=["id", "ra", "dec"])])
    man = tmp_path / "bare.csv"
    bare.to_csv(man, index=False)
    out = tmp_path / "out"
    look = client(srv, SKY)

    n = srv.count()  # first query (3 positions) fails: those 3 galaxies fail, not cached
    counts = download_sdss(man, out, client(srv, SAS), lookup=look, lookup_batch=3,
                           progress=False)
    asked = [r for r in srv.requests[n:] if r.path.startswith(SKY)]
    assert len(asked) == 3  # 7 positions in batches of 3
    assert all(r.path.startswith((SAS + "/", SKY + "/")) for r in srv.requests)
    st = statuses(out, "sdss")
    first = list(bare["id"][:3])
    assert all(st[g] == "failed: SDSS field lookup failed: HTTP 400: Incorrect syntax "
               "near 'x'" for g in first)
    assert st["sout"] == "failed: no SDSS frame covers this position"
    assert counts == {"ok": 1, "failed": 6, "pending": 0}  # s503 ok; snan, smiss fail
    cached = pd.read_csv(fields_path(out), dtype={"id": str})
    assert set(cached["id"]) == set(bare["id"]) - set(first)
    assert cached.set_index("id").loc["sout"].isna()[["run", "field"]].all()

    # rerun: only the 3 uncached positions are asked; then everything equals the run
    # with run/camcol/field given
    n = srv.count()
    download_sdss(man, out, client(srv, SAS), lookup=look, lookup_batch=3, progress=False)
    asked = [r for r in srv.requests[n:] if r.path.startswith(SKY)]
    assert len(asked) == 1 and len(POS_RE.findall(asked[0].query["cmd"])) == 3
    st = statuses(out, "sdss")
    assert st.pop("sout") == "failed: no SDSS frame covers this position"
    assert st == statuses(ref, "sdss")
    for rel in files_under(ref):
        if rel.endswith(".fits"):
            assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel
    n = srv.count()  # a third run asks SkyServer nothing
    download_sdss(man, out, client(srv, SAS), lookup=look, progress=False)
    assert not [r for r in srv.requests[n:] if r.path.startswith(SKY)]


def test_lookup_sql_and_csv_parsing():
    sql = lookup_sql([(150.5, 2.25), (10.0, -3.5)])
    assert POS_RE.findall(sql) == [("0", "150.5", "2.25"), ("1", "10.0", "-3.5")]
    assert sql.startswith("SELECT v.idx, q.run, q.rerun, q.camcol, q.field FROM (VALUES")
    text = "#Table1\nidx,run,rerun,camcol,field\n1,756,301,3,42\n"
    assert parse_skyserver_csv(text, 2) == {1: (756, 301, 3, 42)}
    with pytest.raises(FetchError, match="not the expected CSV .*starts '<html>"):
        parse_skyserver_csv("<html><body>ERROR</body></html>", 2)
    with pytest.raises(FetchError, match="idx 5 outside 0..1"):
        parse_skyserver_csv("#Table1\nidx,run,rerun,camcol,field\n5,1,301,1,1\n", 2)


# --------------------------------------------------------------------------- CFHT sky
TILE_N = 700  # 131" on a side; one sky image serves every fake tile name
TRA, TDEC = 34.5, -5.0
CFHT_ROWS = [  # id, tile, offset (arcsec) from the tile centre, 30" apart
    ("c1", "W1", (-30.0, -20.0)), ("c2", "W1", (0.0, -20.0)), ("c3", "W1", (30.0, -20.0)),
    ("cnan", "WN", (-30.0, 20.0)), ("csmall", "WS", (0.0, 20.0)), ("cmiss", "WM", (30.0, 20.0)),
]


def cfht_pos(off):
    return TRA + off[0] / 3600.0 / np.cos(np.radians(TDEC)), TDEC + off[1] / 3600.0


TILE_WCS = tan_wcs(TRA, TDEC, (TILE_N / 2, TILE_N / 2), CF.pixel_scale)


@pytest.fixture(scope="module")
def tiles():
    """Per band: a north-up zp-30 stack (1 nMgy = 1000 counts) with the galaxies."""
    out = {}
    for k, b in enumerate(BANDS):
        rng = np.random.default_rng(k)
        img = 20.0 + rng.normal(0, 5.0, (TILE_N, TILE_N))
        for gid, tile, off in CFHT_ROWS:
            x, y = TILE_WCS.world_to_pixel_values(*cfht_pos(off))
            img += blob(img.shape, x, y, FLUX * 1000.0, 3.0)
        out[b] = img.astype(np.float32)
    return out


ID_RE = re.compile(r"^cadc:CFHTSG/(W[1NSM])\.([UGRIZ])\.fits$")


def cadc_route(tiles):
    def route(req):
        m = ID_RE.match(req.query.get("ID", ""))
        if req.path != CADC + "/caom2ops/sync" or not m:
            return Reply(400, {"Content-Type": "text/plain"}, b"bad request")
        tile, band = m.group(1), m.group(2).lower()
        if tile == "WM" and band == "z":
            return Reply(404, {"Content-Type": "text/plain"}, b"artifact not found")
        ra, dec, r = (float(v) for v in req.query["CIRCLE"].split())
        x, y = TILE_WCS.world_to_pixel_values(ra, dec)
        half = int(np.ceil(r * 3600 / CF.pixel_scale))
        if tile == "WS":
            half = 10  # a cutout too small for the stamp
        x0, y0 = int(round(float(x))) - half, int(round(float(y))) - half
        data = tiles[band][y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1].copy()
        if tile == "WN" and band == "g":
            data[:] = np.nan
        w = TILE_WCS.deepcopy()
        w.wcs.crpix = [w.wcs.crpix[0] - x0, w.wcs.crpix[1] - y0]
        hdr = w.to_header()
        hdr["PHOTZP"] = 30.0
        return Reply(200, {"Content-Type": "application/fits"}, fits_bytes(data, hdr))

    key = lambda r: r.query.get("ID")  # noqa: E731
    return _Callable({"cadc:CFHTSG/W1.I.fits": [unavailable(), route]}, default=route,
                     key=key)


def cfht_manifest(path):
    rows = [{"id": g, "ra": cfht_pos(off)[0], "dec": cfht_pos(off)[1], "tile": t}
            for g, t, off in CFHT_ROWS]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_cfht_happy_path_and_failures(fake_server, tiles, tmp_path):
    srv = fake_server(cadc_route(tiles))
    man = cfht_manifest(tmp_path / "cfht.csv")
    out = tmp_path / "out"
    counts = download_cfht(man, out, client(srv, CADC), progress=False)
    st = statuses(out, "cfht")
    assert st["c1"] == st["c2"] == st["c3"] == "ok"
    assert st["cnan"] == "failed: NaN pixels in band g (18496 of 18496)"
    assert st["csmall"].startswith("failed: wrong shape: band u cutout: the 21x21 px image")
    assert st["cmiss"] == "failed: missing band z: HTTP 404: artifact not found"
    assert counts == {"ok": 3, "failed": 3, "pending": 0}
    # 5 bands x 6 galaxies, less the bands after cnan's g and csmall's u, plus the 503
    assert srv.count() == 30 - 3 - 4 + 1
    assert all(r.path == CADC + "/caom2ops/sync" for r in srv.requests)
    circle = srv.requests[0].query["CIRCLE"].split()
    assert float(circle[2]) * 3600 == pytest.approx(136 * 0.187 / 2 * 2**0.5 + 1, abs=0.01)

    for gid, tile, off in CFHT_ROWS[:3]:
        cube, wcs, hdr = read_cube(fits_path(out, "pool", "cfht", gid))
        assert cube.shape == (5, 136, 136) and cube.dtype == np.float32
        assert hdr["BANDS"] == "ugriz" and hdr["BUNIT"] == "nanomaggy"
        assert hdr["TILE"] == tile and hdr["SURVEY"] == "cfht"
        ra, dec = cfht_pos(off)
        cra, cdec = wcs.pixel_to_world_values(67.5, 67.5)
        assert separation_arcsec(cra, cdec, ra, dec) < CF.pixel_scale
        for k in range(5):  # zp 30 counts -> nanomaggies (x 1e-3)
            assert cube[k].sum() - 0.020 * 136 * 136 == pytest.approx(FLUX, rel=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfht.csv", "out"]


def test_cli_parsers_and_run(fake_server, frames, tiles, tmp_path):
    parser = argparse.ArgumentParser(prog="data.download")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in (sdss, cfht, lin_pairs):
        cmd.add_parser(sub)
    srv = sdss_server(fake_server, frames)
    out = tmp_path / "out"
    args = parser.parse_args(["sdss-fits", "--manifest", str(sdss_manifest(tmp_path / "s.csv")),
                              "--out", str(out), "--base-url", srv.base_url + SAS,
                              "--rate", "0", "--retries", "1", "--no-progress",
                              "--workers", "2", "--lookup-url", srv.base_url + SKY])
    assert (args.workers, args.lookup_batch) == (2, 25)
    assert sdss.run(args) == 1  # some galaxies failed
    assert statuses(out, "sdss")["s1"] == "ok"
    args = parser.parse_args(["cfht-fits", "--manifest", str(tmp_path / "missing.csv"),
                              "--out", str(out)])
    assert args.workers == 4
    with pytest.raises(DataError, match="missing.csv does not exist"):
        cfht.run(args)
    args = parser.parse_args(["pairs", "--sdss", str(out), "--cfht", str(out), "--out", str(out)])
    with pytest.raises(DataError, match="cfht_state.csv is missing"):
        lin_pairs.run(args)


# --------------------------------------------------------------------------- pairs
def synth_cube(survey, size, gid, ra, dec, sources):
    """A cube centred on (ra, dec) holding ``sources`` = [(ra, dec, flux)] in all bands."""
    w = stamp_wcs(ra, dec, size, survey.pixel_scale)
    img = np.full((size, size), 0.01)
    for sra, sdec, flux in sources:
        x, y = w.world_to_pixel_values(sra, sdec)
        img = img + blob(img.shape, x, y, flux, 1.2 / survey.pixel_scale)
    cube = np.stack([img] * 5).astype(np.float32)
    return cube, cube_header(w, survey, gid, ra, dec)


def make_pool(root, survey, size, rows):
    """rows: (id, ra, dec, sources) -> pool cubes + an all-ok state file."""
    st = State(state_path(root, survey.name))
    for gid, ra, dec, sources in rows:
        write_cube(fits_path(root, "pool", survey.name, gid),
                   *synth_cube(survey, size, gid, ra, dec, sources))
        st.record(gid, ra, dec, "ok")
    st.compact([r[0] for r in rows])


def arcsec(ra, dec, dx, dy):
    return ra + dx / 3600.0 / np.cos(np.radians(dec)), dec + dy / 3600.0


def test_pairs_crossmatch_peaks_split_and_rerun(tmp_path):
    root = tmp_path / "lin"
    sd_rows, cf_rows = [], []
    for k in range(10):  # 10 true pairs, CFHT positions 0.3" off, same galaxy
        ra, dec = 10.0 + 0.01 * k, 1.0
        sd_rows.append((f"p{k}", ra, dec, [(ra, dec, 100.0)]))
        cra, cdec = arcsec(ra, dec, 0.3, 0.0)
        cf_rows.append((f"C{k}", cra, cdec, [(ra, dec, 100.0)]))
    # matched within 1" but the CFHT peak is a star 3" away: rejected by the peak check
    ra, dec = 11.0, 1.0
    sd_rows.append(("bad", ra, dec, [(ra, dec, 100.0)]))
    cf_rows.append(("Cbad", *arcsec(ra, dec, 0.2, 0.0),
                    [(ra, dec, 30.0), (*arcsec(ra, dec, 3.0, 0.0), 500.0)]))
    # 5" apart: no match; and two SDSS within 1" of one CFHT: only the closer one pairs
    sd_rows.append(("far", 12.0, 1.0, [(12.0, 1.0, 100.0)]))
    cf_rows.append(("Cfar", *arcsec(12.0, 1.0, 5.0, 0.0), [(12.0, 1.0, 100.0)]))
    ra, dec = 13.0, 1.0
    sd_rows.append(("near", *arcsec(ra, dec, 0.1, 0.0), [(ra, dec, 100.0)]))
    sd_rows.append(("nearer", ra, dec, [(ra, dec, 100.0)]))
    cf_rows.append(("Cdup", ra, dec, [(ra, dec, 100.0)]))
    make_pool(root, SD, 64, sd_rows)
    make_pool(root, CF, 136, cf_rows)

    counts = make_sets(root, root, root, n_train=6, n_test=3, seed=1)
    assert counts["matched within 1\""] == 12  # 10 + bad + one of near/nearer
    assert counts["peaks within 1\" (pairs)"] == 11
    assert (counts["paired_train"], counts["paired_test"]) == (6, 3)
    assert counts["unpaired sdss"] == 14 - 9 and counts["unpaired cfht"] == 13 - 9
    man = pd.read_csv(root / "lin_manifest.csv", dtype={"id": str, "source_id": str})
    paired = man[man["subset"].str.startswith("paired")]
    assert len(paired) == 18 and set(paired.groupby("id")["survey"].apply(
        lambda s: tuple(sorted(s)))) == {("cfht", "sdss")}
    src = dict(zip(paired[paired.survey == "cfht"]["id"], paired[paired.survey == "cfht"]
                   ["source_id"]))
    assert all(src[g] in ("C" + g[1:], "Cdup") for g in src)
    unp = man[man["subset"] == "unpaired"]
    assert {"bad", "far", "near"} <= set(unp[unp.survey == "sdss"]["id"])
    assert {"Cbad", "Cfar"} <= set(unp[unp.survey == "cfht"]["id"])
    bad = unp[unp["id"] == "bad"].iloc[0]
    assert bad["peak_sep_arcsec"] == pytest.approx(3.0, abs=0.4)
    assert man[man["id"] == "far"]["match_sep_arcsec"].isna().all()
    # same ids in both surveys, hard links to the pool files
    for g in paired["id"].unique():
        sub = paired[paired["id"] == g]["subset"].iloc[0]
        a = fits_path(root, sub, "cfht", g)
        cid = src[g]
        assert os.path.samefile(a, fits_path(root, "pool", "cfht", cid))
    assert len(list((root / "paired_test" / "sdss").glob("*.fits"))) == 3

    before = {p: p.stat().st_ino for p in root.rglob("*.fits")}
    text = (root / "lin_manifest.csv").read_text()
    make_sets(root, root, root, n_train=6, n_test=3, seed=1)  # rerun: identical
    assert (root / "lin_manifest.csv").read_text() == text
    assert {p: p.stat().st_ino for p in root.rglob("*.fits")} == before
    counts = make_sets(root, root, root, n_train=2, n_test=1, seed=2)  # stale files go
    assert counts["stale files removed"] > 0
    assert len(list((root / "paired_train" / "sdss").glob("*.fits"))) == 2
    assert len(list((root / "unpaired" / "sdss").glob("*.fits"))) == 14 - 3
    assert len(list((root / "pool" / "sdss").glob("*.fits"))) == 14


def test_pairs_shrink_split_when_few_pairs(tmp_path, capsys):
    root = tmp_path / "lin"
    rows = [(f"p{k}", 10.0 + 0.01 * k, 1.0, [(10.0 + 0.01 * k, 1.0, 100.0)]) for k in range(4)]
    make_pool(root, SD, 64, rows)
    make_pool(root, CF, 136, [("C" + r[0], *r[1:]) for r in rows])
    counts = make_sets(root, root, tmp_path / "sets")
    assert (counts["paired_train"], counts["paired_test"]) == (2, 2)
    assert "fewer than 2557 + 2500" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin", "sets"]


def test_dispatcher_lists_and_runs_the_fits_commands(fake_server, tiles, tmp_path, capsys):
    download = pytest.importorskip("data.download")
    choices = download.build_parser()._subparsers._group_actions[0].choices
    assert {"sdss-fits", "cfht-fits", "pairs"} <= set(choices)
    srv = fake_server(cadc_route(tiles))
    man = tmp_path / "c.csv"
    cfht_manifest(man)
    pd.read_csv(man).iloc[:2].to_csv(man, index=False)  # c1, c2: both ok
    rc = download.main(["cfht-fits", "--manifest", str(man), "--out", str(tmp_path / "o"),
                        "--base-url", srv.base_url + CADC, "--rate", "0", "--no-progress"])
    assert rc == 0 and "cfht-fits: 2 ok, 0 failed, 0 pending" in capsys.readouterr().out
    assert download.main(["pairs", "--sdss", str(tmp_path / "o"), "--cfht",
                          str(tmp_path / "o"), "--out", str(tmp_path / "o")]) == 2
    assert "sdss_state.csv is missing" in capsys.readouterr().err
