"""ugriz FITS cutouts for Lin, Fouchez & Pasquet (2021): SDSS frames and CFHTLS MegaPipe.

Two subcommands of ``python -m data.download`` (needs internet):

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

``cfht-fits --manifest M --out ROOT``
    136x136 px stamps at 0.187"/px (``surveys.LIN_CFHT_SIZE``) from the CFHTLS Wide
    stacks at CADC, through the CADC SODA cutout service (one request per band)::

        GET {base}/caom2ops/sync?ID={uri}&CIRCLE={ra} {dec} {radius_deg}

    with ``--base-url`` default ``https://ws-cadc.canfar.net`` and
    ``uri = --uri-template.format(tile=..., band='g', BAND='G', id=...)``, default
    ``cadc:CFHTSG/{tile}.{BAND}.fits`` (CADC's documented example of this service is
    ``caom2ops/sync?id=cadc:CFHTSG/D2.I.fits&CIRCLE=150.570478+2.172356+0.01``, a
    MegaPipe CFHTLS stack). The manifest is a CSV with columns ``id, ra, dec, tile``
    (``tile``: the stack that holds the galaxy, as named in the artifact URI; any
    column named in the template is required). **The artifact names of the CFHTLS Wide
    MegaPipe stacks and the exact service URL could not be checked offline: a user with
    internet must check one galaxy by hand** (CADC's advanced search shows the
    artifact URI of each stack) and set ``--uri-template`` / ``--base-url`` if needed.
    The circle's radius covers the stamp's diagonal plus 1"; the returned cutout is then
    cut locally like the SDSS frames. Stacks use zero point 30, so pixels are
    multiplied by ``surveys.CFHT.flux_to_nmgy`` (1e-3); a header ``PHOTZP`` other than
    30 is reported as a failure.

How a stamp is cut (both surveys, ``sample_nearest``): the output grid is a north-up,
east-left TAN grid centred on the galaxy (``stamp_wcs``; the centre is the middle of the
stamp, FITS pixel ``(size + 1) / 2``, so flips and 90 degree rotations keep it) at the
survey's pixel scale; every output pixel takes the value of the source pixel nearest to
its sky position. No interpolation: pixel values and their noise are kept as observed
(only picked; on a rotated SDSS frame a few are picked twice), positions are exact to
half a source pixel, and all five bands share one WCS although the SDSS frames of one
field are not aligned with each other. The SDSS scans are not north-up, hence the
regridding; pairs then match pixel by pixel. On an aligned grid of the same scale the
stamp is an exact shifted cut; MegaPipe's native 0.186"/px against the 0.187"/px grid
means about one CFHT row and one column of the 136 are picked twice.

Output (``data.layout``): ``ROOT/pool/<survey>/<id>.fits`` -- one primary HDU, float32
``[5, H, W]`` (u, g, r, i, z) in nanomaggies, the stamp's TAN WCS (``WCSAXES = 2``), and
``BANDS = 'ugriz'``, ``BAND0..BAND4``, ``BUNIT``, ``SURVEY``, ``OBJID``, ``RA``/``DEC`` of
the request, ``PIXSCALE`` and the source (run/camcol/field or tile). ``data.lin_pairs``
(``python -m data.download pairs``) then builds the paired and unpaired sets.

Reliability: each galaxy's outcome goes to ``ROOT/pool/<survey>_state.csv`` (``id, ra,
dec, status`` with status ``ok`` or ``failed: <reason>``), appended as it happens and
compacted at the end; a rerun skips ``ok`` galaxies whose file exists and retries the
failed ones. Files are written atomically (``common.io``), so Ctrl-C leaves finished
files and the state, never half a file. A stamp with NaN or inf pixels, a blank band, a
band missing on the server, a cutout that does not cover the stamp (wrong shape) or
wrong units is recorded as failed with its reason and never written.
``ROOT/pool/<survey>_summary.md`` gets a table of the outcomes. HTTP retries, backoff and
the rate limit are ``data.http.HttpClient``'s.

Concurrency: ``--workers N`` (default 4, like ``legacy``) threads make galaxies in
parallel through one shared ``HttpClient``, so ``--rate`` bounds all of them together.
The state is appended under one lock (one fsynced line per galaxy) and compacted in
manifest order, so files, state and summary are the same for any ``N``. On Ctrl-C the
galaxies in flight finish (their retries included) before the state is compacted.
"""
from __future__ import annotations

import argparse
import bz2
import csv
import io
import math
import shutil
import string
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS
from tqdm import tqdm

from common.io import atomic_write_text
from common.errors import DataError
from data import surveys
from data.http import FetchError, HttpClient
from data.cube import (BANDS, POOL, CutoutError, check_stamp, cube_header, default_out,
                        image_hdu, make_cube, sample_nearest, stamp_wcs, write_cube)
from data.joblog import JobLog, read_rows, summarize
from data.layout import check_id, fits_path

SDSS_BASE = "https://data.sdss.org/sas/dr17"
SDSS_RERUN = 301
SKYSERVER_BASE = "https://skyserver.sdss.org/dr17"
SQL_SEARCH = "SkyServerWS/SearchTools/SqlSearch"
LOOKUP_BATCH = 25
LOOKUP_RADIUS_ARCMIN = 0.05  # 3": the galaxy's own PhotoPrimary detection
LOOKUP_SAVE_EVERY = 200  # batches between rewrites of the cache
CADC_BASE = "https://ws-cadc.canfar.net"
CADC_SYNC = "caom2ops/sync"
CFHT_URI_TEMPLATE = "cadc:CFHTSG/{tile}.{BAND}.fits"
CACHE = ".cache"


# --------------------------------------------------------------------------- manifests
def read_manifest(path: Path | str, columns: Iterable[str], ints: Iterable[str] = (),
                  optional: Iterable[str] = ()) -> pd.DataFrame:
    """Read and check a download manifest CSV: ``id, ra, dec`` plus ``columns``.

    ``optional`` columns may be absent; where present they must be filled like
    ``columns``. ``ints`` columns (where present) must hold integers. Raises ``DataError`` naming the file and the
    first bad value (unsafe or duplicate id, ra outside [0, 360), dec outside
    [-90, 90], a missing column).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"manifest {path} is not a readable CSV ({err})") from None
    need = ["id", "ra", "dec", *columns]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"manifest {path} lacks column(s) {', '.join(missing)} "
                        f"(needs {', '.join(need)})")
    if df.empty:
        raise DataError(f"manifest {path} has no rows")
    for col in [*columns, *(c for c in optional if c in df.columns)]:
        empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if empty.any():
            raise DataError(f"manifest {path}: id {df['id'][empty].iloc[0]!r} has no {col}")
    for gid in df["id"]:
        try:
            check_id(gid)
        except DataError as err:
            raise DataError(f"manifest {path}: {err}") from None
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise DataError(f"manifest {path}: duplicate id {dup.iloc[0]!r}")
    for col in ("ra", "dec", *[c for c in ints if c in df.columns]):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(vals.to_numpy(np.float64))
        if col in ints:
            bad |= ~bad & (vals.fillna(0) % 1 != 0).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"manifest {path}: id {df['id'].iloc[i]!r} has "
                            f"{col}={df[col].iloc[i]!r} (not a {'whole ' if col in ints else ''}"
                            f"number)")
        df[col] = vals.astype(np.int64) if col in ints else vals.astype(np.float64)
    for col, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        bad = (df[col] < lo) | (df[col] > hi) | ((df[col] == hi) & (col == "ra"))
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"manifest {path}: id {df['id'].iloc[i]!r} has "
                            f"{col}={df[col].iloc[i]} outside [{lo:g}, {hi:g}]")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- state
class State:
    """Resumable per-galaxy outcomes in ``<survey>_state.csv``: ``id, ra, dec, status``
    (a ``data.joblog.JobLog``: one fsynced line per galaxy, thread-safe; a line cut by a
    kill is never read and is dropped before the next append; the last row of an id
    wins). :meth:`compact` rewrites the file atomically with one row per id."""

    COLUMNS = ("id", "ra", "dec", "status")

    def __init__(self, path: Path):
        self.path = Path(path)
        self.log = JobLog(self.path, self.COLUMNS)
        self.rows: dict[str, tuple[float, float, str]] = {}
        for rec in read_rows(self.path, whole=False):
            try:
                self.rows[rec["id"]] = (float(rec["ra"]), float(rec["dec"]), rec["status"])
            except (KeyError, TypeError, ValueError):
                continue

    def status(self, gid: str, ra: float, dec: float) -> str | None:
        """Recorded status of ``gid`` at this position (``None``: not tried here)."""
        rec = self.rows.get(gid)
        if rec is None or abs(rec[0] - ra) > 1e-9 or abs(rec[1] - dec) > 1e-9:
            return None
        return rec[2]

    def record(self, gid: str, ra: float, dec: float, status: str) -> None:
        """Append one line (flushed and fsynced) and remember it; thread-safe."""
        self.log.append((gid, repr(float(ra)), repr(float(dec)), status))
        self.rows[gid] = (float(ra), float(dec), status)

    def close(self) -> None:
        self.log.close()

    def compact(self, order: Iterable[str]) -> None:
        """Rewrite atomically with one row per id of ``order`` that has a status."""
        self.log.compact((g, repr(self.rows[g][0]), repr(self.rows[g][1]), self.rows[g][2])
                         for g in order if g in self.rows)


def read_state(path: Path | str) -> pd.DataFrame:
    """The state file as a DataFrame (``id, ra, dec, status``); ``DataError`` if absent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"download state {path} is missing: run the download first")
    st = State(path)
    return pd.DataFrame([(g, *v) for g, v in st.rows.items()], columns=State.COLUMNS)


def state_path(out: Path | str, survey: str) -> Path:
    return Path(out) / POOL / f"{survey}_state.csv"


def summary_path(out: Path | str, survey: str) -> Path:
    return Path(out) / POOL / f"{survey}_summary.md"


@dataclass
class Job:
    """One galaxy to make: its id, centre (deg) and the manifest row."""
    gid: str
    ra: float
    dec: float
    row: dict


def run_jobs(jobs: list[Job], survey: surveys.Survey, out: Path,
             make: Callable[[Job], tuple[np.ndarray, fits.Header]], *,
             workers: int = 1, group: Callable[[Job], object] | None = None,
             progress: bool = True) -> dict:
    """Make every job not already ``ok`` and record each outcome; returns the counts.

    ``make(job)`` returns ``(cube, header)`` or raises ``CutoutError`` / ``FetchError``
    (recorded as ``failed: <reason>``). Jobs with the same ``group(job)`` key (default:
    each job alone) go, in list order, to one of ``workers`` threads (the pattern of
    ``data.download.download_legacy``: a ``ThreadPoolExecutor`` drained with
    ``as_completed``), so a group's shared inputs (an SDSS field's frames) are fetched by
    one thread only. Each outcome is appended to the state as it happens (thread-safe);
    the state is compacted in ``jobs`` order, so its content does not depend on
    ``workers``. On Ctrl-C or an unexpected error no new galaxy is started, the ones in
    flight finish, the state is compacted and the summary written, then it re-raises.
    """
    if workers < 1:
        raise ValueError(f"--workers {workers} must be >= 1")
    state = State(state_path(out, survey.name))
    groups: dict[object, list[Job]] = {}
    for k, job in enumerate(jobs):
        path = fits_path(out, POOL, survey.name, job.gid)
        if state.status(job.gid, job.ra, job.dec) == "ok" and path.is_file():
            continue
        groups.setdefault(group(job) if group else k, []).append(job)
    todo = sum(len(g) for g in groups.values())
    stop = threading.Event()
    bar = tqdm(total=todo, desc=f"{survey.name}-fits", unit="galaxy",
               disable=not progress)
    bar_lock = threading.Lock()

    def work(batch: list[Job]) -> None:
        for job in batch:
            if stop.is_set():
                return
            path = fits_path(out, POOL, survey.name, job.gid)
            try:
                cube, header = make(job)
                write_cube(path, cube, header)
                status = "ok"
            except (CutoutError, FetchError) as err:
                reason = err.reason if isinstance(err, FetchError) else str(err)
                status = "failed: " + " ".join(reason.split())
                path.unlink(missing_ok=True)  # a stale file of an earlier position
            state.record(job.gid, job.ra, job.dec, status)
            with bar_lock:
                bar.update()

    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(work, batch) for batch in groups.values()]
            try:
                for fut in as_completed(futures):
                    fut.result()  # a worker's KeyboardInterrupt or bug surfaces here
            finally:  # let the galaxies in flight finish, start no more
                stop.set()
                for fut in futures:
                    fut.cancel()
    finally:
        bar.close()
        order = [j.gid for j in jobs]
        state.compact(order)
        counts = summarize([state.status(j.gid, j.ra, j.dec) for j in jobs],
                           f"{survey.name} FITS download", summary_path(out, survey.name))
    return counts


def _client(args, default_base: str) -> HttpClient:
    return HttpClient(args.base_url or default_base, rate=args.rate, retries=args.retries)


def _report(survey: str, counts: dict, out: Path) -> None:
    print(f"{survey}-fits: {counts['ok']} ok, {counts['failed']} failed, "
          f"{counts['pending']} pending -> {summary_path(out, survey)}")


# --------------------------------------------------------------------------- SDSS
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
    """``(rerun, run, camcol, field)`` of an SDSS job: its group in :func:`run_jobs`."""
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


# --------------------------------------------------------------------------- CFHT
def cfht_radius_deg(size: int = surveys.LIN_CFHT_SIZE,
                    pixscale: float = surveys.CFHT.pixel_scale) -> float:
    """SODA circle radius (deg) that covers the stamp's diagonal plus 1"."""
    return (size * pixscale / 2.0 * math.sqrt(2.0) + 1.0) / 3600.0


def template_fields(template: str) -> list[str]:
    """Manifest columns a URI template needs (its ``{names}`` other than band/BAND/id)."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return [n for n in dict.fromkeys(names) if n not in ("band", "BAND", "id")]


def download_cfht(manifest: Path | str, out: Path | str, client: HttpClient, *,
                  uri_template: str = CFHT_URI_TEMPLATE, workers: int = 4,
                  progress: bool = True) -> dict:
    """Make ``ROOT/pool/cfht/<id>.fits`` for every manifest galaxy; returns the counts.

    Manifest columns: ``id, ra, dec`` plus the template's fields (default ``tile``).
    ``workers`` threads share ``client`` (and its rate limit), one galaxy each at a time.
    """
    survey, size = surveys.CFHT, surveys.LIN_CFHT_SIZE
    fields = template_fields(uri_template)
    df = read_manifest(manifest, fields)
    out = Path(out)
    radius = cfht_radius_deg(size, survey.pixel_scale)

    def make(job: Job):
        dst = stamp_wcs(job.ra, job.dec, size, survey.pixel_scale)
        stamps = {}
        for b in BANDS:
            uri = uri_template.format(band=b, BAND=b.upper(), id=job.gid,
                                      **{f: job.row[f] for f in fields})
            params = {"ID": uri, "CIRCLE": f"{job.ra:.7f} {job.dec:.7f} {radius:.6f}"}
            try:
                body = client.get(CADC_SYNC, params).content
            except FetchError as err:
                raise CutoutError(f"missing band {b}: {err.reason}") from None
            data, hdr, wcs = image_hdu(body, f"band {b} cutout")
            zp = hdr.get("PHOTZP")
            if zp is not None and abs(float(zp) - 30.0) > 0.01:
                raise CutoutError(f"band {b} cutout has PHOTZP={zp}, expected 30")
            try:
                stamps[b] = sample_nearest(data, wcs, dst, size) * survey.flux_to_nmgy
            except CutoutError as err:
                raise CutoutError(f"wrong shape: band {b} cutout: {err}") from None
            check_stamp(stamps[b], b, size)  # fail fast: no requests for later bands
        cube = make_cube(stamps, size)
        extra = {f.upper()[:8]: str(job.row[f]) for f in fields}
        return cube, cube_header(dst, survey, job.gid, job.ra, job.dec, extra)

    jobs = [Job(r["id"], float(r["ra"]), float(r["dec"]), r)
            for r in df.to_dict("records")]
    return run_jobs(jobs, survey, out, make, workers=workers, progress=progress)


# --------------------------------------------------------------------------- CLI
def _common_args(p: argparse.ArgumentParser, base: str) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="input CSV (see above)")
    p.add_argument("--out", type=Path, default=default_out(),
                   help="dataset root; cubes go to OUT/pool/<survey>/ (default %(default)s)")
    p.add_argument("--base-url", default=base, help="service base URL (default %(default)s)")
    p.add_argument("--rate", type=float, default=4.0, help="max requests/s (default 4)")
    p.add_argument("--retries", type=int, default=5, help="retries per request (default 5)")
    p.add_argument("--workers", type=int, default=4,
                   help="galaxies in parallel, sharing one rate limit (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


class _SdssFits:
    name = "sdss-fits"

    def add_parser(self, subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser(
            self.name, help="SDSS ugriz 64x64 FITS cubes from the calibrated frames",
            description="SDSS ugriz 64x64 px FITS cubes at 0.396\"/px (nanomaggies) cut "
                        "from the SAS calibrated frames. Manifest CSV: id, ra, dec [, run, "
                        "camcol, field [, rerun]]; without run/camcol/field they are "
                        "looked up on SkyServer (check one position by hand first).")
        _common_args(p, SDSS_BASE)
        p.add_argument("--lookup-url", default=SKYSERVER_BASE,
                       help="SkyServer base for the field lookup; queries go to "
                            f"LOOKUP_URL/{SQL_SEARCH} (default %(default)s)")
        p.add_argument("--lookup-batch", type=int, default=LOOKUP_BATCH,
                       help="positions per lookup query (default %(default)s)")
        p.add_argument("--keep-frames", action="store_true",
                       help="keep the downloaded frames in OUT/pool/.cache after the run")
        p.set_defaults(command=self.name)
        return p

    def run(self, args) -> int:
        """0 if every galaxy is ok, 1 if some failed (see the summary)."""
        with _client(args, SDSS_BASE) as client, \
                HttpClient(args.lookup_url, rate=args.rate, retries=args.retries) as lookup:
            counts = download_sdss(args.manifest, args.out, client, lookup=lookup,
                                   lookup_batch=args.lookup_batch, workers=args.workers,
                                   keep_frames=args.keep_frames,
                                   progress=not args.no_progress)
        _report("sdss", counts, args.out)
        return 1 if counts["failed"] else 0


class _CfhtFits:
    name = "cfht-fits"

    def add_parser(self, subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser(
            self.name, help="CFHTLS ugriz 136x136 FITS cubes via the CADC SODA cutouts",
            description="CFHTLS Wide ugriz 136x136 px FITS cubes at 0.187\"/px "
                        "(nanomaggies) through CADC's caom2ops/sync cutout service. "
                        "Manifest CSV: id, ra, dec, tile (or the --uri-template fields). "
                        "Check the artifact URI of one galaxy by hand first.")
        _common_args(p, CADC_BASE)
        p.add_argument("--uri-template", default=CFHT_URI_TEMPLATE,
                       help="artifact URI per band; fields {band} {BAND} {id} and manifest "
                            "columns (default %(default)s)")
        p.set_defaults(command=self.name)
        return p

    def run(self, args) -> int:
        """0 if every galaxy is ok, 1 if some failed (see the summary)."""
        with _client(args, CADC_BASE) as client:
            counts = download_cfht(args.manifest, args.out, client,
                                   uri_template=args.uri_template,
                                   workers=args.workers, progress=not args.no_progress)
        _report("cfht", counts, args.out)
        return 1 if counts["failed"] else 0


SDSS_FITS = _SdssFits()
CFHT_FITS = _CfhtFits()

#: Subcommands ``data.download`` picks up (each has ``add_parser(subparsers)`` and
#: ``run(args)``); ``pairs`` comes from ``data.lin_pairs``, which builds on this module.
SUBCOMMANDS = (SDSS_FITS, CFHT_FITS)
