"""Calibration of pseudo-HSC per-pixel uncertainties, measured on simulated data.

    python experiments/calibration.py                       # cpu preset, K = 8
    python experiments/calibration.py --samples 4 --models pix2wgan
    python experiments/calibration.py --preset paper

For each model (Pix2WGAN DECaLS->HSC; the cascade SDSS->DECaLS->HSC) and each source of
uncertainty (:mod:`pix2wgan.uncertainty`):

* ``ensemble``: the finished runs of the ``--seeds`` training seeds (``python
  experiments/table1.py --seeds 3``), dropout off, one draw each;
* ``dropout``: seed 0 alone, dropout kept on, ``--samples`` K draws;
* ``both``: every seed x K dropout draws;

the mean pseudo-HSC and its per-pixel standard deviation are compared with two targets
on the test split: the real HSC JPEG (``hsc``) and the noise-free truth rendered as an
HSC JPEG with the viewer stretch (``truth``: ``truth/<id>.npy`` through
``data.render.render_planes``, no noise, no JPEG loss), in grey levels of [0, 255] per
channel (``grey``) and in nanomaggies per 0.168" pixel (``nMgy``: the draws, the HSC JPEG
through ``data.render.inverse_render``, the truth array as it is; pixels whose truth or
HSC JPEG clips at >= 250 are left out, where the inverse stretch fails).

Pixels are SKY or GALAXY by the truth: r-band flux above 1 sigma of HSC's per-pixel sky
noise (``data.scene.pixel_noise``, the HSC noise the simulator adds) is GALAXY (galaxy,
companion or star light a single HSC pixel can tell from the sky; the support of
``experiments.photometry.hallucination``), the rest SKY. The test split is halved by a
fixed rule (``experiments.calibration_stats.split_ids``, physics.py's pulls use it
too): its ids sorted, even positions VALIDATION, odd positions TEST. One scale factor
per model, source, target and unit is fitted on VALIDATION pixels (both regions
together; ``experiments.calibration_stats.fit_scale`` at 68.27 %) and every coverage is
reported on TEST pixels only, before and after the scale.

Outputs (``RESULTS/calibration/``): ``calibration.csv`` (one row per model, source,
target, unit and region), ``calibration.md`` (the table, the goal "68 % intervals cover
68 ± 5 % of test pixels in sky and galaxy" with holds / does not hold), ``reliability.
{png,pdf}`` (nominal vs empirical coverage on TEST, grey levels, before and after),
``hallucination_flag.csv`` (purity and completeness of ``pix2wgan.hallucination``'s flag
on the TEST galaxies, seed-0 runs; also in the markdown).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common.cli import Parser, add_verbose, positive_int
from experiments import calibration_stats as cs
from experiments import luo_common as lc
from experiments.presets import LUO_PRESETS

#: model key -> (input survey, label).
MODELS = {"pix2wgan": ("decals", "Pix2WGAN DECaLS->HSC"),
          "cascade": ("sdss", "Cascade SDSS->DECaLS->HSC")}
SOURCES = ("ensemble", "dropout", "both")
TARGETS = ("hsc", "truth")
UNITS = ("grey", "nMgy")
REGIONS = ("sky", "galaxy")
#: The issue's goal: 68 % intervals cover 68 ± 5 % of test pixels in both regions.
GOAL, GOAL_TOL = cs.LEVELS[0], 0.05
#: JPEG grey level from which a pixel counts as clipped (experiments/physics.py's).
CLIP_LEVEL = 250


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/calibration.py",
               description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=LUO_PRESETS, default="cpu",
                   help="whose simulated set and Table 1 runs (runs/table1-PRESET, "
                        "-seed1, ...)")
    p.add_argument("--data", help="dataset folder with truth/ (default: the preset's "
                                  "simulated set)")
    p.add_argument("--results", default=str(lc.RESULTS),
                   help="output root; files go to RESULTS/calibration/")
    p.add_argument("--run", help="seed-0 Pix2WGAN run folder (default "
                                 "runs/table1-PRESET; seeds add -seedS, the cascade "
                                 "-cascade), as table1.py")
    p.add_argument("--models", default="pix2wgan,cascade",
                   help="comma-separated: pix2wgan, cascade")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="training seeds of the ensemble (table1.py --seeds K)")
    p.add_argument("--samples", type=positive_int, default=8,
                   help="dropout draws per model (sources dropout and both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout draws")
    p.add_argument("--max-galaxies", type=positive_int,
                   help="only the first N test galaxies (sorted ids), for a quick look")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose(p)
    return p


# ------------------------------------------------------------------ data
def load_set(root: Path, ids: list[str]) -> dict:
    """The inputs and targets of ``ids``: ``sdss``/``decals``/``hsc`` ``[N, H, W, 3]``
    uint8, ``truth`` ``[N, H, W, 3]`` float32 nMgy per 0.168" px (g, r, i), ``truth_rgb``
    its HSC JPEG rendering uint8, ``galaxy`` ``[N, H, W]`` bool (truth r > 1 HSC sky
    sigma), ``clipped`` ``[N, H, W]`` bool (truth or HSC JPEG >= CLIP_LEVEL)."""
    from common.errors import DataError
    from data.layout import truth_path
    from data.render import render_planes
    from data.scene import pixel_noise
    from data.surveys import get_survey
    hsc = get_survey("hsc")
    out = {s: np.stack([lc.load_rgb(root, s, g) for g in ids])
           for s in ("sdss", "decals", "hsc")}
    truths = []
    for g in ids:
        tp = truth_path(root, "test", g)
        if not tp.is_file():
            raise DataError(f"{tp}: missing; the calibration needs a simulated set with "
                            f"noise-free truth (python -m data.simulate --truth test)")
        truths.append(np.load(tp))
    out["truth"] = np.stack(truths).astype(np.float32)
    out["truth_rgb"] = np.stack([render_planes(t, hsc) for t in out["truth"]])
    out["galaxy"] = out["truth"][..., hsc.rgb_bands.index("r")] > pixel_noise(hsc, "r")
    out["clipped"] = ((out["truth_rgb"].max(-1) >= CLIP_LEVEL)
                      | (out["hsc"].max(-1) >= CLIP_LEVEL))
    return out


def predict(sampler, images: np.ndarray, batch: int = 8, bar=None):
    """Mean and std of the sampler's draws on ``images`` ``[N, H, W, 3]`` uint8:
    ``(mean, std)`` in grey levels ``[N, H, W, 3]`` (R, G, B) and ``(fmean, fstd)`` in
    nMgy per 0.168" px ``[N, H, W, 3]`` (g, r, i), all float32."""
    import tensorflow as tf

    from common.images import normalize
    from data.surveys import get_survey
    from pix2wgan.uncertainty import flux_moments, moments
    hsc = get_survey("hsc")
    parts = []
    for lo in range(0, len(images), batch):
        draws = sampler.draws(normalize(tf.convert_to_tensor(images[lo:lo + batch])))
        draws = np.asarray(draws, np.float32)
        parts.append((*moments(draws), *flux_moments(draws, hsc)))
        if bar is not None:
            bar.update(min(batch, len(images) - lo))
    return [np.concatenate([np.asarray(p[i], np.float32) for p in parts])
            for i in range(4)]


# ------------------------------------------------------------------ statistics
def evaluate(err: np.ndarray, sigma: np.ndarray, galaxy: np.ndarray, use: np.ndarray,
             val: np.ndarray) -> tuple[list[dict], dict]:
    """Rows for one model/source/target/unit. ``err``, ``sigma``: ``[N, H, W, 3]``;
    ``galaxy``, ``use``: ``[N, H, W]`` bool (region; pixels usable in this unit);
    ``val``: ``[N]`` bool (validation galaxies). The scale is fitted on validation
    pixels only; coverages and curves come from test pixels only."""
    px = lambda m: np.broadcast_to(m[..., None], err.shape)  # noqa: E731
    vmask = px(use & val[:, None, None])
    scale = cs.fit_scale(err[vmask], sigma[vmask])
    rows, curves = [], {}
    for region in REGIONS:
        reg = galaxy if region == "galaxy" else ~galaxy
        m = px(use & reg & ~val[:, None, None])
        e, s = err[m], sigma[m]
        raw, cal = cs.coverage(e, s), cs.coverage(e, s, scale=scale)
        rows.append(dict(region=region, n_px=int(m.sum()), scale=scale,
                         cov68_raw=raw[0], cov95_raw=raw[1], cov68_cal=cal[0],
                         cov95_cal=cal[1],
                         rmse=float(np.sqrt(np.mean(e.astype(np.float64) ** 2))),
                         median_sigma=float(np.median(s))))
        curves[region] = (cs.reliability(e, s), cs.reliability(e, s, scale=scale))
    return rows, curves


def meets(rows: pd.DataFrame, col: str) -> bool:
    """Whether ``col`` (a 68 % coverage) is within GOAL ± GOAL_TOL in every region."""
    return bool((np.abs(rows[col] - GOAL) <= GOAL_TOL).all())


# ------------------------------------------------------------------ outputs
def markdown(table: pd.DataFrame, header: list[str]) -> str:
    lines = header + ["", "Coverage on TEST pixels of the 68.27 % / 95.45 % Gaussian "
                          "intervals (mean ± z·σ), raw and after the one scale factor "
                          "fitted on VALIDATION pixels. Goal: the 68 % intervals cover "
                          "68 ± 5 % of test pixels in sky and galaxy.", "",
                      "| model | source | target | unit | scale | sky 68/95 raw | "
                      "sky 68/95 scaled | galaxy 68/95 raw | galaxy 68/95 scaled | "
                      "goal raw | goal scaled |", "|---|" * 1 + "---|" * 10]
    def pct(r, k):
        return f"{100 * r[f'cov68_{k}']:.1f} / {100 * r[f'cov95_{k}']:.1f}"
    for (model, source, target, unit), g in table.groupby(
            ["model", "source", "target", "unit"], sort=False):
        sky, gal = (g[g.region == r].iloc[0] for r in REGIONS)
        lines.append(
            f"| {model} | {source} | {target} | {unit} | {sky.scale:.2f} | "
            f"{pct(sky, 'raw')} | {pct(sky, 'cal')} | {pct(gal, 'raw')} | "
            f"{pct(gal, 'cal')} | {'holds' if meets(g, 'cov68_raw') else 'no'} | "
            f"{'holds' if meets(g, 'cov68_cal') else 'no'} |")
    return "\n".join(lines) + "\n"


def verdicts(table: pd.DataFrame) -> list[str]:
    """The goal, line by line: which model/source/target/unit meets it after the
    scale (and raw), with the measured 68 % coverages."""
    out = [f"goal: 68 % intervals cover 68 ± {100 * GOAL_TOL:.0f} % of test pixels in "
           f"sky and galaxy (after the validation-fitted scale)"]
    for key, g in table.groupby(["model", "source", "target", "unit"], sort=False):
        sky, gal = (g[g.region == r].iloc[0] for r in REGIONS)
        ok = meets(g, "cov68_cal")
        out.append(f"  {' / '.join(key)}: {'holds' if ok else 'does NOT hold'}: sky "
                   f"{100 * sky.cov68_cal:.1f} %, galaxy {100 * gal.cov68_cal:.1f} % "
                   f"(scale x{sky.scale:.2f}; raw {100 * sky.cov68_raw:.1f} / "
                   f"{100 * gal.cov68_raw:.1f} %"
                   f"{', holds raw' if meets(g, 'cov68_raw') else ''})")
    met = [" / ".join(k) for k, g in table.groupby(["model", "source", "target", "unit"],
                                                   sort=False) if meets(g, "cov68_cal")]
    out.append(f"goal met after scaling by: {', '.join(met) if met else 'none'}")
    return out


def reliability_figure(curves: dict, models: list[str]):
    """Rows: model x target (grey levels); columns: sky, galaxy; one colour per
    source, dashed raw, solid scaled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = dict(ensemble="#1f5fbf", dropout="#c0392b", both="#2e8b57")
    rows = [(m, t) for m in models for t in TARGETS]
    fig, axes = plt.subplots(len(rows), 2, figsize=(8, 3.4 * len(rows)), squeeze=False)
    for i, (model, target) in enumerate(rows):
        for j, region in enumerate(REGIONS):
            ax = axes[i][j]
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            for source in SOURCES:
                got = curves.get((model, source, target, "grey"))
                if got is None:
                    continue
                (nom, raw), (_, cal) = got[region]
                ax.plot(nom, raw, "--", color=colors[source], lw=1,
                        label=f"{source} raw")
                ax.plot(nom, cal, "-", color=colors[source], lw=1.5,
                        label=f"{source} scaled")
            ax.set_title(f"{MODELS[model][1]} vs {target}: {region}", fontsize=8)
            ax.set_xlabel("nominal coverage", fontsize=8)
            ax.set_ylabel("empirical coverage (test pixels)", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def flag_scores(root: Path, loaded: dict, models: list[str], ids: list[str]
                ) -> tuple[pd.DataFrame | None, list[str]]:
    """Purity and completeness of the hallucination flag (``pix2wgan.hallucination``,
    scored by ``experiments.photometry.hallucination_scores``) of each model's seed-0
    run on the TEST galaxies ``ids``: ``(table or None, markdown lines)``."""
    try:
        from experiments.photometry import hallucination_scores
    except ImportError as err:
        return None, [f"- hallucination flag: purity and completeness MISSING ({err})"]
    from pix2wgan.model import chain
    rows = []
    for model in models:
        summ, _ = hallucination_scores(root, chain(loaded[model][0][0]),
                                       source=MODELS[model][0], ids=ids)
        rows.append(dict(model=model, **summ))
    table = pd.DataFrame(rows)
    lines = ["### hallucination flag (seed-0 run, TEST galaxies)", "",
             "purity = flagged peaks with a false peak of the prediction against the "
             "truth nearby / flagged peaks; completeness = false peaks with a flagged "
             "peak nearby / false peaks (see experiments/photometry.py).", "",
             "| model | galaxies | peaks | flagged | purity | false peaks | "
             "completeness |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {MODELS[r.model][1]} | {r.galaxies} | {r.peaks} | {r.flagged} "
                     f"| {r.purity:.2f} ({r.flagged_true}/{r.flagged}) | {r.false} | "
                     f"{r.completeness:.2f} ({r.false_found}/{r.false}) |")
    return table, lines + [""]


# ------------------------------------------------------------------ driver
def run(args) -> pd.DataFrame:
    from tqdm import tqdm

    from common.io import atomic_write_text
    from pix2wgan.uncertainty import Sampler
    t0 = time.time()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"--models {args.models}: choose from {', '.join(MODELS)}")
    loaded = {m: cs.seed_chains(args.preset, args.run, m, args.seeds) for m in models}
    root = lc.ensure_data(args)
    ids = sorted(lc.test_manifest(root)["id"])
    if args.max_galaxies:
        ids = ids[:args.max_galaxies]
    val_ids, test_ids = cs.split_ids(ids)
    if not val_ids or not test_ids:
        raise ValueError(f"{root}: {len(ids)} test galaxies; need at least 2 "
                         f"(one validation, one test)")
    val = np.isin(ids, val_ids)
    data = load_set(root, ids)
    use = {"grey": np.ones(data["galaxy"].shape, bool), "nMgy": ~data["clipped"]}
    from data.render import inverse_render
    from data.surveys import get_survey
    hsc_flux = np.stack([inverse_render(x, get_survey("hsc")) for x in data["hsc"]])
    ref = {("hsc", "grey"): data["hsc"].astype(np.float32),
           ("truth", "grey"): data["truth_rgb"].astype(np.float32),
           ("hsc", "nMgy"): hsc_flux, ("truth", "nMgy"): data["truth"]}
    rows, curves, notes = [], {}, []
    for model in models:
        chains, folders = loaded[model]
        notes.append(f"{MODELS[model][1]}: {', '.join(str(f) for f in folders)}")
        samplers = {"ensemble": Sampler(chains, samples=1, seed=args.seed),
                    "dropout": Sampler(chains[:1], samples=args.samples, seed=args.seed),
                    "both": Sampler(chains, samples=args.samples, seed=args.seed)}
        n_draws = dict(ensemble=len(chains), dropout=args.samples,
                       both=len(chains) * args.samples)
        src = data[MODELS[model][0]]
        for source, sampler in samplers.items():
            bar = tqdm(total=len(ids), desc=f"{model} {source}", unit="galaxy",
                       disable=args.quiet)
            mean, std, fmean, fstd = predict(sampler, src, bar=bar)
            bar.close()
            for unit, (mu, sd) in (("grey", (mean, std)), ("nMgy", (fmean, fstd))):
                for target in TARGETS:
                    got, cur = evaluate(mu - ref[target, unit], sd, data["galaxy"],
                                        use[unit], val)
                    rows += [dict(model=model, source=source, target=target, unit=unit,
                                  draws=n_draws[source], **r) for r in got]
                    curves[model, source, target, unit] = cur
            del mean, std, fmean, fstd
    table = pd.DataFrame(rows)
    out = Path(args.results) / "calibration"
    out.mkdir(parents=True, exist_ok=True)
    header = ["# Calibration of the pseudo-HSC per-pixel uncertainty", "",
              f"- data: `{root}` (preset {args.preset}), test split halved by sorted id: "
              f"{len(val_ids)} VALIDATION galaxies (scale fit only), {len(test_ids)} "
              f"TEST galaxies (every coverage below)",
              *(f"- runs: {n}" for n in notes),
              f"- sources: ensemble = {args.seeds} seeds x 1 draw (dropout off); "
              f"dropout = seed 0 x {args.samples} draws (dropout on); both = "
              f"{args.seeds} x {args.samples}; dropout seed {args.seed}",
              "- regions: GALAXY = truth r > 1 sigma of the HSC per-pixel sky noise "
              "(data.scene.pixel_noise), SKY = the rest",
              "- targets: hsc = the real HSC JPEG; truth = the noise-free truth (grey: "
              "rendered as an HSC JPEG, no noise; nMgy: as simulated); nMgy rows leave "
              f"out pixels where the truth or HSC JPEG clips (>= {CLIP_LEVEL})",
              f"- wall time {time.time() - t0:.0f} s"]
    md = markdown(table, header)
    md += "\n```\n" + "\n".join(verdicts(table)) + "\n```\n"
    flags, flag_lines = flag_scores(root, loaded, models, test_ids)
    md += "\n" + "\n".join(flag_lines) + "\n"
    paths = [out / "calibration.csv", out / "calibration.md"]
    if flags is not None:
        paths.append(out / "hallucination_flag.csv")
        atomic_write_text(paths[-1], flags.to_csv(index=False, float_format="%.5g"))
    atomic_write_text(paths[0], table.to_csv(index=False, float_format="%.5g"))
    atomic_write_text(paths[1], md)
    paths += lc.save_figure(reliability_figure(curves, models), out, "reliability")
    print(md)
    lc.wrote(paths)
    return table


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
