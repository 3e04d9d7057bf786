"""Train every Lin et al. case once, across processes: the case locks and the helpers.

A case ("ours" or an ablation, :data:`experiments.presets.LIN_CASES`) trains into
``runs/lin/<preset>/<case>/`` (``experiments.lin_common.run_dir_of``): resumed if a run
was killed, reused when finished. Two processes never train one case at once: the
trainer holds ``runs/lin/<preset>/<case>.lock`` (an OS file lock, :mod:`filelock`, so a
killed trainer's lock frees itself; the file names the holder's pid for the messages).
:func:`ensure_cases` with ``jobs`` > 1 starts helper processes
(``python experiments/lin_train.py``) that train other cases alongside.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from experiments.lin_common import (CASE_LABELS, case_config, case_finished,
                                    check_settings, describe_preset, run_dir_of, runs_dir,
                                    translate_test_set)
from experiments.presets import LIN_PRESETS

#: The helper's command line (a script: run by path, never imported).
HELPER = Path(__file__).resolve().with_name("lin_train.py")


class CaseLocked(Exception):
    """Another live process is training this case (its lock file names the pid)."""


def _write_pid(fd: int) -> None:
    """Write the holder's pid into the lock file (``fd``: filelock's locked descriptor)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def acquire(lock: Path) -> FileLock:
    """Take ``lock`` (created if missing) and write our pid into it; a lock a live process
    holds raises :class:`CaseLocked`. A lock file left by a dead process is free: the OS
    released its lock with the process."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(lock, timeout=0, on_acquired=_write_pid)
    try:
        held.acquire()
    except Timeout:
        try:
            pid = lock.read_text().strip() or "?"
        except OSError:
            pid = "?"
        raise CaseLocked(f"{lock}: pid {pid} is training this case") from None
    return held


def release(held: FileLock) -> None:
    """Remove the lock file, then let go (a process waiting on the removed file sees it
    gone and takes a new one: filelock checks the link count after locking)."""
    Path(held.lock_file).unlink(missing_ok=True)
    held.release()


def ensure_case(case: str, preset: str, data_root: Path | str,
                runs_root: Path | str | None = None, progress: bool = True,
                wait: bool = True) -> Path:
    """Train ``case`` under ``preset`` into ``runs/lin/<preset>/<case>`` unless finished.

    "ours" trains both steps, the ablations their single step. A killed run resumes
    from its newest checkpoint (``noise_gan.trainer.train(resume=True)``); a finished
    one is reused at no cost. Two scripts started together do not train one case twice:
    the trainer holds ``runs/lin/<preset>/<case>.lock``; the other script waits for it
    (``wait``) or raises :class:`CaseLocked`. Returns the run folder.
    """
    from noise_gan.trainer import train
    cfg = case_config(case, preset, data_root)
    run_dir = run_dir_of(case, preset, runs_root)
    check_settings(run_dir, cfg, preset)
    lock = run_dir.with_name(f"{case}.lock")
    while True:
        if case_finished(case, preset, data_root, runs_root):
            print(f"case {case}: finished run {run_dir} reused")
            return run_dir
        try:
            held = acquire(lock)
            break
        except CaseLocked as err:
            if not wait:
                raise
            print(f"case {case}: waiting: {err}", flush=True)
            time.sleep(20)
    try:
        if case_finished(case, preset, data_root, runs_root):   # finished while we waited
            return run_dir
        resume = (run_dir / "config.json").is_file()
        print(f"\n=== case {case} ({CASE_LABELS[case]}): "
              f"{'resuming' if resume else 'training'} {run_dir} under "
              f"{describe_preset(preset)} ===", flush=True)
        t0 = time.time()
        train(cfg, run_dir, step="both", resume=resume, progress=progress)
        print(f"case {case}: trained in {time.time() - t0:.0f} s", flush=True)
    finally:
        release(held)
    return run_dir


def ensure_cases(cases, preset: str, data_root: Path | str,
                 runs_root: Path | str | None = None, progress: bool = True,
                 jobs: int = 1) -> dict:
    """``{case: run_dir}`` for every case, training the missing ones in order; a case
    another process is training is left for later (then waited for).

    ``jobs`` > 1 starts ``jobs - 1`` helper processes (``experiments/lin_train.py``)
    that walk the same list from other starting points; the case locks keep any case
    from training twice. Worth it on CPU: a step's graph trace (~25 s at width 8) is
    single-threaded Python, so one process traces while the other computes. A helper's
    output goes to ``runs/lin/<preset>/helper<k>.log``; a helper that dies frees its
    lock, and its case is then trained here.
    """
    todo = [c for c in cases if not case_finished(c, preset, data_root, runs_root)]
    helpers = [_start_helper(k, todo[k:] + todo[:k], preset, data_root, runs_root)
               for k in range(1, min(jobs, len(todo)))]
    try:
        later = []
        for c in cases:
            try:
                ensure_case(c, preset, data_root, runs_root, progress, wait=False)
            except CaseLocked as err:
                print(f"case {c}: {err}; coming back to it", flush=True)
                later.append(c)
        for c in later:
            ensure_case(c, preset, data_root, runs_root, progress, wait=True)
    except BaseException:
        for proc, _ in helpers:
            proc.terminate()                # we are failing: do not leave them running
        raise
    finally:
        for proc, log in helpers:
            if proc.wait() != 0:
                print(f"helper process failed (exit {proc.returncode}); its log: {log}",
                      flush=True)
    return {c: run_dir_of(c, preset, runs_root) for c in cases}


def _start_helper(k: int, cases, preset: str, data_root, runs_root):
    """Start helper ``k`` training ``cases`` in a subprocess; ``(Popen, log path)``."""
    log = runs_dir(preset, runs_root) / f"helper{k}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    base, seed = LIN_PRESETS[preset].get("seed_of", (preset, 0))
    cmd = [sys.executable, str(HELPER), "--preset", base, "--train-seed", str(seed),
           "--data", str(data_root), "--cases", *cases]
    if runs_root:
        cmd += ["--runs", str(runs_root)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    print(f"helper {k} (pid {proc.pid}) trains alongside, starting with case {cases[0]}; "
          f"log {log}", flush=True)
    return proc, log


def translate_cases(args, root: Path, cache: Path) -> dict:
    """``{case: translate_test_set(...)}`` for ``args.cases``, training missing cases
    first; only "ours" carries Noise-Emulator draws (Fig. 5's sigma)."""
    runs = ensure_cases(args.cases, args.preset, root, args.runs, not args.quiet, args.jobs)
    n_noise = LIN_PRESETS[args.preset]["n_noise"]
    return {c: translate_test_set(r, root, args.seed, cache,
                                  n_noise=n_noise if c == "ours" else 0)
            for c, r in runs.items()}
