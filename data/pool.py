"""The download pool of the Lin et al. FITS sets, shared by ``data.sdss`` and ``data.cfht``:
manifest checks, the per-survey state log, the job runner and the common flags.

Output (``data.layout``): ``ROOT/pool/<survey>/<id>.fits``, one cube each in the format
of ``data.cube``. ``data.lin_pairs`` (``python -m data.download pairs``) then builds the
paired and unpaired sets.

Reliability: each galaxy's outcome goes to ``ROOT/pool/<survey>_state.csv`` (``id, ra,
dec, status`` with status ``ok`` or ``failed: <reason>``), appended as it happens and
compacted at the end; a rerun skips ``ok`` galaxies whose file exists and retries the
failed ones. Files are written atomically (``common.io``), so Ctrl-C leaves finished
files and the state, never half a file. A stamp with NaN or inf pixels, a blank band, a
band missing on the server, a cutout that does not cover the stamp (wrong shape) or
wrong units is recorded as failed with its reason and never written.
``ROOT/pool/<survey>_summary.md`` gets a table of the outcomes. The state is a
``data.joblog.JobLog``; HTTP retries, backoff and the rate limit are
``data.http.HttpClient``'s.

Concurrency: ``--workers N`` (default 4, like ``legacy``) threads make galaxies in
parallel through one shared ``HttpClient``, so ``--rate`` bounds all of them together.
The state is appended under one lock (one fsynced line per galaxy) and compacted in
manifest order, so files, state and summary are the same for any ``N``. On Ctrl-C the
galaxies in flight finish (their retries included) before the state is compacted.
"""
from __future__ import annotations

import argparse
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from astropy.io import fits
from tqdm import tqdm

from common.errors import DataError
from data import surveys
from data.cube import POOL, CutoutError, default_out, write_cube
from data.http import FetchError, HttpClient
from data.joblog import JobLog, read_rows, summarize
from data.layout import check_id, fits_path

#: Folder of the pool holding downloads kept only during a run (SDSS frames).
CACHE = ".cache"


# --------------------------------------------------------------------------- manifests
def read_manifest(path: Path | str, columns: Iterable[str], ints: Iterable[str] = (),
                  optional: Iterable[str] = ()) -> pd.DataFrame:
    """Read and check a download manifest CSV: ``id, ra, dec`` plus ``columns``.

    ``optional`` columns may be absent; where present they must be filled like
    ``columns``. ``ints`` columns (where present) must hold integers. Raises
    ``DataError`` naming the file and the first bad value (unsafe or duplicate id, ra
    outside [0, 360), dec outside [-90, 90], a missing column).
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
    ``data.legacy.download_legacy``: a ``ThreadPoolExecutor`` drained with
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


def make_client(args, default_base: str) -> HttpClient:
    """The client of a FITS subcommand: ``--base-url`` (else ``default_base``), ``--rate``,
    ``--retries``."""
    return HttpClient(args.base_url or default_base, rate=args.rate, retries=args.retries)


def report(survey: str, counts: dict, out: Path) -> None:
    """One line of counts after a FITS download."""
    print(f"{survey}-fits: {counts['ok']} ok, {counts['failed']} failed, "
          f"{counts['pending']} pending -> {summary_path(out, survey)}")


def add_common_args(p: argparse.ArgumentParser, base: str) -> None:
    """The flags both FITS subcommands share (``base``: the default ``--base-url``)."""
    p.add_argument("--manifest", required=True, type=Path, help="input CSV (see above)")
    p.add_argument("--out", type=Path, default=default_out(),
                   help="dataset root; cubes go to OUT/pool/<survey>/ (default %(default)s)")
    p.add_argument("--base-url", default=base, help="service base URL (default %(default)s)")
    p.add_argument("--rate", type=float, default=4.0, help="max requests/s (default 4)")
    p.add_argument("--retries", type=int, default=5, help="retries per request (default 5)")
    p.add_argument("--workers", type=int, default=4,
                   help="galaxies in parallel, sharing one rate limit (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
