"""The reports of benchmarks/gpu_check.py: its progress lines (``say``, ``train_line``),
the projected paper run against the paper's hours and our targets (``projection``), the
closing summary (``summary_lines``), the Markdown (``markdown``) and the JSON's values
(``jsonable``). Reads the result dict ``check_all`` builds; measures nothing."""
from __future__ import annotations

import math

from benchmarks.gpu_measure import NO_MEMORY, NOISE_GAN_ITERATIONS, POLICY, TOLERANCE_WHY, na

MD_NAME, JSON_NAME = "gpu_check.md", "gpu_check.json"
TARGET_EPOCH_S = 4.0        # ours (issue 7): Pix2WGAN paper-preset epoch, one H200-class GPU
TARGET_PREDICT_IMG_S = 200  # ours (issue 7): predict on one GPU
MODELS = ("pix2wgan", "cascade")
LABEL = {"pix2wgan": "Pix2WGAN", "cascade": "Cascade Pix2WGAN"}


def jsonable(obj):
    """Non-finite floats as strings ("nan", "inf"): the JSON stays strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


FLOPS_METHOD = (
    "analytic (benchlib.train_step_flops): forward FLOPs per image of the generator's and "
    "critic's conv layers from their shapes (benchlib.conv_forward_flops; 2 per "
    "multiply-add), times the passes of one step: B((n_c+2) F_G + (12 n_c+2) F_D) per "
    "stage, + the cascade's bridge n_c B F_G; normalisation, activations and optimizer "
    "updates left out, so the share of peak is a slight underestimate")


def say(name: str, rec: dict, fmt) -> None:
    """Print one progress line: ``fmt(rec)``, or why ``rec`` was not measured."""
    print(f"{name}: " + (fmt(rec) if rec.get("available") else f"not measured "
                                                                 f"({rec['why']})"),
          flush=True)


def train_line(r: dict) -> str:
    """The progress line of one training measurement (``fmt`` of ``say``)."""
    share = r["matmul_peak_share"]
    mem = r.get("peak_device_memory", {})
    return (f"{r['img_s']:.1f} img/s ({r['step_s'] * 1e3:.1f} ms/step, first call "
            f"{r['first_call_s']:.1f} s); epoch {r['epoch_s']:.1f} s; "
            + (f"{100 * share['fraction']:.1f} % of the {share['of']}; "
               if share.get("available") else "")
            + (f"peak GPU memory {mem['gb']:.2f} GB; " if mem.get("available") else "")
            + f"losses finite: {r['last_losses_finite']}")


def projection(res: dict, has_gpu: bool, quick: bool) -> dict:
    """The projected 500-epoch run of each model at its fastest measured configuration,
    next to the paper's hours and (Pix2WGAN) our epoch target."""
    out = {}
    for kind in MODELS:
        cfgs = {k: v for k, v in res["train"][kind]["configs"].items() if v.get("available")}
        paper_h = res["paper"][f"{kind}_500_epochs_h"]
        if not cfgs:
            out[kind] = na("no training configuration was measured")
            continue
        best = max(cfgs, key=lambda k: cfgs[k]["img_s"])
        r = cfgs[best]
        rec = {"available": True, "best_config": best, "img_s": r["img_s"],
               "epoch_s": r["epoch_s"], "hours_500_epochs": r["projected_500_epochs_h"],
               "paper_hours_500_epochs": paper_h,
               "paper_img_s": res["paper"][f"{kind}_img_s"],
               "speedup_vs_paper": (na("--quick measures tiny networks: not comparable "
                                       "with the paper") if quick else
                                    paper_h / r["projected_500_epochs_h"])}
        if kind != "pix2wgan":
            rec["target"] = na("no target for the cascade")
        elif quick or not has_gpu:
            rec["target"] = na("the target is for the paper preset on an H200-class GPU; "
                               + ("--quick measures tiny networks" if quick else
                                  "this run had no GPU"))
        else:
            rec["target"] = {"available": True, "epoch_s": TARGET_EPOCH_S,
                             "met": bool(r["epoch_s"] <= TARGET_EPOCH_S)}
        out[kind] = rec
    if quick or not has_gpu:
        out["predict_target"] = na("the target is for one GPU at the paper width; "
                                   + ("--quick measures tiny networks" if quick else
                                      "this run had no GPU"))
    else:
        rec = {"available": True, "img_s": TARGET_PREDICT_IMG_S}
        for what, recs in (("model", res["predict"]["model"]["pix2wgan"]),
                           ("manifest", res["predict"]["manifest"])):
            got = [v["img_s"] for v in recs.values() if v.get("available")]
            rec[f"{what}_best_img_s"] = max(got) if got else None
            rec[f"{what}_met"] = bool(got) and max(got) >= TARGET_PREDICT_IMG_S
        out["predict_target"] = rec
    return out



def _f(value, digits=1, unit="") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return f"{value:,.{digits}f}{unit}"


def _cell(rec: dict, fmt) -> str:
    return fmt(rec) if rec.get("available") else f"not measured: {rec['why']}"


def _predict_verdict(res: dict) -> str:
    """One line: Pix2WGAN's best measured predict rates against our target."""
    t = res["projection"]["predict_target"]
    best = {what: max((v["img_s"] for v in recs.values() if v.get("available")), default=None)
            for what, recs in (("forward", res["predict"]["model"]["pix2wgan"]),
                               ("--manifest", res["predict"]["manifest"]))}
    got = ", ".join(f"{what} {_f(v)} img/s" for what, v in best.items() if v is not None)
    if not t.get("available"):
        verdict = f"not judged ({t['why']})"
    else:
        verdict = (f"forward {'met' if t['model_met'] else 'NOT met'}, --manifest "
                   f"{'met' if t['manifest_met'] else 'NOT met'}")
    return (f"Pix2WGAN predict: measured best {got or 'nothing'} | target >= "
            f"{TARGET_PREDICT_IMG_S} img/s: {verdict}")


def _mem_cell(mem: dict) -> str:
    """A table cell for a peak-memory record (the CPU's reason in full is in the JSON
    and under "Memory")."""
    if mem.get("available"):
        return f"{mem['gb']:.2f} GB"
    return "n/a (CPU)" if mem.get("why") == NO_MEMORY else mem.get("why", "")


def summary_lines(res: dict) -> list[str]:
    lines = ["", "=== measured (this run) vs paper (reported) vs target (ours)"]
    if res["mode"] == "quick":
        lines.append("--quick: tiny networks; a smoke check of the script, NOT performance "
                     "figures")
    for kind in MODELS:
        p = res["projection"][kind]
        if not p.get("available"):
            lines.append(f"{LABEL[kind]}: not measured ({p['why']})")
            continue
        t = p["target"]
        tiny = " (tiny networks, --quick)" if res["mode"] == "quick" else ""
        lines.append(
            f"{LABEL[kind]}{tiny}: measured {p['img_s']:.1f} img/s ({p['best_config']}), epoch "
            f"{p['epoch_s']:.1f} s, 500 epochs {p['hours_500_epochs']:.2f} h | paper "
            f"(RTX 3090): {p['paper_hours_500_epochs']} h = {p['paper_img_s']:.0f} img/s"
            + (f" | target: epoch <= {TARGET_EPOCH_S:g} s: "
               + ("met" if t["met"] else "NOT met") if t.get("available") else
               (f" | target epoch <= {TARGET_EPOCH_S:g} s: not judged ({t['why']})"
                if kind == "pix2wgan" else "")))
    lines.append(_predict_verdict(res))
    for kind in MODELS:
        ag = res["train"][kind]["precision_agreement"]
        lines.append(f"{LABEL[kind]} precision check: " + _cell(ag, lambda r: (
            f"fp16 finite {r['fp16_finite']}, agree {r['agree']} (rtol {r['rtol']}, "
            f"{r['k_std']:g} std, last {r['window']} of {r['steps']} steps)")))
    if res["errors"]:
        lines.append(f"{len(res['errors'])} measurement(s) failed: "
                     + "; ".join(res["errors"]))
    lines.append(f"total {res['wall_s']:.0f} s")
    return lines


def markdown(res: dict) -> str:
    dev = res["device"]
    s = res["settings"]
    L = [f"# GPU check: {dev['kind']} {dev['name']}", ""]
    if res["mode"] == "quick":
        L += ["**`--quick`: tiny networks (width {width}, batch {batch_size}, {image_size} px, "
              "depth {depth}, n_critic {n_critic}) — a smoke check of the script, not "
              "performance figures.**".format(**s), ""]
    m = res["machine"]
    L += [f"`python benchmarks/gpu_check.py{' --quick' if res['mode'] == 'quick' else ''}`, "
          f"{res['started_utc']} UTC, {res['wall_s']:.0f} s; TensorFlow {m['tensorflow']}, "
          f"{m['cpus']} CPUs ({m['cpu']}), load average at start {m['load_avg']}; "
          f"budget {s['budget_s']} s; seed {s['seed']}; float32 matmuls and convolutions "
          f"in TF32: " + (str(dev["tf32"]["enabled"]) if dev["tf32"].get("available")
                          else "n/a (CPU)") + ".", "",
          "Labels: **measured** = this run; **paper** = Luo et al.'s reported figure; "
          "**target** = ours (issue 7).", ""]
    L += ["## Projected paper run (500 epochs of 15,000 images)", "",
          "| model | measured: fastest config | measured img/s | measured epoch | measured "
          "500 epochs | paper (RTX 3090) | target |", "|---|---|---|---|---|---|---|"]
    for kind in MODELS:
        p = res["projection"][kind]
        if not p.get("available"):
            L.append(f"| {LABEL[kind]} | not measured: {p['why']} | | | | | |")
            continue
        t = p["target"]
        tgt = (f"epoch <= {t['epoch_s']:g} s: {'met' if t['met'] else 'NOT met'}"
               if t.get("available") else f"not judged: {t['why']}")
        tiny = " (tiny, --quick)" if res["mode"] == "quick" else ""
        L.append(f"| {LABEL[kind]}{tiny} | {p['best_config']} | {_f(p['img_s'])} | "
                 f"{_f(p['epoch_s'])} s | {_f(p['hours_500_epochs'], 2)} h | "
                 f"{p['paper_hours_500_epochs']} h ({_f(p['paper_img_s'], 0)} img/s) | "
                 f"{tgt} |")
    L += ["", "## Training step (measured)", "",
          f"{s['n_critic']} x batch {s['batch_size']} images per step; non-XLA rows: "
          f"median of the last {s['timed_steps']} of {s['agreement_steps']} steps; XLA rows: "
          f"{s['xla_warmup_steps']} warm-up steps, then {s['timed_steps']} timed. Share of "
          f"peak: {res['flops_method']}.", "",
          "| model | precision | XLA | img/s | ms/step | first call s | epoch s | 500 epochs "
          "h | GFLOP/step | share of matmul peak | peak device memory | losses finite |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in MODELS:
        for key, r in res["train"][kind]["configs"].items():
            prec, xla = key.split("+")[0], "yes" if key.endswith("+xla") else "no"
            if not r.get("available"):
                L.append(f"| {LABEL[kind]} | {POLICY[prec]} | {xla} | not measured: "
                         f"{r['why']} | | | | | | | | |")
                continue
            share = r["matmul_peak_share"]
            mem = r["peak_device_memory"]
            L.append(
                f"| {LABEL[kind]} | {r['policy']} | {xla} | {_f(r['img_s'])} | "
                f"{_f(r['step_s'] * 1e3)} | {_f(r['first_call_s'])} | {_f(r['epoch_s'])} | "
                f"{_f(r['projected_500_epochs_h'], 2)} | {_f(r['flops_per_step'] / 1e9, 2)} | "
                + (f"{100 * share['fraction']:.1f} % of {share['of']}" if share.get(
                    "available") else f"n/a: {share['why']}") + " | "
                + _mem_cell(mem) + " | "
                f"{r['last_losses_finite']} |")
    L += ["", "## Matmul peak (measured)", "", "| dtype | TFLOP/s | n |", "|---|---|---|"]
    for dt, r in res["matmul_peak"].items():
        L.append(f"| {dt} | " + _cell(r, lambda r: f"{r['tflop_s']:.3f} | {r['n']}") + " |")
    L += ["", "## Precision check (measured)", ""]
    for kind in MODELS:
        ag = res["train"][kind]["precision_agreement"]
        if not ag.get("available"):
            L += [f"{LABEL[kind]}: not measured: {ag['why']}", ""]
            continue
        L += [f"**{LABEL[kind]}**: fp16 losses finite: **{ag['fp16_finite']}** "
              f"({ag['fp16_finite_rule']}; non-finite steps: "
              f"{ag['fp16_nonfinite_steps'] or 'none'}; loss scale at the end "
              f"{ag['fp16_loss_scale_end']}); float32, mixed_float16 and mixed_bfloat16 "
              f"agree after {ag['steps']} steps: **{ag['agree']}**. Rule: {ag['rule']}. "
              f"Initial weights: {ag['initial_weights']}.", "",
              "| loss term | float32 mean (std) | tolerance | fp16 mean (diff) | bf16 mean "
              "(diff) | agree |", "|---|---|---|---|---|---|"]
        for term, t in ag["terms"].items():
            L.append(f"| {term} | {t['float32_mean']:.4g} ({t['float32_std']:.2g}) | "
                     f"{t['tolerance']:.2g} | {t['fp16_mean']:.4g} ({t['fp16_diff']:+.2g}) "
                     f"| {t['bf16_mean']:.4g} ({t['bf16_diff']:+.2g}) | "
                     f"{t['fp16_agrees'] and t['bf16_agrees']} |")
        L.append("")
    L += [f"Why these tolerances: {TOLERANCE_WHY}", ""]
    L += ["## Predict (measured)", "", f"Target (ours): >= {TARGET_PREDICT_IMG_S} img/s "
          f"on one GPU at the paper width. {_predict_verdict(res)}.", "",
          "| model | what | precision | batch | "
          "img/s | peak device memory |", "|---|---|---|---|---|---|"]
    rows = [(LABEL[k], "generator forward + copy to host", key, r)
            for k in MODELS for key, r in res["predict"]["model"][k].items()]
    rows += [(LABEL["pix2wgan"], "predict --manifest (JPEG, model, PNG, record)", key, r)
             for key, r in res["predict"]["manifest"].items()]
    for label, what, key, r in rows:
        prec, b = key.split("_b")
        mem = r.get("peak_device_memory", {})
        L.append(f"| {label} | {what} | {POLICY[prec]} | {b} | "
                 + _cell(r, lambda r: f"{_f(r['img_s'])}") + " | " + _mem_cell(mem) + " |")
    ng = res["settings"]["noise_gan"]
    L += ["", "## Noise GAN, Lin et al. (measured)", "",
          f"Width {ng['width']}, {ng['batch_unpaired']} unpaired SDSS + "
          f"{ng['batch_unpaired']} unpaired CFHT + {ng['batch_paired']} pairs, "
          f"{ng['sdss_size']}/{ng['cfht_size']} px, {ng['bands']} bands, float32; the paper "
          f"trains {NOISE_GAN_ITERATIONS:,} iterations per step.", "",
          "| step | s/iteration | img/s | first call s | projected 60,000 iterations |",
          "|---|---|---|---|---|"]
    for step, r in res["noise_gan"].items():
        L.append(f"| {step[-1]} | " + _cell(r, lambda r: (
            f"{r['iteration_s']:.4f} | {_f(r['img_s'])} | {_f(r['first_call_s'])} | "
            f"{_f(r['projected_paper_step_h'], 2)} h")) + " |")
    pm = res["peak_device_memory"]
    L += ["", "## Memory (measured)", "",
          "Peak device memory: " + (f"{pm['gb']:.2f} GB ({pm['measurement']})"
                                    if pm.get("available") else pm["why"])
          + f". Host peak RSS: {res['host_peak_rss_mb']:.0f} MB.", ""]
    if res["errors"]:
        L += ["## Failed measurements", ""] + [f"- {e}" for e in res["errors"]] + [""]
    L += [f"JSON with every figure: `{JSON_NAME}` (not measurable fields are "
          "`{\"available\": false, \"why\": ...}`).", ""]
    return "\n".join(L)
