"""SDSS ugriz FITS cubes for Lin, Fouchez & Pasquet (2021) from the calibrated frames.

``sdss-fits --manifest M --out ROOT``
    64x64 px stamps at 0.396"/px (``surveys.LIN_SDSS_SIZE``) cut from the SDSS
    calibrated frames on the Science Archive Server::

        {base}/eboss/photoObj/frames/{rerun}/{run}/{camcol}/
            frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2

    (``--base-url`` default ``https://data.sdss.org/sas/dr17``, rerun 301). Frame
    pixels are already calibrated nanomaggies (HDU 0, ``BUNIT = 'nanomaggy'``). The
    manifest is a CSV with columns ``id, ra, dec`` and optionally ``run, camcol, field``
    (all three or none; optional ``rerun``): the ``PhotoObj`` columns of the same names,
    e.g. from SkyServer/CasJobs ``SELECT objID AS id, ra, dec, run, camcol, field FROM
    PhotoObj WHERE ...``. Without them each position's field is looked up (below).
    Frames are downloaded once per field and band into ``ROOT/pool/.cache/sdss-frames``
    (all galaxies of a field go to one worker thread, in order, so many galaxies share
    one download and no frame is fetched twice), decompressed in memory with the stdlib
    ``bz2``, and the cache is removed when a run finishes unless ``--keep-frames``.

    Field lookup (manifest without ``run, camcol, field``): one query per
    ``--lookup-batch`` positions (default 25) to the SkyServer SQL search service,
    ``GET {lookup}/SkyServerWS/SearchTools/SqlSearch?cmd=<SQL>&format=csv`` with
    ``--lookup-url`` default ``https://skyserver.sdss.org/dr17``. The SQL
    (:func:`lookup_sql`) puts the positions in a ``VALUES`` table and ``CROSS APPLY``s
    ``dbo.fGetNearbyObjEq(ra, dec, 0.05)`` joined to ``PhotoPrimary``, keeping the
    nearest primary object within 3": its ``run, rerun, camcol, field``. The CSV answer
    (``#Table1`` line, header, rows) is cached in ``ROOT/pool/sdss_fields.csv``
    (atomic, reused on reruns while a position is unchanged). A position with no
    primary object is recorded in the state as ``failed: no SDSS frame covers this
    position``; a failed query as ``failed: SDSS field lookup failed: <reason>`` (retried
    on the next run). **The query could not be run offline: a user with internet should
    check one position by hand** (run :func:`lookup_sql` of one position in SkyServer's
    SQL search and compare with the Navigate tool).

Cubes, state and summary: ``data.pool``; how a stamp is cut: ``data.cube``.
"""
from __future__ import annotations

import argparse
import bz2
import csv
import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.wcs import WCS
from tqdm import tqdm

from common.errors import DataError
from common.io import atomic_write_text
from data import surveys
from data.cube import (BANDS, POOL, CutoutError, check_stamp, cube_header, image_hdu,
                       make_cube, sample_nearest, stamp_wcs)
from data.http import FetchError, HttpClient
from data.pool import CACHE, Job, add_common_args, make_client, read_manifest, report, run_jobs

SDSS_BASE = "https://data.sdss.org/sas/dr17"
SDSS_RERUN = 301
SKYSERVER_BASE = "https://skyserver.sdss.org/dr17"
SQL_SEARCH = "SkyServerWS/SearchTools/SqlSearch"
LOOKUP_BATCH = 25
LOOKUP_RADIUS_ARCMIN = 0.05  # 3": the galaxy's own PhotoPrimary detection
LOOKUP_SAVE_EVERY = 200  # batches between rewrites of the cache


def frame_name(band: str, run: int, camcol: int, field: int) -> str:
    return f"frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2"


def frame_path(band: str, run: int, camcol: int, field: int, rerun: int = SDSS_RERUN
               ) -> str:
    """SAS path of one calibrated frame, relative to the data-release base URL."""
    return (f"eboss/photoObj/frames/{rerun}/{run}/{camcol}/"
            f"{frame_name(band, run, camcol, field)}")


class SdssFrames:
    """Calibrated frames of each thread's current field: downloaded once into ``cache``
    (bz2 as served), decoded once in memory; a band that failed stays failed for that
    field. Each worker thread keeps its own current field (``run_jobs`` gives all the
    galaxies of a field to one thread), so no frame is fetched by two threads."""

    def __init__(self, client: HttpClient, cache: Path):
        self.client = client
        self.cache = Path(cache)
        self._local = threading.local()

    def get(self, band: str, run: int, camcol: int, field: int, rerun: int
            ) -> tuple[np.ndarray, WCS]:
        """``([h, w] float32 nanomaggies, WCS)`` of one frame; raises ``CutoutError``."""
        key = (rerun, run, camcol, field)
        here = self._local
        if getattr(here, "key", None) != key:
            here.key, here.frames = key, {}
        frames = here.frames
        if band not in frames:
            try:
                frames[band] = self._load(band, run, camcol, field, rerun)
            except CutoutError as err:
                frames[band] = err
        got = frames[band]
        if isinstance(got, CutoutError):
            raise got
        return got

    def _load(self, band, run, camcol, field, rerun):
        rel = frame_path(band, run, camcol, field, rerun)
        name = frame_name(band, run, camcol, field)
        local = self.cache / rel
        if not local.is_file():
            try:
                self.client.download(rel, local)  # streamed, atomic
            except FetchError as err:
                raise CutoutError(f"missing band {band}: {name}: {err.reason}") from None
        body = local.read_bytes()
        if not body.startswith(b"BZh"):
            local.unlink()
            text = " ".join(body[:60].decode("latin-1").split())
            raise CutoutError(f"missing band {band}: {name} is not bz2 (starts {text!r})")
        try:
            raw = bz2.decompress(body)
        except (OSError, ValueError, EOFError) as err:
            local.unlink(missing_ok=True)  # refetched on the next run
            raise CutoutError(f"corrupt {name} ({err})") from None
        data, hdr, wcs = image_hdu(raw, name)
        unit = str(hdr.get("BUNIT", "nanomaggy")).lower()
        if "nanomagg" not in unit:
            raise CutoutError(f"{name} has BUNIT={hdr['BUNIT']!r}, expected nanomaggy")
        return np.asarray(data, np.float32), wcs


FIELD_COLS = ("run", "camcol", "field")
#: What a galaxy's SkyServer lookup found (or why it failed), per manifest row.
LOOKUP_FAILED = "lookup_failed"
NOT_COVERED = "no SDSS frame covers this position"


def field_key(job: Job) -> tuple[int, int, int, int]:
    """``(rerun, run, camcol, field)`` of an SDSS job: its group in
    :func:`data.pool.run_jobs`."""
    r = job.row
    return int(r["rerun"]), int(r["run"]), int(r["camcol"]), int(r["field"])


def sdss_jobs(manifest: pd.DataFrame) -> list[Job]:
    """Jobs in field order (rerun, run, camcol, field), so each frame is fetched once."""
    df = manifest.copy()
    if "rerun" not in df.columns:
        df["rerun"] = SDSS_RERUN
    df = df.sort_values(["rerun", "run", "camcol", "field", "id"], kind="stable")
    return [Job(r["id"], float(r["ra"]), float(r["dec"]), r)
            for r in df.to_dict("records")]


def download_sdss(manifest: Path | str, out: Path | str, client: HttpClient, *,
                  lookup: HttpClient | None = None, lookup_batch: int = LOOKUP_BATCH,
                  workers: int = 4, keep_frames: bool = False, progress: bool = True
                  ) -> dict:
    """Make ``ROOT/pool/sdss/<id>.fits`` for every manifest galaxy; returns the counts.

    Manifest columns: ``id, ra, dec`` and either all of ``run, camcol, field`` (+
    optional ``rerun``) or none of them; then each position's field is looked up with
    ``lookup`` (a client below the SkyServer base, see :func:`lookup_fields`), cached in
    ``ROOT/pool/sdss_fields.csv``. ``workers`` threads share ``client``; each field's
    galaxies go to one thread.
    """
    survey, size = surveys.SDSS, surveys.LIN_SDSS_SIZE
    df = read_manifest(manifest, [], ints=[*FIELD_COLS, "rerun"],
                       optional=[*FIELD_COLS, "rerun"])
    have = [c for c in FIELD_COLS if c in df.columns]
    if have and len(have) < len(FIELD_COLS):
        lack = [c for c in FIELD_COLS if c not in have]
        raise DataError(f"manifest {manifest} has {', '.join(have)} but lacks "
                        f"{', '.join(lack)}: give run, camcol, field or none of them "
                        f"(then they are looked up)")
    if workers < 1:
        raise ValueError(f"--workers {workers} must be >= 1")
    out = Path(out)
    if not have:
        if lookup is None:
            raise DataError(f"manifest {manifest} has no run, camcol, field and no "
                            f"lookup service was given")
        df = lookup_fields(df, lookup, fields_path(out), batch=lookup_batch,
                           progress=progress)
    cache = out / POOL / CACHE / "sdss-frames"
    frames = SdssFrames(client, cache)

    def make(job: Job):
        r = job.row
        if isinstance(r.get(LOOKUP_FAILED), str):
            raise CutoutError(r[LOOKUP_FAILED])
        rerun, run, camcol, field = field_key(job)
        dst = stamp_wcs(job.ra, job.dec, size, survey.pixel_scale)
        stamps = {}
        for b in BANDS:
            data, wcs = frames.get(b, run, camcol, field, rerun)
            try:
                stamps[b] = sample_nearest(data, wcs, dst, size)
            except CutoutError as err:
                raise CutoutError(f"wrong shape: band {b}: {frame_name(b, run, camcol, field)}"
                                  f": {err} (galaxy near the frame edge)") from None
            check_stamp(stamps[b], b, size)  # fail fast, before the next band
        cube = make_cube(stamps, size)
        extra = {"RUN": run, "CAMCOL": camcol, "FIELD": field, "RERUN": rerun}
        return cube, cube_header(dst, survey, job.gid, job.ra, job.dec, extra)

    counts = run_jobs(sdss_jobs(df), survey, out, make, workers=workers, group=field_key,
                      progress=progress)
    if not keep_frames and cache.is_dir():
        shutil.rmtree(cache)
        if not any(cache.parent.iterdir()):
            cache.parent.rmdir()
    return counts


# --------------------------------------------------------------------------- SDSS lookup
FIELDS_COLUMNS = ("id", "ra", "dec", "run", "rerun", "camcol", "field")


def fields_path(out: Path | str) -> Path:
    """The lookup cache ``ROOT/pool/sdss_fields.csv``."""
    return Path(out) / POOL / "sdss_fields.csv"


def lookup_sql(positions: list[tuple[float, float]],
               radius_arcmin: float = LOOKUP_RADIUS_ARCMIN) -> str:
    """SkyServer SQL giving, for each ``(ra, dec)`` (deg) of ``positions``, the field of
    the nearest ``PhotoPrimary`` object within ``radius_arcmin``: one row ``idx, run,
    rerun, camcol, field`` per position that has one (``idx``: its index in the list).

    The positions enter as a ``VALUES`` table; ``CROSS APPLY`` runs the SkyServer
    function ``dbo.fGetNearbyObjEq(ra, dec, radius)`` for each and keeps the nearest
    primary detection (``TOP 1 ... ORDER BY distance``). A primary detection lies in
    the field that the frames of its position come from; a position with no primary
    object within the radius gets no row (outside the footprint)."""
    rows = ",".join(f"({k},{float(ra)!r},{float(dec)!r})"
                    for k, (ra, dec) in enumerate(positions))
    return ("SELECT v.idx, q.run, q.rerun, q.camcol, q.field "
            f"FROM (VALUES {rows}) AS v(idx, ra, dec) "
            "CROSS APPLY (SELECT TOP 1 p.run, p.rerun, p.camcol, p.field "
            f"FROM dbo.fGetNearbyObjEq(v.ra, v.dec, {radius_arcmin}) AS n "
            "JOIN PhotoPrimary AS p ON p.objID = n.objID ORDER BY n.distance) AS q")


def parse_skyserver_csv(text: str, n: int) -> dict[int, tuple[int, int, int, int]]:
    """``{idx: (run, rerun, camcol, field)}`` from SkyServer's CSV answer to
    :func:`lookup_sql` (a ``#Table1`` line, a header, rows) for ``n`` positions.
    Raises ``FetchError`` with a one-line reason for anything else (an error page)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    want = ("idx", "run", "rerun", "camcol", "field")
    header = next(csv.reader(lines[:1]), [])
    if any(c not in header for c in want):
        head = " ".join(text.split())[:80]
        raise FetchError(f"SkyServer answer is not the expected CSV (starts {head!r})")
    got = {}
    for rec in rows:
        try:
            k = int(rec["idx"])
            val = tuple(int(rec[c]) for c in want[1:])
        except (TypeError, ValueError):
            raise FetchError(f"SkyServer answer has a bad row {rec!r}") from None
        if not 0 <= k < n:
            raise FetchError(f"SkyServer answer has idx {k} outside 0..{n - 1}")
        got.setdefault(k, val)
    return got


def _read_fields(path: Path) -> dict[str, tuple]:
    """The lookup cache: ``{id: (ra, dec, run, rerun, camcol, field)}`` (``None``s when
    no frame covers the position); an unreadable cache is ignored (looked up again)."""
    if not path.is_file():
        return {}
    out = {}
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            try:
                vals = tuple(int(rec[c]) if rec[c] != "" else None
                             for c in FIELDS_COLUMNS[3:])
                if len(set(v is None for v in vals)) != 1:
                    continue
                out[rec["id"]] = (float(rec["ra"]), float(rec["dec"]), *vals)
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _write_fields(path: Path, cache: dict[str, tuple]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS_COLUMNS)
    for gid, (ra, dec, *vals) in cache.items():
        w.writerow([gid, repr(ra), repr(dec), *("" if v is None else v for v in vals)])
    atomic_write_text(path, buf.getvalue())


def lookup_fields(df: pd.DataFrame, client: HttpClient, cache_path: Path, *,
                  batch: int = LOOKUP_BATCH, progress: bool = True) -> pd.DataFrame:
    """Add ``run, rerun, camcol, field`` (``-1`` where unknown) and ``lookup_failed``
    (the one-line reason, or ``None``) to a manifest of ``id, ra, dec``, from the
    SkyServer SQL search service.

    One ``GET {base}/SkyServerWS/SearchTools/SqlSearch?cmd=<SQL>&format=csv`` per
    ``batch`` positions (SQL of :func:`lookup_sql`; ``batch`` is kept small because the
    SQL travels in the URL: 25 positions are about 2 kB). Answers are cached in
    ``cache_path`` (rewritten atomically every few hundred batches and at the end, even on
    Ctrl-C) and reused while a galaxy's position is unchanged. A position with no
    answer row is recorded as "no SDSS frame covers this position" (cached); a failed
    request marks its batch "SDSS field lookup failed: <reason>" (not cached: retried
    on the next run). **The query could not be run offline: a user with internet should
    check one position by hand** (paste :func:`lookup_sql` of one position into
    SkyServer's SQL search and compare run/camcol/field with the Navigate tool).
    """
    if batch < 1:
        raise ValueError(f"--lookup-batch {batch} must be >= 1")
    cache = _read_fields(cache_path)
    def known(g, ra, dec):
        return g in cache and abs(cache[g][0] - ra) <= 1e-9 and abs(cache[g][1] - dec) <= 1e-9

    todo = [(g, ra, dec) for g, ra, dec in zip(df["id"], df["ra"], df["dec"])
            if not known(g, ra, dec)]
    failed: dict[str, str] = {}
    chunks = [todo[k:k + batch] for k in range(0, len(todo), batch)]
    try:
        for n, chunk in enumerate(tqdm(chunks, desc="sdss-fields", unit="query",
                                       disable=not progress or not chunks)):
            params = {"cmd": lookup_sql([(ra, dec) for _, ra, dec in chunk]),
                      "format": "csv"}
            try:
                got = parse_skyserver_csv(client.get(SQL_SEARCH, params).text, len(chunk))
            except FetchError as err:
                for g, _, _ in chunk:
                    failed[g] = "SDSS field lookup failed: " + " ".join(err.reason.split())
                continue
            for k, (g, ra, dec) in enumerate(chunk):
                cache[g] = (float(ra), float(dec), *got.get(k, (None,) * 4))
            if (n + 1) % LOOKUP_SAVE_EVERY == 0:
                _write_fields(cache_path, cache)
    finally:
        if todo:
            _write_fields(cache_path, cache)
    df = df.copy()
    recs = [cache.get(g, (None,) * 6)[2:] for g in df["id"]]
    for k, col in enumerate(("run", "rerun", "camcol", "field")):
        df[col] = [-1 if r[k] is None else r[k] for r in recs]
    df[LOOKUP_FAILED] = [failed.get(g, NOT_COVERED if r[0] is None else None)
                         for g, r in zip(df["id"], recs)]
    return df


# --------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``sdss-fits`` subcommand of ``python -m data.download``."""
    p = subparsers.add_parser(
        "sdss-fits", help="SDSS ugriz 64x64 FITS cubes from the calibrated frames",
        description="SDSS ugriz 64x64 px FITS cubes at 0.396\"/px (nanomaggies) cut "
                    "from the SAS calibrated frames. Manifest CSV: id, ra, dec [, run, "
                    "camcol, field [, rerun]]; without run/camcol/field they are "
                    "looked up on SkyServer (check one position by hand first).")
    add_common_args(p, SDSS_BASE)
    p.add_argument("--lookup-url", default=SKYSERVER_BASE,
                   help="SkyServer base for the field lookup; queries go to "
                        f"LOOKUP_URL/{SQL_SEARCH} (default %(default)s)")
    p.add_argument("--lookup-batch", type=int, default=LOOKUP_BATCH,
                   help="positions per lookup query (default %(default)s)")
    p.add_argument("--keep-frames", action="store_true",
                   help="keep the downloaded frames in OUT/pool/.cache after the run")
    return p


def run(args) -> int:
    """0 if every galaxy is ok, 1 if some failed (see the summary)."""
    with make_client(args, SDSS_BASE) as client, \
            HttpClient(args.lookup_url, rate=args.rate, retries=args.retries) as lookup:
        counts = download_sdss(args.manifest, args.out, client, lookup=lookup,
                               lookup_batch=args.lookup_batch, workers=args.workers,
                               keep_frames=args.keep_frames,
                               progress=not args.no_progress)
    report("sdss", counts, args.out)
    return 1 if counts["failed"] else 0
