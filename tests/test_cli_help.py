"""Every command-line entry point: ``--help`` works without importing TensorFlow, shows
each default once, and bad input is one ``error:`` line with exit code 2 (from
``common.errors.run_cli``, or ``common.cli.Parser`` for a value the parser refuses)."""
import argparse
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from common.cli import HelpFormatter

REPO = Path(__file__).resolve().parent.parent
#: Folders whose entry points are scripts run by path (``python experiments/x.py``);
#: elsewhere an entry point is a package module (``python -m data.simulate``).
SCRIPT_DIRS = ("experiments", "benchmarks", "tools")
SKIP_DIRS = {"tests", "datasets", "runs", "results", "docs", "shared", "__pycache__"}
MAIN_BLOCK = re.compile(r"""^if __name__ == ["']__main__["']:""", re.M)


def entry_points() -> list[str]:
    """Every file of the repository with an ``if __name__ == "__main__"`` block: a script
    path under :data:`SCRIPT_DIRS`, else a module name."""
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(".py") and MAIN_BLOCK.search(path.read_text()):
                rel = path.relative_to(REPO)
                found.append(str(rel) if rel.parts[0] in SCRIPT_DIRS
                             else ".".join(rel.with_suffix("").parts))
    return found


ENTRY_POINTS = entry_points()

#: Run ``--help`` of one entry point as ``python PATH`` / ``python -m MODULE`` would,
#: then report whether TensorFlow was imported.
WRAPPER = r'''
import runpy, sys
target = sys.argv[1]
sys.argv = [target, "--help"]
code = 0
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\nCLI_HELP_RESULT exit=%r tensorflow=%s" % (code, "tensorflow" in sys.modules))
'''


def _run_help(target: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, target], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def helps() -> dict:
    """``{entry point: CompletedProcess}``: one fresh interpreter each, a few at a time."""
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        return dict(zip(ENTRY_POINTS, pool.map(_run_help, ENTRY_POINTS)))


def test_every_expected_entry_point_is_found():
    expected = {
        *(f"experiments/{n}.py" for n in (
            "figure1", "figure3_4", "figure5", "figure6", "figure7", "figure8_9",
            "lin_train", "lin_fig3", "lin_fig4", "lin_fig5", "lin_fig6", "physics",
            "run_all", "survey_gap", "table1", "calibration", "fits_check")),
        *(f"benchmarks/{n}.py" for n in ("bench_noise_gan", "bench_pipeline_memory",
                                         "bench_predict", "bench_simulate", "bench_train",
                                         "run")),
        "tools/convert_lpips_weights.py",
        "pix2wgan.train", "pix2wgan.predict", "cascade.train", "cascade.predict",
        "noise_gan.train", "noise_gan.predict", "data.simulate", "data.shard",
        "data.download", "data.catalog"}
    assert expected <= set(ENTRY_POINTS), sorted(expected - set(ENTRY_POINTS))


@pytest.mark.parametrize("target", ENTRY_POINTS)
def test_help_prints_usage_without_importing_tensorflow(target, helps):
    res = helps[target]
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    assert last.startswith("CLI_HELP_RESULT"), (
        f"{target} --help crashed (rc {res.returncode}):\n{res.stderr[-2000:]}")
    assert "exit=0 " in last or "exit=None " in last, f"{target} --help: {last}"
    assert "usage:" in res.stdout, f"{target} --help printed no usage:\n{res.stdout[:500]}"
    assert "(default: None)" not in res.stdout, f"{target} --help shows a None default"
    assert "tensorflow=False" in last, f"{target} --help imported TensorFlow"


# --- bad input: one ``error:`` line on stderr, exit code 2, nothing run ------------------

def _load(target: str):
    """The module of ``target``: an importable module, or a script loaded from its path."""
    if not target.endswith(".py"):
        return importlib.import_module(target)
    name = "cli_test_" + Path(target).stem
    spec = importlib.util.spec_from_file_location(name, REPO / target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NOPE = "/nonexistent-cli-test-folder"
#: (family, entry point, main function, argv, text the error line holds); argv without
#: an output folder gets ``--results``/``--out`` pointing into tmp_path where it has one.
BAD_INPUT = [
    ("luo figures (no model)", "experiments.figure1", "main",
     ["--data", NOPE, "--results", "{tmp}"], "does not exist"),
    ("luo figures (models)", "experiments.figure3_4", "main",
     ["--data", NOPE, "--skip-train", "--results", "{tmp}"], "does not exist"),
    ("physics", "experiments.physics", "main",
     ["--data", NOPE, "--skip-train", "--results", "{tmp}"], "does not exist"),
    ("table1", "experiments.table1", "main",
     ["--data", NOPE, "--results", "{tmp}", "--quiet"], "does not exist"),
    ("survey gap", "experiments.survey_gap", "main",
     ["--data", NOPE, "--out", "{tmp}"], "does not exist"),
    ("lin figures", "experiments.lin_fig3", "main",
     ["--data", NOPE, "--out", "{tmp}", "--quiet"], "does not exist"),
    ("lin helper", "experiments.lin_train", "main",
     ["--preset", "tiny", "--data", NOPE, "--cases", "ours"], "does not exist"),
    ("run_all", "experiments.run_all", "main",
     ["--only", "nope", "--results", "{tmp}"], "unknown target(s) nope"),
    ("benchmarks: train", "benchmarks/bench_train.py", "main",
     ["--data", NOPE, "--quick"], "no such folder"),
    ("benchmarks: noise GAN", "benchmarks/bench_noise_gan.py", "main",
     ["--data", NOPE], "no such folder"),
    ("benchmarks: predict", "benchmarks/bench_predict.py", "main",
     ["--rows", "1000,-5"], "--rows"),
    ("benchmarks: pipeline memory", "benchmarks/bench_pipeline_memory.py", "main",
     ["--sizes", "1000"], "--sizes"),
    ("benchmarks: simulate", "benchmarks/bench_simulate.py", "main",
     ["--n", "1"], "at least 2 galaxies"),
    ("benchmarks: run", "benchmarks/run.py", "main",
     ["--only", "train,nope"], "unknown benchmark(s) nope"),
    ("tools", "tools/convert_lpips_weights.py", "main",
     ["--backbone", NOPE + ".pth", "--out", "{tmp}/x.npz"], "no such file"),
    # bad values caught by the parser (common.cli.Parser: one line too)
    ("luo figures: negative count", "experiments.figure3_4", "main",
     ["--epochs", "-1"], "--epochs: must be a positive integer, got '-1'"),
    ("table1: zero seeds", "experiments.table1", "main",
     ["--seeds", "0"], "--seeds: must be a positive integer, got '0'"),
    ("survey gap: negative count", "experiments.survey_gap", "main",
     ["--n-test", "-3"], "--n-test: must be a positive integer"),
    ("lin figures: zero jobs", "experiments.lin_fig5", "main",
     ["--jobs", "0"], "--jobs: must be a positive integer"),
    ("run_all: unknown preset", "experiments.run_all", "main",
     ["--preset", "huge"], "invalid choice: 'huge'"),
    ("benchmarks: zero steps", "benchmarks/bench_train.py", "main",
     ["--steps", "0"], "--steps: must be a positive integer"),
]


@pytest.mark.parametrize("family, target, fn, argv, says", BAD_INPUT,
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_error_line_exit_2(family, target, fn, argv, says, tmp_path,
                                            capfd):
    main = getattr(_load(target), fn)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # a usage error, from the parser
        code = exc.code
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2, f"{target} {argv}: exit {code}, stderr {err}"
    assert len(err) == 1 and "error: " in err[0] and says in err[0], err
    assert not any(tmp_path.iterdir()), f"{target} wrote {list(tmp_path.iterdir())}"


# --- the help formatter and TensorFlow-free constants ------------------------------------

def _help(*specs) -> str:
    p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    for flag, kw in specs:
        p.add_argument(flag, **kw)
    return p.format_help()


def test_formatter_shows_zero_defaults_once_and_hides_none_false_suppress():
    text = _help(("--seed", dict(type=int, default=0, help="seed")),
                 ("--lr", dict(type=float, default=0.0, help="rate")),
                 ("--n", dict(type=int, default=3, help="count (default 3)")),
                 ("--data", dict(default=None, help="folder")),
                 ("--quiet", dict(action="store_true", help="no bars")),
                 ("--hidden", dict(default=argparse.SUPPRESS, help="secret")))
    assert "seed (default: 0)" in text and "rate (default: 0.0)" in text
    assert "count (default 3)" in text and text.count("default") == 3
    assert "folder\n" in text and "no bars\n" in text and "secret\n" in text
