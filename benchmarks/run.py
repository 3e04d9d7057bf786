"""Run every benchmark and print one table of ratios against the targets of issue 7.

    python benchmarks/run.py [--quick] [--only train,cascade,predict,simulate]

Each benchmark runs in its own process (``BENCH_JSON`` line collected); the table shows
the measured figure, the target and met / not met. Targets are reported, never
asserted. GPU targets read "not measured: no GPU in this run" on a machine without one.
Absolute numbers on a shared machine are noisy; the ratios come from one process each.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
from benchmarks.benchlib import NO_GPU, machine_info, print_machine

from common.cli import Parser, add_verbose

BENCHES = ("train", "cascade", "predict", "predict_cascade", "simulate", "noise_gan")


def run(script: str, args: list[str]) -> tuple[dict | None, str, float]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / script), *args], env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    lines = [ln for ln in out.stdout.splitlines() if not ln.startswith("BENCH_JSON ")]
    print("\n".join(lines[2:]))  # its own machine lines are the same as ours
    js = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if js is None:
        print(f"{script} failed:\n{out.stderr[-3000:]}")
        return None, out.stdout, wall
    return json.loads(js[len("BENCH_JSON "):]), out.stdout, wall


def verdict(ok) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    ap = Parser(prog="python benchmarks/run.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short versions of each")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated subset of {', '.join(BENCHES)} (default: all; "
                         f"with --quick all but noise_gan, whose step alone takes about "
                         f"a minute on 2 CPUs)")
    add_verbose(ap)
    a = ap.parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run_all(a))


def run_all(a) -> None:
    only = a.only.split(",") if a.only else [b for b in BENCHES
                                             if not (a.quick and b == "noise_gan")]
    unknown = [b for b in only if b not in BENCHES]
    if unknown:
        raise ValueError(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(BENCHES)}")
    info = print_machine(machine_info())
    q = ["--quick"] if a.quick else []
    rows = []  # (what, measured, target, verdict)
    res = {}
    plan = {"train": ("bench_train.py", q + ["--model", "pix2wgan"]),
            "cascade": ("bench_train.py", q + ["--model", "cascade"]),
            "predict": ("bench_predict.py", q + ["--model", "pix2wgan"]),
            "predict_cascade": ("bench_predict.py", q + ["--model", "cascade"]),
            "simulate": ("bench_simulate.py", ["--n", "8" if a.quick else "40"]),
            "noise_gan": ("bench_noise_gan.py", q)}
    for name in BENCHES:
        if name not in only:
            continue
        script, args = plan[name]
        print(f"\n=== {name}: python benchmarks/{script} {' '.join(args)}")
        res[name] = run(script, args)

    for name in ("train", "cascade"):
        if name not in res or res[name][0] is None:
            continue
        r = res[name][0]
        label = "Pix2WGAN" if name == "train" else "Cascade"
        cfgs = r["args"]
        tag = f"{cfgs['size']}px b{cfgs['batch']} w{cfgs['width']}"
        rows.append((f"{label} CPU step vs keras-io reference ({tag})",
                     f"{r['speedup']:.2f}x ({r['ours_img_s']:.2f} vs "
                     f"{r['ref_img_s']:.2f} img/s)", ">= 1.2x",
                     verdict(r["speedup"] >= 1.2)))
        if r.get("xla_img_s"):
            rows.append((f"{label} CPU step + XLA vs reference", f"{r['xla_speedup']:.2f}x",
                         ">= 1.2x", verdict(r["xla_speedup"] >= 1.2)))
        if "bf16_speedup" in r:
            rows.append((f"{label} mixed_bfloat16 / float32 step speed",
                         f"{r['bf16_speedup']:.2f}x (CPU bf16 units: "
                         f"{'yes' if r['cpu_bf16'] else 'no'})", "(reported)", "n/a"))
        rows.append((f"{label} achieved / matmul peak",
                     f"{100 * r['peak_fraction']:.0f} % ({r['achieved_flops'] / 1e9:.1f} "
                     f"of {r['matmul_peak'] / 1e9:.1f} GFLOP/s)", ">= 50 %",
                     verdict(r["peak_fraction"] >= 0.5)))
        rows.append((f"{label} data pipeline / training consumption",
                     f"{r['data_ratio']:.1f}x ({r['data_img_s']:.0f} img/s)", ">= 10x",
                     verdict(r["data_ratio"] >= 10)))
        g = r["gpu_epoch_s"]
        rows.append((f"{label} paper-preset epoch (15k img, fp16) on H200",
                     g if isinstance(g, str) else f"{g:.1f} s", "<= 4 s" if name == "train"
                     else "(no target)", "n/a" if isinstance(g, str) or name != "train"
                     else verdict(g <= 4)))
    for name in ("predict", "predict_cascade"):
        if name not in res or res[name][0] is None:
            continue
        r = res[name][0]
        label = "Pix2WGAN" if name == "predict" else "Cascade"
        g = r["gpu_img_s"]
        rows.append((f"{label} predict on GPU", g if isinstance(g, str) else
                     f"{g:.0f} img/s", ">= 200 img/s",
                     "n/a" if isinstance(g, str) else verdict(g >= 200)))
        rows.append((f"{label} predict on {r['device']} (paper width)",
                     f"{r['img_s']:.1f} img/s", "(reported)", "n/a"))
        m = r["memory"]
        rows.append((f"{label} predict peak-RSS growth, {m[0]['rows']} vs "
                     f"{m[-1]['rows']} rows",
                     f"{m[0]['growth_mb']:.1f} vs {m[-1]['growth_mb']:.1f} MB "
                     f"(x{r['memory_ratio']:.2f})", "flat (<= 1.2x)",
                     verdict(r["memory_ratio"] <= 1.2)))
    if "simulate" in res:
        rates = re.findall(r"([\d.]+) galaxies/s", res["simulate"][1])
        rows.append(("simulator throughput (1 worker / all workers)",
                     " / ".join(f"{float(x):.2f}" for x in rates) + " galaxies/s",
                     "(reported)", "n/a"))

    if "noise_gan" in res and res["noise_gan"][0] is not None:
        r = res["noise_gan"][0]
        if "skipped" in r:
            rows.append(("noise GAN step / data pipeline", "not measured: " + r["skipped"],
                         ">= 10x", "n/a"))
        for step in ("1", "2"):
            if f"step{step}_img_s" in r:
                ratio = r[f"step{step}_data_ratio"]
                rows.append((f"noise GAN step {step}: data pipeline / training",
                             f"{ratio:.1f}x ({r[f'step{step}_img_s']:.1f} img/s trained)",
                             ">= 10x", verdict(ratio >= 10)))
    print("\n=== summary " + ("(--quick) " if a.quick else "") +
          f"on {info['cpu']}, {info['cpus']} CPUs, GPUs: "
          f"{', '.join(info['gpus']) or 'none'}; load avg at start {info['load_avg']}")
    w = max(len(r[0]) for r in rows) if rows else 10
    w2 = max(len(r[1]) for r in rows) if rows else 10
    print(f"{'measurement':<{w}}  {'measured':<{w2}}  {'target':<15} verdict")
    for what, got, target, v in rows:
        print(f"{what:<{w}}  {got:<{w2}}  {target:<15} {v}")
    if not info["gpus"]:
        print(f"GPU rows: {NO_GPU}")
    for name, (_, _, wall) in res.items():
        print(f"  ({name}: {wall:.0f} s)")
    print("benchmarks/run.py: wrote no files; the summary table above is the result")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
