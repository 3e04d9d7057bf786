"""Running a simulation, either setup: the settings record checked on resume, the workers.

``DIR/sim_config.json`` holds the settings that determine the files (``cfg.identity()``
of a ``data.sim_luo.SimConfig`` or ``data.sim_lin.LinSimConfig``); a folder simulated
with other settings is refused instead of mixed. :func:`run_jobs` makes the galaxies in
worker processes that die with the simulating process.
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common.errors import DataError
from common.io import atomic_write, clean_stale_tmp

#: The settings record of a simulated folder (``DIR/sim_config.json``).
CONFIG_FILE = "sim_config.json"


def check_config(cfg) -> None:
    """Refuse to resume into a folder simulated with other settings; record ours (this
    creates the folder). ``cfg``: a ``SimConfig`` or ``LinSimConfig`` (``out``,
    ``identity()``)."""
    path = cfg.out / CONFIG_FILE
    mine = cfg.identity()
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable ({e})") from None
        if old != mine:
            diff = ", ".join(f"{k}={old.get(k)!r} (now {mine.get(k)!r})"
                             for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k))
            raise DataError(f"{cfg.out} was simulated with other settings: {diff}; "
                            f"delete it to simulate it anew, or use another --out")
        return
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(mine, indent=1)))


def start_run(cfg, man: Path, counts: dict[str, int]) -> None:
    """Check what can be checked before anything is written (``counts``: galaxies per
    CLI flag, not all 0; ``cfg.out`` a folder, not a downloaded set, made with these
    settings if simulated before), then record the settings and remove the temporaries
    of a killed run. ``ValueError`` / ``DataError`` name the culprit."""
    if not any(counts.values()):
        raise ValueError(f"nothing to simulate: {' = '.join(counts)} = 0")
    if cfg.out.exists() and not cfg.out.is_dir():
        raise DataError(f"--out {cfg.out} exists and is not a folder")
    if man.exists() and not (cfg.out / CONFIG_FILE).exists():
        raise DataError(f"{cfg.out} holds a {man.name} but no {CONFIG_FILE}: a set "
                        "that was not simulated; use another --out")
    check_config(cfg)
    for d in (cfg.out, *cfg.out.glob("*/*")):  # every folder of both layouts
        if d.is_dir():
            clean_stale_tmp(d)


#: ``prctl`` option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int | None) -> None:
    """Pool initializer: end this worker when the simulating process dies, even by
    ``kill -9`` (else it would be reparented and go on writing, then idle forever).
    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; elsewhere a thread polls the parent
    pid. ``parent``: the pid our parent must have (``None``: not our direct parent,
    as under forkserver), to catch a parent that died before ``prctl`` took effect."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) == 0
    except (AttributeError, OSError, TypeError):  # no prctl (not Linux)
        ok = False
    if not ok:
        ppid = os.getppid()

        def watch():
            while os.getppid() == ppid:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def run_jobs(work, jobs: list, workers: int, desc: str, progress: bool) -> None:
    """Run ``work(job)`` for every job, in processes when ``workers > 1``, with a bar.
    Worker processes die with this one (:func:`_die_with_parent`)."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=desc, unit="gal", file=sys.stderr)
    n = len(jobs)
    if workers == 1 or n <= 1:
        for job in jobs:
            work(job)
            bar is not None and bar.update()
    else:
        direct = multiprocessing.get_start_method() in ("fork", "spawn")
        with ProcessPoolExecutor(workers, initializer=_die_with_parent,
                                 initargs=(os.getpid() if direct else None,)) as ex:
            for _ in ex.map(work, jobs, chunksize=max(1, min(8, n // (4 * workers)))):
                bar is not None and bar.update()
    if bar is not None:
        bar.close()
