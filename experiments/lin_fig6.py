"""Lin et al. (2021) Fig. 6: local fluctuation patterns in Fourier space.

Each test image (r band) is convolved with the 5×5 high-pass filter of Fig. 2(g)
(VALID), 2D-Fourier transformed, and the amplitude maps are averaged over the test set
("stacked"), for the originals and for every case (ours, a-h; the regridded CFHT of
(g), (h) is not compared, as in the paper), in both surveys. No fftshift: the centre of
each map is the highest frequency, as in the paper. Each case's map is compared with the
original's by the mean |log10 ratio| over modes (0 = equal, 1 = a factor 10; ours against
(a) with a bootstrap interval over the test galaxies) and by the correlation of the log
maps; the centre/median ratio measures the "high peaks at the centre" the paper reports
for (e), (g), (h).

    python experiments/lin_fig6.py                   # cpu preset, simulated set
    python experiments/lin_fig6.py --preset paper    # §IV-B settings, downloaded sets

Trains the missing cases once (``runs/lin/PRESET/CASE``, shared with Figs. 3-5).
Writes ``results/lin_fig6/fig6.{png,pdf}``, ``fig6_summary.csv`` (per case and survey)
and ``fig6_maps.csv`` (every stacked map, long format: survey, case, ky, kx, amplitude).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from common.cli import Parser
from experiments import lin_common as lc
from experiments import scheduler
from experiments.presets import LIN_CASES

PANELS = {"sdss": ("sdss_rec", "SDSS (from CFHT)"), "cfht": ("cfht_rec", "CFHT (from SDSS)")}


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog="python experiments/lin_fig6.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    lc.add_cases_arg(p)
    p.add_argument("--band", default="r", choices=("u", "g", "r", "i", "z"),
                   help="passband (the paper shows r)")
    p.add_argument("--out", help="output folder (default results/lin_fig6, or "
                                 "results/lin_fig6-PRESET for a preset other than cpu)")
    args = p.parse_args(argv)
    lc.resolve_cases(args)
    return args


def stacked_maps(translated: dict, band: str) -> dict:
    """``{survey: {"original": map, case: map, ...}}`` of stacked high-pass |FFT|."""
    from noise_gan import evaluate as ev
    # the originals on their own grid (every case but (g), (h) has them; see below)
    first = max(translated.values(), key=lambda t: t["cfht"].shape[1])
    maps = {s: {"original": ev.stacked_fourier(first[s], band)} for s in PANELS}
    for case, t in translated.items():
        for s, (rec, _) in PANELS.items():
            if t[rec].shape[1:3] != first[s].shape[1:3]:
                continue   # (g), (h) on CFHT: regridded images, not compared (§IV-D2)
            maps[s][case] = ev.stacked_fourier(t[rec], band)
    return maps


def summarise(maps: dict) -> pd.DataFrame:
    from noise_gan import evaluate as ev
    rows = []
    for s, m in maps.items():
        o = m["original"]
        for case, a in m.items():
            rows.append({"survey": s, "case": case,
                         "log_distance_to_original": ev.fourier_distance(a, o),
                         "log_correlation_with_original": ev.fourier_log_correlation(a, o),
                         "centre_peak_ratio": ev.centre_peak_ratio(a),
                         "mean_amplitude": float(a.mean())})
    return pd.DataFrame(rows)


def long_maps(maps: dict) -> pd.DataFrame:
    frames = []
    for s, m in maps.items():
        for case, a in m.items():
            ky, kx = np.indices(a.shape)
            frames.append(pd.DataFrame({"survey": s, "case": case, "ky": ky.ravel(),
                                        "kx": kx.ravel(), "amplitude": a.ravel()}))
    return pd.concat(frames, ignore_index=True)


def plot(maps: dict, summary: pd.DataFrame, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = list(next(iter(maps.values())))
    fig, axes = plt.subplots(len(maps), len(cols), figsize=(1.9 * len(cols), 4.4),
                             squeeze=False)
    for i, (s, m) in enumerate(maps.items()):
        logs = {k: np.log10(np.maximum(v, 1e-6 * max(x.max() for x in m.values())))
                for k, v in m.items()}
        lo = min(np.percentile(v, 1) for v in logs.values())
        hi = max(v.max() for v in logs.values())
        for j, case in enumerate(cols):
            ax = axes[i, j]
            if case not in m:   # (g), (h) on CFHT: regridded, not compared (§IV-D2)
                ax.set_axis_off()
                ax.set_title(f"{lc.CASE_LABELS[case]}\nregridded: not compared", fontsize=6)
                continue
            im = ax.imshow(logs[case], origin="lower", cmap="viridis", vmin=lo, vmax=hi)
            label = "Original" if case == "original" else lc.CASE_LABELS[case]
            if case != "original":
                r = summary[(summary.survey == s) & (summary.case == case)].iloc[0]
                label += f"\nd={r.log_distance_to_original:.2f} ρ={r.log_correlation_with_original:.2f}"
            ax.set_title(f"{label}", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(PANELS[s][1], fontsize=7)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.8, pad=0.01,
                     label="log10 stacked |FFT|")
    fig.suptitle(title, fontsize=8)
    return fig


#: Bootstrap resamples of the test galaxies behind :func:`distance_gap`.
N_BOOT = 300


def distance_gap(translated: dict, band: str, survey: str, n_boot: int = N_BOOT,
                 seed: int = 0) -> tuple[float, float, float]:
    """``d(ours) − d(a)`` on ``survey``'s stacked maps, with its 95 % bootstrap interval
    over the test galaxies: ``(gap, low, high)``; < 0 = ours closer to the original.

    Each resample draws the galaxies with replacement and restacks the original's, ours'
    and (a)'s maps over the same draw (the spread of which galaxies were tested; the
    spread over training seeds is not in it).
    """
    from noise_gan import evaluate as ev
    rec = PANELS[survey][0]
    maps = [ev.fourier_amplitude_maps(x, band) for x in
            (translated["ours"][survey], translated["ours"][rec], translated["a"][rec])]

    def gap(idx):
        o, ours, a = (m[idx].mean(0) for m in maps)
        return ev.fourier_distance(ours, o) - ev.fourier_distance(a, o)
    n = len(maps[0])
    rng = np.random.default_rng(seed)
    boots = [gap(rng.integers(0, n, n)) for _ in range(n_boot)]
    low, high = np.quantile(boots, [0.025, 0.975])
    return float(gap(np.arange(n))), float(low), float(high)


def resembles(summary: pd.DataFrame) -> dict:
    """Fig. 6's done-criterion "ours resembles the original more than case (a)".

    ``summary``: :func:`summarise`'s rows. Returns ``{survey: (by_d, by_rho)}`` (plain
    bools) for each survey with both ours and (a): ``by_d`` = d(ours) < d(a), d being
    ``log_distance_to_original`` (mean |log10 ratio| to the original's map, >= 0, 0 =
    equal); ``by_rho`` = rho(ours) > rho(a), rho being ``log_correlation_with_original``
    (correlation of the log maps, in [-1, 1], blind to an overall amplitude factor;
    NaN compares False).
    """
    d = summary.set_index(["survey", "case"]).log_distance_to_original
    rho = summary.set_index(["survey", "case"]).log_correlation_with_original
    return {s: (bool(d[s, "ours"] < d[s, "a"]), bool(rho[s, "ours"] > rho[s, "a"]))
            for s in PANELS if (s, "ours") in d and (s, "a") in d}


def report(summary: pd.DataFrame, gaps: dict | None = None) -> None:
    print("\nFig. 6: stacked high-pass Fourier maps vs the original's "
          "(d = mean |log10 ratio|, lower = closer; rho = correlation of log maps)")
    print(f"{'case':24s} {'survey':6s} {'d':>6s} {'rho':>6s} {'centre/median':>13s}")
    for r in summary[summary.case != "original"].itertuples():
        print(f"{lc.CASE_LABELS[r.case]:24s} {r.survey:6s} {r.log_distance_to_original:6.3f} "
              f"{r.log_correlation_with_original:6.3f} {r.centre_peak_ratio:13.2f}")
    orig = summary[summary.case == "original"].set_index("survey").centre_peak_ratio
    print("original centre/median: " + ", ".join(f"{s.upper()} {v:.2f}"
                                                  for s, v in orig.items()))
    print(f"paper (Fig. 6, §IV-D2): {lc.PAPER['fig6']}")
    d = summary.set_index(["survey", "case"]).log_distance_to_original
    rho = summary.set_index(["survey", "case"]).log_correlation_with_original
    verdict = resembles(summary)
    for s in PANELS:
        if s in verdict:
            by_d, by_rho = verdict[s]
            print(f"done-criterion 'ours resembles the original more than case (a)' on "
                  f"{s.upper()}: {'holds' if by_d else 'does NOT hold'} "
                  f"(d ours {d[s, 'ours']:.3f} vs (a) {d[s, 'a']:.3f}); by the pattern "
                  f"alone (rho, blind to an overall amplitude factor): "
                  f"{'holds' if by_rho else 'does NOT hold'} "
                  f"(rho ours {rho[s, 'ours']:.3f} vs (a) {rho[s, 'a']:.3f})")
            if gaps and s in gaps:
                g, lo, hi = gaps[s]
                word = ("holds" if hi < 0 else "does NOT hold" if lo > 0 else "within noise")
                print(f"  {s.upper()}: d(ours) - d(a) = {g:+.3f}, 95% bootstrap interval over "
                      f"the test galaxies [{lo:+.3f}, {hi:+.3f}] -> {word} beyond the "
                      f"galaxy sample's noise (one training seed)")
        others = [c for c in LIN_CASES if c != "ours" and (s, c) in d]
        if (s, "ours") in d and others:
            best = min(others, key=lambda c: d[s, c])
            print(f"  {s.upper()}: closest case other than ours: {best} "
                  f"(d {d[s, best]:.3f}); ours is "
                  f"{'the closest' if d[s, 'ours'] <= d[s, best] else 'not the closest'}")


def run(args) -> pd.DataFrame:
    t0 = time.time()
    root, cache = lc.start(args, "Fig. 6")
    translated = scheduler.translate_cases(args, root, cache)
    lc.check_band(translated, args.band)
    t_train = time.time() - t0
    maps = stacked_maps(translated, args.band)
    summary = summarise(maps)
    have = {(r.survey, r.case) for r in summary.itertuples()}
    gaps = {s: distance_gap(translated, args.band, s) for s in PANELS
            if {(s, "ours"), (s, "a")} <= have}
    for s, (g, lo, hi) in gaps.items():       # on ours' row: d(ours) - d(a), interval
        row = (summary.survey == s) & (summary.case == "ours")
        summary.loc[row, ["gap_to_a", "gap_to_a_low", "gap_to_a_high"]] = (g, lo, hi)
    out = lc.out_dir(args, "lin_fig6")
    lc.save_csv(summary, out, "fig6_summary.csv")
    lc.save_csv(long_maps(maps), out, "fig6_maps.csv")
    n = len(next(iter(translated.values()))["id"])
    fig = plot(maps, summary, f"Lin et al. Fig. 6 reproduced ({args.preset} preset, "
                              f"{args.band} band, {n} test galaxies; no shift: centre = "
                              f"highest frequency)")
    paths = lc.save_figure(fig, out, "fig6")
    report(summary, gaps)
    print(f"wall time {time.time() - t0:.0f} s (training/reuse {t_train:.0f} s)")
    print(f"wrote {', '.join(str(p) for p in paths)}, {out / 'fig6_summary.csv'}, "
          f"{out / 'fig6_maps.csv'}")
    return summary


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    args = parse_args(argv)
    quiet_tensorflow(args.verbose)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
