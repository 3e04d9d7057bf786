"""Luo et al. (§2.4) JPEG triplets from the Legacy Survey viewer: ``python -m data.download
legacy ...``.

For every galaxy of ``--manifest`` (from ``python -m data.catalog``) and each
of sdss, decals, hsc, GET::

    {base}/viewer/jpeg-cutout?ra=..&dec=..&size=128&layer=..&pixscale=0.168&bands=..

and write the same layout as ``data.simulate``::

    DIR/<split>/{sdss,decals,hsc}/<id>.jpg   the viewer's JPEG bytes, as received
    DIR/manifest.csv                         galaxies whose three cutouts are all ok
    DIR/download_state.csv                   per file: ok | blank | failed (+ reason)
    DIR/download_config.json                 layers/bands/size/pixscale, checked on rerun
    DIR/download_summary.{md,csv}            ok/blank/failed per survey

Each response is checked: HTTP status and ``Content-Type: image/jpeg`` (the viewer
answers errors as text with status 200), full body, decodes, ``128 x 128`` RGB. Then the
blank rule: a cutout is **blank** (out of footprint; recorded, never written) when it is
the uniform grey of zero flux (:func:`data.render.is_blank`: std < 1 and mean within 3
of :func:`data.render.blank_level`, 22 sdss / 32 decals, hsc), or when more than
``--max-blank-fraction`` (default 50 %) of its pixels equal that grey exactly in all
three channels (:func:`data.render.blank_fraction`: HSC no-data areas; real sky almost
never lands there, < 0.5 % of pixels in simulated cutouts).

Crash safety: a JPEG is written to a temporary name and renamed; its state line is
appended (flushed, fsynced) after the rename. A kill at any moment leaves finished files
whole, no partial file under a real name, and at worst a file without a state line,
which a rerun validates and keeps. Reruns skip ok files (after checking they exist and
decode) and blank ones, and retry failed ones; stale temporaries are removed. The
manifest and summary are written at the end of a run that was not interrupted. Ctrl-C
stops cleanly: requests in flight finish, finished files are kept.
"""
from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from common.cli import non_negative_float, positive_int
from common.errors import DataError
from common.io import atomic_write, atomic_write_text, clean_stale_tmp
from data import layout
from data.http import FetchError, HttpClient
from data.joblog import JobLog, markdown_table, read_rows
from data.layout import image_path, manifest_path
from data.render import blank_fraction, blank_level, is_blank
from data.surveys import LUO_PIXSCALE, LUO_SIZE, LUO_SURVEYS, get_survey

DEFAULT_BASE = "https://www.legacysurvey.org"
CUTOUT_PATH = "viewer/jpeg-cutout"
STATE = "download_state.csv"
CONFIG = "download_config.json"
SUMMARY = "download_summary"
STATE_FIELDS = ("split", "survey", "id", "status", "reason", "time")
STATUSES = ("ok", "blank", "failed")
#: A cutout with more than this fraction of pixels exactly at the blank grey is blank.
MAX_BLANK_FRACTION = 0.5


class Interrupted(Exception):
    """Raised inside a worker's wait once a stop was requested (Ctrl-C)."""


@dataclass
class LegacyConfig:
    """Settings of :func:`download_legacy` (defaults: Luo et al. §2.4, data.surveys)."""
    manifest: Path
    out: Path
    base_url: str = DEFAULT_BASE
    layers: dict[str, str] = field(default_factory=lambda: {
        s: get_survey(s).layer for s in LUO_SURVEYS})
    bands: dict[str, str] = field(default_factory=lambda: {
        s: "".join(get_survey(s).rgb_bands) for s in LUO_SURVEYS})
    size: int = LUO_SIZE
    pixscale: float = LUO_PIXSCALE
    workers: int = 4
    rate: float = 4.0
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 30.0
    max_blank_fraction: float = MAX_BLANK_FRACTION
    progress: bool = True

    def identity(self) -> dict:
        """What the files depend on (a rerun into the same folder must match)."""
        return {"layers": self.layers, "bands": self.bands, "size": self.size,
                "pixscale": self.pixscale, "max_blank_fraction": self.max_blank_fraction}


@dataclass(frozen=True)
class Task:
    """One cutout to fetch."""
    split: str
    survey: str
    id: str
    ra: float
    dec: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.split, self.survey, self.id)


# ---------------------------------------------------------------------------- checks
def classify(data: bytes, survey: str, size: int = LUO_SIZE,
             max_fraction: float = MAX_BLANK_FRACTION) -> tuple[str, str]:
    """Judge a cutout's bytes -> ``(status, reason)``, status ``ok``/``blank``/``failed``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            fmt, mode, (w, h) = img.format, img.mode, img.size
            arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as e:
        return "failed", f"undecodable JPEG ({str(e).splitlines()[0]})"
    if fmt != "JPEG" or mode != "RGB" or (w, h) != (size, size):
        return "failed", f"expected a {size}x{size} RGB JPEG, got {fmt} {w}x{h} {mode}"
    level = blank_level(get_survey(survey))
    if is_blank(arr, level):
        return "blank", f"uniform grey {arr.mean():.1f} (blank level {level})"
    frac = blank_fraction(arr, level)
    if frac > max_fraction:
        return "blank", f"{frac:.0%} of pixels at the blank level {level}"
    return "ok", ""


def check_file(path: Path, survey: str, size: int, max_fraction: float) -> bool:
    """Whether a JPEG on disk is a valid, non-blank cutout."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return classify(data, survey, size, max_fraction)[0] == "ok"


# ---------------------------------------------------------------------------- state
def read_state(path: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
    """``(split, survey, id) -> (status, reason)``, the last line per file winning.
    Lines a kill cut short (wrong field count, unknown status) are ignored."""
    return {(r["split"], r["survey"], r["id"]): (r["status"], r["reason"])
            for r in read_rows(path) if r["status"] in STATUSES}


class StateLog(JobLog):
    """``download_state.csv`` (a ``data.joblog.JobLog``): opened at once, one fsynced
    line per finished file."""

    def __init__(self, path: Path):
        super().__init__(path, STATE_FIELDS, lineterminator="\n")
        self.open()

    def add(self, task: Task, status: str, reason: str) -> None:
        self.append([*task.key, status, reason.replace("\n", " "),
                     time.strftime("%Y-%m-%dT%H:%M:%S")])

    def compact_state(self, state: dict) -> None:
        """Rewrite the state file atomically with one line per file, sorted."""
        self.compact([*key, *state[key], ""] for key in sorted(state))


# ---------------------------------------------------------------------------- run
def read_tasks(cfg: LegacyConfig) -> tuple[pd.DataFrame, list[Task]]:
    """The galaxies of the input manifest and one task per (galaxy, survey)."""
    src = Path(cfg.manifest)
    if not src.is_file():
        raise DataError(f"manifest {src} does not exist (make one with "
                        "`python -m data.catalog --out DIR`)")
    if src.resolve() == manifest_path(cfg.out).resolve():
        raise DataError(f"--manifest {src} is the output manifest of {cfg.out}, which "
                        "the download rewrites: pass the catalogue's manifest")
    df = pd.read_csv(src, dtype={"id": str})
    missing = {"id", "ra", "dec", "split"} - set(df.columns)
    if missing:
        raise DataError(f"{src} lacks column(s) {', '.join(sorted(missing))}")
    df["id"].map(layout.check_id)
    bad = sorted(set(df["split"]) - set(layout.SPLITS))
    if bad:
        raise DataError(f"{src}: unknown split(s) {bad}; expected {layout.SPLITS}")
    dup = df["id"].duplicated()
    if dup.any():
        raise DataError(f"{src}: duplicate id {df['id'][dup].iloc[0]!r}")
    ra, dec = pd.to_numeric(df["ra"], errors="coerce"), pd.to_numeric(df["dec"],
                                                                       errors="coerce")
    badc = ~(ra.between(0, 360) & dec.between(-90, 90))
    if badc.any():
        raise DataError(f"{src}: bad ra/dec for id {df['id'][badc].iloc[0]!r}")
    tasks = [Task(sp, s, gid, float(r), float(d))
             for gid, r, d, sp in zip(df["id"], ra, dec, df["split"])
             for s in LUO_SURVEYS]
    return df, tasks


def cutout_params(task: Task, cfg: LegacyConfig) -> dict:
    """Query of one viewer jpeg-cutout request."""
    return {"ra": f"{task.ra:.6f}", "dec": f"{task.dec:.6f}", "size": cfg.size,
            "layer": cfg.layers[task.survey], "pixscale": cfg.pixscale,
            "bands": cfg.bands[task.survey]}


def fetch_one(client: HttpClient, task: Task, cfg: LegacyConfig,
              stop: threading.Event) -> tuple[Task, str | None, str]:
    """Fetch, check and (if ok) write one cutout -> ``(task, status, reason)``;
    status ``None`` when skipped because of a stop request."""
    if stop.is_set():
        return task, None, "stopped"
    try:
        resp = client.get(CUTOUT_PATH, cutout_params(task, cfg), expect="image/jpeg")
    except Interrupted:
        return task, None, "stopped"
    except FetchError as e:
        return task, "failed", e.reason
    status, reason = classify(resp.content, task.survey, cfg.size,
                              cfg.max_blank_fraction)
    if status == "ok":
        path = image_path(cfg.out, task.split, task.survey, task.id)
        atomic_write(path, lambda tmp: tmp.write_bytes(resp.content))
    return task, status, reason


def _remove_temporaries(out: Path) -> int:
    """Delete the temporaries a killed run left behind (see ``common.io``)."""
    dirs = [out] + [out / sp / s for sp in layout.SPLITS for s in LUO_SURVEYS]
    return sum(clean_stale_tmp(d) for d in dirs)


def _check_config(cfg: LegacyConfig) -> None:
    path = Path(cfg.out) / CONFIG
    mine = cfg.identity()
    if path.is_file():
        old = json.loads(path.read_text())
        if old != mine:
            diff = [k for k in mine if old.get(k) != mine[k]]
            raise DataError(f"{path}: {cfg.out} was downloaded with other settings "
                            f"({', '.join(diff)}: {[old.get(k) for k in diff]}); use "
                            "the same flags or another --out")
        return
    atomic_write_text(path, json.dumps(mine, indent=1) + "\n")


def plan(cfg: LegacyConfig, tasks: list[Task], state: dict, log: StateLog) -> list[Task]:
    """Tasks still to fetch. Blank ones are skipped; files on disk that decode and pass
    the checks count as ok (and are logged so if the state lacked them)."""
    todo = []
    for t in tasks:
        prev = state.get(t.key, (None, ""))[0]
        if prev == "blank":
            continue
        path = image_path(cfg.out, t.split, t.survey, t.id)
        if path.is_file() and check_file(path, t.survey, cfg.size,
                                         cfg.max_blank_fraction):
            if prev != "ok":
                state[t.key] = ("ok", "")
                log.add(t, "ok", "")
            continue
        todo.append(t)
    return todo


def summarize(cfg: LegacyConfig, tasks: list[Task], state: dict) -> pd.DataFrame:
    """Counts per survey (ok, blank, failed, missing = not attempted yet)."""
    rows = []
    for s in LUO_SURVEYS:
        c = Counter(state.get(t.key, ("missing", ""))[0] for t in tasks if t.survey == s)
        rows.append({"survey": s, "layer": cfg.layers[s], "bands": cfg.bands[s],
                     **{k: c.get(k, 0) for k in (*STATUSES, "missing")},
                     "total": sum(c.values())})
    return pd.DataFrame(rows)


def _summary_md(table: pd.DataFrame, n_complete: int, n_galaxies: int,
                reasons: Counter) -> str:
    lines = ["# Legacy Survey cutout download", "",
             *markdown_table(list(table.columns), table.itertuples(index=False))]
    lines += ["", f"Galaxies with all three cutouts ok: {n_complete} of {n_galaxies} "
              "(these are in manifest.csv)."]
    if reasons:
        lines += ["", "Failure reasons (rerun to retry):", ""]
        lines += [f"- {n} x {r}" for r, n in reasons.most_common(10)]
    return "\n".join(lines) + "\n"


def download_legacy(cfg: LegacyConfig, client: HttpClient | None = None) -> dict:
    """Run (or resume) a legacy download; returns ``{"interrupted", "failed",
    "complete", "summary"}``. See the module docstring for what is written."""
    if cfg.workers < 1:
        raise ValueError(f"--workers {cfg.workers} must be >= 1")
    out = Path(cfg.out)
    df, tasks = read_tasks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(cfg)
    _remove_temporaries(out)
    stop = threading.Event()

    def wait(seconds):
        if stop.wait(seconds):
            raise Interrupted()

    if client is None:
        client = HttpClient(cfg.base_url, timeout=(min(10.0, cfg.timeout), cfg.timeout),
                            retries=cfg.retries, backoff=cfg.backoff, rate=cfg.rate,
                            sleep=wait)
    state_path = out / STATE
    state = read_state(state_path)
    log = StateLog(state_path)
    interrupted = False
    try:
        todo = plan(cfg, tasks, state, log)
        done = len(tasks) - len(todo)
        bar = tqdm(total=len(tasks), initial=done, unit="file", desc="cutouts",
                   disable=not cfg.progress, dynamic_ncols=True)
        with ThreadPoolExecutor(cfg.workers) as pool:
            pending = {pool.submit(fetch_one, client, t, cfg, stop) for t in todo}

            def record(fut):
                pending.discard(fut)
                task, status, reason = fut.result()
                if status is not None:
                    state[task.key] = (status, reason)
                    log.add(task, status, reason)
                    bar.update()

            try:
                for fut in as_completed(list(pending)):
                    record(fut)
            except KeyboardInterrupt:
                interrupted = True
                print("\nstopping: letting requests in flight finish ...",
                      file=sys.stderr)
            finally:  # on Ctrl-C or an unexpected error: keep what finished
                stop.set()
                for fut in list(pending):
                    if not fut.cancel():
                        try:
                            record(fut)
                        except Exception:  # the first error is already on its way
                            pass
        bar.close()
    finally:
        log.close()
    if not interrupted:
        log.compact_state(state)
    return _finish(cfg, df, tasks, state, interrupted)


def _finish(cfg, df, tasks, state, interrupted) -> dict:
    out = Path(cfg.out)
    table = summarize(cfg, tasks, state)
    ok = {t.id for t in tasks} - {t.id for t in tasks if state.get(t.key, ("",))[0] != "ok"}
    reasons = Counter(r for (st, r) in state.values() if st == "failed")
    n_gal = len(df)
    print(table.to_string(index=False), file=sys.stderr)
    if interrupted:
        print(f"interrupted: {len(ok)} of {n_gal} galaxies complete so far; finished "
              f"files are kept in {out}; rerun the same command to resume",
              file=sys.stderr)
    else:
        keep = df[df["id"].isin(ok)].reset_index(drop=True)
        atomic_write(manifest_path(out), lambda tmp: keep.to_csv(tmp, index=False))
        atomic_write(out / f"{SUMMARY}.csv", lambda tmp: table.to_csv(tmp, index=False))
        atomic_write_text(out / f"{SUMMARY}.md", _summary_md(table, len(ok), n_gal,
                                                             reasons))
        if reasons:
            print(f"{sum(reasons.values())} file(s) failed (see {out / STATE}); rerun "
                  "to retry them", file=sys.stderr)
        print(f"wrote {len(ok)} of {n_gal} galaxies (cutouts in {out}/<split>/<survey>/) "
              f"-> {manifest_path(out)}", file=sys.stderr)
    return {"interrupted": interrupted, "failed": sum(reasons.values()),
            "complete": len(ok), "summary": table}


# ---------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> None:
    """The ``legacy`` subcommand."""
    p = subparsers.add_parser(
        "legacy", help="Luo et al. JPEG triplets (sdss, decals, hsc) from the Legacy "
                       "Survey viewer",
        description="Fetch 128x128 viewer JPEG cutouts at 0.168\"/px of every galaxy "
                    "of --manifest in the sdss, decals and hsc layers into OUT/<split>/"
                    "<survey>/<id>.jpg; resumable (see data/legacy.py).")
    p.add_argument("--manifest", type=Path, required=True,
                   help="galaxies to fetch (id, ra, dec, split), from data.catalog")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--base-url", default=DEFAULT_BASE, help="Legacy Survey viewer")
    for s in LUO_SURVEYS:
        sv = get_survey(s)
        p.add_argument(f"--{s}-layer", default=sv.layer, help=f"viewer layer for {s}")
        p.add_argument(f"--{s}-bands", default="".join(sv.rgb_bands),
                       help=f"bands for {s}")
    p.add_argument("--workers", type=positive_int, default=4, help="parallel requests")
    p.add_argument("--rate", type=non_negative_float, default=4.0,
                   help="most requests per second, all workers together (0: no limit)")
    p.add_argument("--retries", type=int, default=5, help="retries per request")
    p.add_argument("--backoff", type=non_negative_float, default=1.0,
                   help="base of the exponential backoff, seconds")
    p.add_argument("--timeout", type=non_negative_float, default=30.0,
                   help="read timeout, seconds")
    p.add_argument("--max-blank-fraction", type=non_negative_float,
                   default=MAX_BLANK_FRACTION,
                   help="blank if more than this fraction of pixels is exactly the "
                        "blank grey")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args) -> LegacyConfig:
    return LegacyConfig(
        manifest=args.manifest, out=args.out, base_url=args.base_url,
        layers={s: getattr(args, f"{s}_layer") for s in LUO_SURVEYS},
        bands={s: getattr(args, f"{s}_bands") for s in LUO_SURVEYS},
        workers=args.workers, rate=args.rate, retries=args.retries,
        backoff=args.backoff, timeout=args.timeout,
        max_blank_fraction=args.max_blank_fraction, progress=not args.no_progress)


def run(args) -> int:
    """Run ``legacy``: 0 when every file is ok or blank, 1 if some failed, 130 if
    interrupted."""
    res = download_legacy(config_from_args(args))
    if res["interrupted"]:
        return 130
    return 1 if res["failed"] else 0
