"""experiments/run_all.py: targets run once, are skipped while up to date, rerun when
an input (code, data, command) changes or with --force; failures block dependants."""
import json
import shutil
from pathlib import Path

import pytest

from experiments import run_all

FAKE = '''import sys, pathlib
out = pathlib.Path(sys.argv[sys.argv.index("--results") + 1])
out.mkdir(parents=True, exist_ok=True)
src = pathlib.Path(sys.argv[sys.argv.index("--input") + 1]).read_text()
(out / "fake.txt").write_text(src.upper())
with open(out / "runs.log", "a") as f:
    f.write("run\\n")
'''


@pytest.fixture
def fake_repo(tmp_path):
    root = tmp_path / "repo"
    (root / "experiments").mkdir(parents=True)
    (root / "experiments" / "fake.py").write_text(FAKE)
    (root / "experiments" / "broken.py").write_text("raise SystemExit(3)\n")
    inp = tmp_path / "input.txt"
    inp.write_text("hello")

    def args(ctx):
        return ["--results", str(ctx.results), "--input", str(inp)]
    targets = {
        "fake": run_all.Target("fake", "experiments/fake.py", ("fake.txt",),
                               code=("experiments/fake.py",), args=args, paper="lin",
                               extra_inputs=[str(inp)]),
        "broken": run_all.Target("broken", "experiments/broken.py", ("never.txt",),
                                 args=lambda ctx: [], paper="lin"),
        "after_broken": run_all.Target("after_broken", "experiments/fake.py",
                                       ("fake.txt",), after=("broken",), args=args,
                                       paper="lin"),
    }
    return root, targets, inp, tmp_path / "results"


def runs(results):
    return (results / "runs.log").read_text().count("run")


def test_skip_rerun_force(fake_repo, capsys):
    root, targets, inp, res = fake_repo
    argv = ["--preset", "tiny", "--results", str(res), "--only", "fake"]
    assert run_all.main(argv, targets, root) == 0
    assert (res / "fake.txt").read_text() == "HELLO" and runs(res) == 1
    stamp = json.loads((res / ".stamps" / "fake-tiny.json").read_text())
    assert stamp["outputs"] == ["fake.txt"] and "experiments/fake.py" in stamp["inputs"]
    assert run_all.main(argv, targets, root) == 0
    assert runs(res) == 1 and "up to date" in capsys.readouterr().out  # skipped
    inp.write_text("changed")  # an input changed: rerun
    assert run_all.main(argv, targets, root) == 0
    assert runs(res) == 2 and (res / "fake.txt").read_text() == "CHANGED"
    out = capsys.readouterr().out
    assert "changed: extra:" in out
    (root / "experiments" / "fake.py").write_text(FAKE + "\n# edited\n")  # code changed
    assert run_all.main(argv, targets, root) == 0 and runs(res) == 2 + 1
    (res / "fake.txt").unlink()  # output deleted: rerun
    assert run_all.main(argv, targets, root) == 0 and runs(res) == 4
    assert run_all.main(argv + ["--force"], targets, root) == 0 and runs(res) == 5
    # another preset is another stamp
    assert run_all.main(["--preset", "cpu", "--results", str(res), "--only", "fake"],
                        targets, root) == 0 and runs(res) == 6


def test_failure_blocks_dependants_and_bad_names(fake_repo, capsys):
    root, targets, _, res = fake_repo
    assert run_all.main(["--results", str(res)], targets, root) == 1
    out = capsys.readouterr().out
    assert "broken: FAILED (exit 3)" in out and "after_broken: not run" in out
    assert not (res / ".stamps" / "broken-cpu.json").exists()
    assert run_all.main(["--results", str(res), "--only", "nope"], targets, root) == 2


def test_registry_covers_both_papers():
    names = list(run_all.TARGETS)
    assert names[:2] == ["table1", "survey_gap"]
    for n in ("figure1", "figure3_4", "figure5", "figure6", "figure7", "figure8_9",
              "physics", "calibration", "lin_fig3", "lin_fig4", "lin_fig5", "lin_fig6"):
        t = run_all.TARGETS[n]
        assert (run_all.REPO_ROOT / t.script).is_file(), t.script
    for n in ("figure3_4", "figure5", "figure6", "figure7", "figure8_9", "physics",
              "calibration"):
        assert run_all.TARGETS[n].models and "table1" in run_all.TARGETS[n].after
    assert names.index("calibration") > names.index("table1")
    ctx = run_all.Context("tiny", Path("/r"), None, None)
    cmd = run_all.command(run_all.TARGETS["table1"], ctx)
    assert "--width" in cmd and "cpu" in cmd  # table1.py has no tiny preset
    assert "--seeds" not in cmd  # the tiny preset trains one seed
    cpu = run_all.command(run_all.TARGETS["table1"], run_all.Context("cpu", Path("/r"), None,
                                                                      None))
    assert cpu[cpu.index("--seeds") + 1] == "3"  # error bars, and calibration's ensemble
    assert "--run" not in run_all.command(run_all.TARGETS["figure1"], ctx)


def test_real_luo_target_runs_then_skips(luo_tiny_sim, tmp_path, monkeypatch, capsys):
    """figure1 (no model needed) through run_all on a tiny simulated set."""
    data = Path(shutil.copytree(luo_tiny_sim, tmp_path / "sim"))  # its manifest changes
    res = tmp_path / "res"
    argv = ["--preset", "tiny", "--data", str(data), "--results", str(res),
            "--only", "figure1"]
    assert run_all.main(argv) == 0
    assert (res / "figure1.png").stat().st_size > 0 and (res / "figure1.pdf").is_file()
    capsys.readouterr()
    assert run_all.main(argv) == 0
    assert "figure1: up to date" in capsys.readouterr().out
    (data / "manifest.csv").write_text((data / "manifest.csv").read_text() + "\n")
    assert run_all.main(argv + ["--list"]) == 0
    assert "changed: data:manifest.csv" in capsys.readouterr().out


def test_seed_models_are_inputs_of_the_targets_that_use_them(tmp_path):
    """calibration uses Table 1's three seeds: a retrained seed-2 model reruns it, not
    a target that uses seed 0 only."""
    for run in ("table1-cpu", "table1-cpu-seed2"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "generator.keras").write_bytes(b"weights")
    ctx = run_all.Context("cpu", tmp_path / "res", tmp_path, None)
    assert [f.parent.name for f in run_all.model_files(ctx)] == ["table1-cpu"]
    assert [f.parent.name for f in run_all.model_files(ctx, 3)] == [
        "table1-cpu", "table1-cpu-seed2"]
    cal, fig = run_all.TARGETS["calibration"], run_all.TARGETS["figure5"]
    before = run_all.inputs(cal, ctx), run_all.inputs(fig, ctx)
    (tmp_path / "table1-cpu-seed2" / "generator.keras").write_bytes(b"retrained")
    assert run_all.inputs(cal, ctx) != before[0]
    assert run_all.inputs(fig, ctx) == before[1]
