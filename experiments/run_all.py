"""Regenerate every table and figure of both papers, skipping what is up to date.

    python experiments/run_all.py                      # cpu preset, everything
    python experiments/run_all.py --preset paper       # the paper-size runs (GPU)
    python experiments/run_all.py --only figure5,physics
    python experiments/run_all.py --force --only table1
    python experiments/run_all.py --list               # targets, commands, state

Targets, in dependency order: Luo et al. ``table1`` (trains the models every Luo
figure reuses), ``survey_gap``, ``figure1``, ``figure3_4``, ``figure5``, ``figure6``,
``figure7``, ``figure8_9``, ``physics``, ``calibration``, ``fits_check`` (Table 1 trains
``--seeds 3`` by default: its error bars, and the ensemble that calibration, fits_check
and physics' pulls use);
Lin et al. ``lin_fig3`` .. ``lin_fig6``
(``experiments/lin_fig*.py``). Each runs as its own process (one command, as a user
would type it), so a failure stops only that target and the ones that need it.

Resumable: after a target succeeds, ``RESULTS/.stamps/<target>-<preset>.json`` records
the sha256 of its inputs: the command line, the code it runs (its script and the
packages it imports: ``common/``, ``data/``, ``pix2wgan/``, ``cascade/`` or
``noise_gan/``), the dataset's ``manifest.csv`` and ``sim_config.json`` and, for
targets that use Table 1's models, the model files. A target is skipped when its
stamp matches and its outputs exist; anything changed (code, data, a retrained model,
another preset) reruns it. ``--force`` reruns regardless. The trainers themselves
resume from their checkpoints, so an interrupted ``table1`` continues where it stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.cli import Parser, positive_int
from data.layout import REPO_ROOT, data_root, default_sim_dir
from experiments.presets import LUO_PRESETS, table1_tiny_flags

STAMPS = ".stamps"
#: The library modules of experiments/ a Luo / Lin target runs, besides its script.
LUO_CODE = ("experiments/luo_common.py", "experiments/luo_models.py",
            "experiments/presets.py", "experiments/table1.py", "common", "data",
            "pix2wgan", "cascade")
LIN_CODE = ("experiments/lin_common.py", "experiments/presets.py",
            "experiments/scheduler.py", "common", "data", "noise_gan")


@dataclass
class Target:
    """One table or figure: ``script`` run with ``args(ctx)``; ``outputs`` relative to
    the results folder (a folder counts when non-empty); ``code``: files/folders whose
    content is an input; ``models``: uses Table 1's trained models; ``after``: targets
    that must succeed first; ``seeds``: how many of Table 1's training seeds' models
    it uses (their files are inputs)."""
    name: str
    script: str
    outputs: tuple[str, ...]
    code: tuple[str, ...] = ()
    models: bool = False
    after: tuple[str, ...] = ()
    args: object = None  # callable(ctx) -> list[str]; default: luo_args
    paper: str = "luo"
    extra_inputs: list = field(default_factory=list)
    seeds: int = 1


@dataclass
class Context:
    preset: str
    results: Path
    runs: Path | None
    data: Path | None
    python: str = sys.executable
    #: Table 1's training seeds (``table1.py --seeds``): three give its error bars, and
    #: the ensemble of ``calibration`` and ``physics``' pulls.
    seeds: int = 3


def _data_root(ctx: Context) -> Path:
    """The Luo dataset the preset uses (:data:`experiments.presets.LUO_PRESETS`)."""
    if ctx.data:
        return ctx.data
    folder = LUO_PRESETS[ctx.preset]["folder"]
    return default_sim_dir() if folder is None else data_root() / folder


def _run_flag(ctx: Context) -> list[str]:
    return ["--run", str(ctx.runs / f"table1-{ctx.preset}")] if ctx.runs else []


def luo_args(ctx: Context) -> list[str]:
    """Flags of the Luo figure scripts and physics.py."""
    out = ["--preset", ctx.preset, "--results", str(ctx.results), "--quiet"]
    if ctx.data:
        out += ["--data", str(ctx.data)]
    return out + _run_flag(ctx)


def luo_args_no_models(ctx: Context) -> list[str]:
    """Flags of a Luo script that uses no model (figure1): no ``--run``."""
    out = ["--preset", ctx.preset, "--results", str(ctx.results), "--quiet"]
    return out + (["--data", str(ctx.data)] if ctx.data else [])


def table1_args(ctx: Context) -> list[str]:
    out = ["--results", str(ctx.results), "--quiet"]
    if ctx.preset == "tiny":  # table1.py's cpu settings, tiny sizes, its own run folder
        base = ctx.runs or REPO_ROOT / "runs"
        return out + ["--run", str(base / "table1-tiny"), "--preset", "cpu", "--data",
                      str(_data_root(ctx))] + table1_tiny_flags()
    out += _run_flag(ctx)
    out += ["--preset", ctx.preset, "--seeds", str(ctx.seeds)]
    return out + (["--data", str(ctx.data)] if ctx.data else [])


def survey_gap_args(ctx: Context) -> list[str]:
    return ["--data", str(_data_root(ctx)), "--out", str(ctx.results)]


def lin_args(name: str):
    def args(ctx: Context) -> list[str]:
        out = ["--preset", ctx.preset, "--out", str(ctx.results / name), "--quiet"]
        if ctx.runs:
            out += ["--runs", str(ctx.runs)]
        return out
    return args


def _luo(name, outputs, models=True, after=("table1",), args=luo_args, code=LUO_CODE,
         seeds=1):
    return Target(name, f"experiments/{name}.py", outputs, code, models,
                  after if models else (), args if models else luo_args_no_models,
                  seeds=seeds)


def _pair(stem):
    return (f"{stem}.png", f"{stem}.pdf")


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("table1", "experiments/table1.py", ("table1.csv", "table1.md", "table1.tex"),
           LUO_CODE, False, (), table1_args),
    Target("survey_gap", "experiments/survey_gap.py", ("survey_gap.csv", "survey_gap.md"),
           ("common", "data"), False, (), survey_gap_args),
    _luo("figure1", _pair("figure1") + ("figure1_galaxies.csv",), models=False),
    _luo("figure3_4", _pair("figure3") + _pair("figure4") + ("figure3_4_galaxies.csv",)),
    _luo("figure5", _pair("figure5") + ("figure5_galaxies.csv",)),
    _luo("figure6", _pair("figure6") + ("figure6_galaxies.csv",)),
    _luo("figure7", _pair("figure7") + ("figure7_layers.csv",)),
    _luo("figure8_9", _pair("figure8") + _pair("figure9") + ("figure8_9_galaxies.csv",)),
    _luo("physics", ("physics.csv", "physics.md", "physics_galaxies.csv")
         + _pair("physics_vs_hsc"),
         code=LUO_CODE + ("experiments/photometry.py", "experiments/calibration_stats.py"),
         seeds=3),  # the pulls use Table 1's three seeds when their runs exist
    Target("calibration", "experiments/calibration.py",
           tuple(f"calibration/{f}" for f in ("calibration.csv", "calibration.md")
                 + _pair("reliability")),
           LUO_CODE + ("experiments/calibration_stats.py",), True, ("table1",),
           seeds=3),
    Target("fits_check", "experiments/fits_check.py",
           tuple(f"fits_check/{f}" for f in ("fits_check.csv", "fits_check.md")),
           LUO_CODE + ("experiments/calibration_stats.py",), True, ("table1",),
           seeds=3),
    *[Target(f"lin_fig{i}", f"experiments/lin_fig{i}.py", (f"lin_fig{i}",), LIN_CODE,
             False, (), lin_args(f"lin_fig{i}"), paper="lin") for i in (3, 4, 5, 6)],
]}


# ------------------------------------------------------------------ hashing
def _files(rel: str, root: Path) -> list[Path]:
    p = root / rel
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(q for q in p.rglob("*.py") if "__pycache__" not in q.parts)
    return []


def _sha(path: Path) -> str:
    from common.io import file_sha256
    return file_sha256(path)


def model_files(ctx: Context, seeds: int = 1) -> list[Path]:
    """Table 1's trained models for the preset, training seeds 0..``seeds``-1 (those
    that exist)."""
    base = ctx.runs or (REPO_ROOT / "runs")
    cands = []
    for seed in range(seeds):
        run = base / (f"table1-{ctx.preset}" + (f"-seed{seed}" if seed else ""))
        cands += [run / "generator.keras", Path(f"{run}-cascade") / "g1.keras",
                  Path(f"{run}-cascade") / "g2.keras"]
    return [c for c in cands if c.is_file()]


def inputs(target: Target, ctx: Context, root: Path = REPO_ROOT) -> dict[str, str]:
    """``{name: sha256}`` of everything the target's result depends on."""
    cmd = command(target, ctx)
    got = {"command": hashlib.sha256("\0".join(cmd[1:]).encode()).hexdigest()}
    for rel in (target.script,) + tuple(target.code):
        for f in _files(rel, root):
            got[str(f.relative_to(root)) if f.is_relative_to(root) else str(f)] = _sha(f)
    if target.paper == "luo":
        droot = _data_root(ctx)
        for name in ("manifest.csv", "sim_config.json"):
            if (droot / name).is_file():
                got[f"data:{name}"] = _sha(droot / name)
    if target.models:
        for f in model_files(ctx, target.seeds):
            got[f"model:{f.parent.name}/{f.name}"] = _sha(f)
    for f in target.extra_inputs:
        got[f"extra:{f}"] = _sha(Path(f)) if Path(f).is_file() else "missing"
    return got


def digest(inp: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(inp, sort_keys=True).encode()).hexdigest()


def command(target: Target, ctx: Context) -> list[str]:
    return [ctx.python, target.script] + (target.args or luo_args)(ctx)


def stamp_path(target: Target, ctx: Context) -> Path:
    return ctx.results / STAMPS / f"{target.name}-{ctx.preset}.json"


def outputs_present(target: Target, ctx: Context) -> bool:
    for rel in target.outputs:
        p = ctx.results / rel
        if p.is_dir():
            if not any(p.iterdir()):
                return False
        elif not (p.is_file() and p.stat().st_size > 0):
            return False
    return True


def up_to_date(target: Target, ctx: Context, root: Path = REPO_ROOT) -> tuple[bool, str]:
    """Whether ``target`` can be skipped, and why (or why not)."""
    sp = stamp_path(target, ctx)
    if not sp.is_file():
        return False, "never run"
    try:
        old = json.loads(sp.read_text())
    except (OSError, json.JSONDecodeError):
        return False, "unreadable stamp"
    now = inputs(target, ctx, root)
    if old.get("hash") != digest(now):
        changed = sorted(k for k in set(now) | set(old.get("inputs", {}))
                         if now.get(k) != old.get("inputs", {}).get(k))
        return False, "changed: " + ", ".join(changed[:5]) + (
            f" (+{len(changed) - 5})" if len(changed) > 5 else "")
    if not outputs_present(target, ctx):
        return False, "outputs missing"
    return True, f"up to date (stamp {old.get('finished', '?')})"


def _prepare_tiny(ctx: Context) -> None:
    """The tiny preset's dataset must exist before table1.py is pointed at it."""
    if ctx.preset == "tiny" and not ctx.data:
        from experiments.luo_models import ensure_data
        ensure_data("tiny", progress=False)


def run_target(target: Target, ctx: Context, root: Path = REPO_ROOT) -> tuple[bool, float]:
    """Run one target as a subprocess; write its stamp on success."""
    from common.io import atomic_write_text
    cmd = command(target, ctx)
    print(f"\n=== {target.name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root),
                                                      env.get("PYTHONPATH", "")]))
    rc = subprocess.call(cmd, cwd=root, env=env)
    wall = time.time() - t0
    if rc != 0:
        print(f"=== {target.name}: FAILED (exit {rc}) after {wall:.0f} s")
        return False, wall
    if not outputs_present(target, ctx):
        print(f"=== {target.name}: exit 0 but outputs missing: "
              f"{', '.join(target.outputs)} under {ctx.results}")
        return False, wall
    inp = inputs(target, ctx, root)  # after the run: models table1 just trained
    atomic_write_text(stamp_path(target, ctx), json.dumps(dict(
        target=target.name, preset=ctx.preset, hash=digest(inp), inputs=inp,
        command=cmd[1:], outputs=list(target.outputs), wall_s=round(wall, 1),
        finished=time.strftime("%Y-%m-%d %H:%M:%S")), indent=1))
    print(f"=== {target.name}: done in {wall:.0f} s")
    return True, wall


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/run_all.py",
               description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=LUO_PRESETS, default="cpu",
                   help="the preset every target runs with")
    p.add_argument("--only", help="comma-separated targets (default: all)")
    p.add_argument("--skip", help="comma-separated targets to leave out")
    p.add_argument("--force", action="store_true", help="rerun even if up to date")
    p.add_argument("--results", help="output folder (default results/ for cpu, "
                                     "results/<preset>/ for paper and tiny)")
    p.add_argument("--runs", help="runs root (default runs/)")
    p.add_argument("--data", help="Luo dataset folder (default: the preset's)")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="Table 1's training seeds (its error bars; calibration and the "
                        "physics pulls use them as an ensemble); the tiny preset trains one")
    p.add_argument("--list", action="store_true", help="show targets and state, run none")
    p.add_argument("--keep-going", action="store_true",
                   help="run targets whose prerequisite failed anyway")
    return p


def main(argv=None, targets: dict[str, Target] | None = None,
         root: Path = REPO_ROOT) -> int:
    """Exit 0 if every selected target is up to date or succeeded, 1 if any failed,
    2 on bad arguments (one ``error:`` line). ``targets``/``root``: for tests."""
    from common.errors import run_cli
    args = build_parser().parse_args(argv)
    got = []
    code = run_cli(lambda: got.append(run(args, TARGETS if targets is None else targets,
                                          root)))
    return code or got[0]


def run(args, targets: dict[str, Target], root: Path = REPO_ROOT) -> int:
    """The targets ``args`` selects, in dependency order: 0 if every one is up to date
    or succeeded, else 1; a bad selection raises ``ValueError``."""
    names = list(targets)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.skip:
        drop = {n.strip() for n in args.skip.split(",")}
        names = [n for n in names if n not in drop]
    bad = [n for n in names if n not in targets]
    if bad:
        raise ValueError(f"unknown target(s) {', '.join(bad)}; choose from "
                         f"{', '.join(targets)}")
    names = [n for n in targets if n in names]  # dependency order
    results = Path(args.results) if args.results else (
        REPO_ROOT / "results" if args.preset == "cpu" else REPO_ROOT / "results" / args.preset)
    ctx = Context(args.preset, results, Path(args.runs) if args.runs else None,
                  Path(args.data) if args.data else None, seeds=args.seeds)
    if args.list:
        for n in names:
            t = targets[n]
            ok, why = up_to_date(t, ctx, root)
            print(f"{n:12s} {'skip' if ok else 'run '}  {why}\n"
                  f"{'':12s} {' '.join(command(t, ctx)[1:])}")
        return 0
    t_all = time.time()
    status: dict[str, str] = {}
    walls: dict[str, float] = {}
    prepared = False
    for n in names:
        t = targets[n]
        blocked = [a for a in t.after if status.get(a) == "FAILED"]
        if blocked and not args.keep_going:
            status[n] = "blocked"
            print(f"=== {n}: not run, {', '.join(blocked)} failed")
            continue
        if not (root / t.script).is_file():
            status[n] = "FAILED"
            print(f"=== {n}: script {t.script} does not exist")
            continue
        ok, why = up_to_date(t, ctx, root)
        if ok and not args.force:
            status[n] = "skipped"
            print(f"=== {n}: {why}: skipped")
            continue
        if t.paper == "luo" and not prepared:
            _prepare_tiny(ctx)
            prepared = True
        print(f"=== {n}: {'forced' if ok else why}")
        done, walls[n] = run_target(t, ctx, root)
        status[n] = "ran" if done else "FAILED"
    print(f"\nrun_all ({args.preset}), {time.time() - t_all:.0f} s:")
    for n in names:
        extra = f" ({walls[n]:.0f} s)" if n in walls else ""
        print(f"  {n:12s} {status.get(n, '-')}{extra}")
    ran = [n for n in names if status.get(n) == "ran"]
    print(f"wrote the outputs of {', '.join(ran)} in {ctx.results} (stamps in "
          f"{ctx.results / STAMPS})" if ran else
          f"wrote nothing: no target ran (outputs in {ctx.results})")
    return 1 if any(s in ("FAILED", "blocked") for s in status.values()) else 0


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
