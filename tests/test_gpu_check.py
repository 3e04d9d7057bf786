"""benchmarks/gpu_check.py --quick on the CPU: exit 0, its Markdown and JSON written, every
field a GPU run fills present (GPU-only ones marked not available), numbers finite and
positive where measured, the precision check a verdict with its tolerance. Timings are
never asserted."""
import contextlib
import importlib.util
import io
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRECISIONS = ("float32", "fp16", "bf16")
CONFIGS = PRECISIONS + tuple(p + "+xla" for p in PRECISIONS)
MODELS = ("pix2wgan", "cascade")
#: Fields that, where measured, are rates, times, counts or sizes: > 0.
POSITIVE = {"flop_s", "tflop_s", "n", "img_s", "step_s", "first_call_s", "epoch_s",
            "projected_500_epochs_h", "flops_per_step", "achieved_flop_s", "fraction",
            "images_per_step", "iteration_s", "images_per_iteration",
            "projected_paper_step_h", "hours_500_epochs", "paper_hours_500_epochs",
            "paper_img_s", "rows", "seconds", "batch", "steps", "window", "rtol", "k_std",
            "wall_s", "timed_steps", "steps_run", "speedup_vs_paper"}


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test",
                                                  REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Precision-agreement steps of the run under test: fewer than the script's 50, enough
#: for its window of 10; these tests check the report, not the verdict.
STEPS = 20


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One ``--quick`` run for the whole file: (exit code, stdout, out folder, JSON)."""
    out = tmp_path_factory.mktemp("gpu_check")
    buf = io.StringIO()
    module = _load()
    module.AGREE_STEPS = STEPS
    with contextlib.redirect_stdout(buf):
        code = module.main(["--quick", "--out", str(out)])
    js = out / "gpu_check.json"
    return code, buf.getvalue(), out, json.loads(js.read_text()) if js.is_file() else None


def _records(node, path=""):
    """Every dict with an ``available`` key, with its path."""
    if isinstance(node, dict):
        if "available" in node:
            yield path, node
        for k, v in node.items():
            yield from _records(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _records(v, f"{path}[{i}]")


def test_quick_exits_0_and_writes_both_files(quick):
    code, stdout, out, res = quick
    assert code == 0, stdout[-3000:]
    assert (out / "gpu_check.md").is_file() and res is not None
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("gpu_check: wrote") and "gpu_check.md" in last \
        and "gpu_check.json" in last
    md = (out / "gpu_check.md").read_text()
    assert "smoke check" in md and "not performance figures" in md
    for label in ("measured", "paper", "target"):
        assert label in md.lower()
    assert res["mode"] == "quick" and res["errors"] == []


def test_every_field_is_present(quick):
    res = quick[3]
    assert set(res["matmul_peak"]) == {"float32", "float16", "bfloat16"}
    for kind in MODELS:
        assert set(res["train"][kind]["configs"]) == set(CONFIGS)
        assert "precision_agreement" in res["train"][kind]
        assert set(res["predict"]["model"][kind]) == {
            f"{p}_b{b}" for p in ("float32", "fp16") for b in (64, 256)}
        proj = res["projection"][kind]
        assert {"hours_500_epochs", "paper_hours_500_epochs", "epoch_s", "target"} <= set(
            proj)
    assert set(res["predict"]["manifest"]) == {"float32_b64", "float32_b256"}
    assert set(res["noise_gan"]) == {"step1", "step2"}
    assert res["paper"]["pix2wgan_500_epochs_h"] == 7.3
    assert math.isclose(res["paper"]["pix2wgan_img_s"], 285, rel_tol=0.01)
    assert res["targets"]["pix2wgan_epoch_s"] == 4.0
    assert res["targets"]["predict_img_s"] == 200
    assert "conv" in res["flops_method"]
    for path, rec in _records(res):
        assert isinstance(rec["available"], bool), path
        if not rec["available"]:
            assert isinstance(rec["why"], str) and rec["why"], path


def test_what_quick_measures_on_cpu(quick):
    res = quick[3]
    measured = [("matmul_peak", d) for d in ("float32", "float16", "bfloat16")]
    measured += [("train", k, "configs", p) for k in MODELS for p in PRECISIONS]
    measured += [("train", "pix2wgan", "configs", "float32+xla"),
                 ("noise_gan", "step1"), ("noise_gan", "step2")]
    for keys in measured:
        node = res
        for k in keys:
            node = node[k]
        assert node["available"] is True, (keys, node.get("why"))
    for kind in MODELS:
        for p in ("fp16", "bf16"):  # --quick compiles XLA once
            assert res["train"][kind]["configs"][p + "+xla"]["available"] is False


def test_gpu_only_fields_are_marked_not_available_on_cpu(quick):
    res = quick[3]
    assert res["device"]["kind"] == "CPU"
    assert res["peak_device_memory"]["available"] is False
    assert "not available on CPU" in res["peak_device_memory"]["why"]
    assert res["device"]["tf32"]["available"] is False
    assert res["projection"]["pix2wgan"]["target"]["available"] is False
    assert res["projection"]["predict_target"]["available"] is False
    for path, rec in _records(res):
        if rec["available"] and "peak_device_memory" in rec:
            assert rec["peak_device_memory"]["available"] is False, path


def test_measured_numbers_are_finite_and_positive(quick):
    res = quick[3]
    count = 0
    for path, rec in _records(res):
        if not rec["available"]:
            continue
        for key, value in rec.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            assert math.isfinite(value), f"{path}/{key} = {value}"
            if key in POSITIVE:
                assert value > 0, f"{path}/{key} = {value}"
                count += 1
    assert count > 100
    for kind in MODELS:
        for p in PRECISIONS:
            rec = res["train"][kind]["configs"][p]
            assert rec["last_losses_finite"] is True
            assert rec["steps_run"] == STEPS and rec["timed_steps"] == len(rec["timed_step_s"])


def test_precision_check_is_a_verdict_with_its_tolerance(quick):
    res = quick[3]
    for kind in MODELS:
        ag = res["train"][kind]["precision_agreement"]
        assert ag["available"] is True
        assert isinstance(ag["agree"], bool) and isinstance(ag["fp16_finite"], bool)
        assert ag["steps"] == STEPS and ag["window"] == 10
        assert ag["rtol"] > 0 and ag["k_std"] > 0
        assert "tolerance" in ag["rule"] or "<=" in ag["rule"]
        assert ag["tolerance_why"]
        assert ag["terms"]
        for term, row in ag["terms"].items():
            assert row["tolerance"] >= ag["rtol"] * abs(row["float32_mean"]) - 1e-12
            assert isinstance(row["fp16_agrees"], bool) and isinstance(
                row["bf16_agrees"], bool)
        assert ag["agree"] == all(r["fp16_agrees"] and r["bf16_agrees"]
                                  for r in ag["terms"].values())
        assert set(ag["losses_per_step"]) == set(PRECISIONS)
        assert all(len(h) == STEPS for h in ag["losses_per_step"].values())
        # the same seeded start for the three precisions
        assert "float32" in ag["initial_weights"]["fp16"]


def test_full_size_without_a_gpu_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "never"
    assert _load().main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no GPU visible") \
        and "--quick" in err[0]
    assert not out.exists()


def test_a_failing_measurement_is_recorded_not_raised():
    from benchmarks.gpu_measure import Check
    check = Check(budget_s=60, has_gpu=False)

    def xla_missing():
        raise RuntimeError("XLA compilation is not available\nsecond line")
    rec = check.measure("pix2wgan fp16+xla", xla_missing)
    assert rec == {"available": False,
                   "why": "error: RuntimeError: XLA compilation is not available"}
    assert check.errors == ["pix2wgan fp16+xla: RuntimeError: XLA compilation is not "
                            "available"]
    ok = check.measure("fine", lambda: {"img_s": 1.0})
    assert ok["available"] is True and ok["img_s"] == 1.0
    assert ok["peak_device_memory"]["available"] is False


def test_measurements_after_the_budget_are_skipped():
    import time
    from benchmarks.gpu_measure import Check
    check = Check(budget_s=1, has_gpu=False, t0=time.perf_counter() - 5)
    rec = check.measure("late", lambda: pytest.fail("a late measurement ran"))
    assert rec["available"] is False and "--budget" in rec["why"]
    assert check.errors == []


def test_train_step_flops_matches_the_paper_step_formula():
    from benchmarks.benchlib import train_step_flops
    f_g, f_d, b = 3.0, 5.0, 32
    assert train_step_flops(f_g, f_d, b) == b * (5 * f_g + 38 * f_d)
    assert train_step_flops(f_g, f_d, b, n_critic=3, stages=2) == \
        2 * b * (5 * f_g + 38 * f_d) + 3 * b * f_g
    assert train_step_flops(f_g, f_d, b, n_critic=1) == b * (3 * f_g + 14 * f_d)
