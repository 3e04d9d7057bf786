"""Lin et al. (2021) Fig. 4: one galaxy's z band translated by every case.

Row "SDSS -> CFHT": the SDSS input, the CFHT original (target), then the CFHT image
reconstructed by ours and cases (a)-(h) ((g), (h): on CFHT regridded to 64 px, compared
with the regridded original); row "CFHT -> SDSS" the same the other way. The band is z,
the paper's, when the cases were trained on it, else their first band (the cpu preset
trains r only).
Stretched units, one colour scale per row (from the target's 0.5-99.8th percentiles).
The galaxy is the brightest paired test galaxy in SDSS r unless ``--galaxy ID`` is
given. Each reconstruction's summed |difference| to the target and the rms of its
high-pass-filtered image (Fig. 2(g) filter: the "regular fluctuations mimicking noise"
of the paper, §IV-C) go to the CSV.

    python experiments/lin_fig4.py                    # cpu preset, simulated set
    python experiments/lin_fig4.py --galaxy ID --band r

Trains the missing cases once (``runs/lin/PRESET/CASE``, shared with Figs. 3, 5, 6).
Writes ``results/lin_fig4/fig4.{png,pdf}`` and ``fig4.csv``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from common.cli import Parser
from experiments import lin_common as lc
from experiments import scheduler

#: direction -> (input key, target key, reconstruction key, title)
ROWS = {"sdss_to_cfht": ("sdss", "cfht", "cfht_rec", "SDSS -> CFHT"),
        "cfht_to_sdss": ("cfht", "sdss", "sdss_rec", "CFHT -> SDSS")}


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog="python experiments/lin_fig4.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    lc.add_cases_arg(p)
    p.add_argument("--band", choices=("u", "g", "r", "i", "z"),
                   help="passband (default: z, the paper's, when the cases were trained "
                        "on it, else the first band they were trained on)")
    p.add_argument("--out", help="output folder (default results/lin_fig4, or "
                                 "results/lin_fig4-PRESET for a preset other than cpu)")
    args = p.parse_args(argv)
    lc.resolve_cases(args)
    return args


def default_band(translated: dict) -> str:
    """z (the paper's Fig. 4) when the first case was trained on it, else its first band."""
    have = lc.bands_of(next(iter(translated.values())))
    return "z" if "z" in have else have[0]


def hp_rms(img, band: str) -> float:
    """rms of the Fig. 2(g) high-pass-filtered band of one ``[H, W, C]`` image."""
    from noise_gan import evaluate as ev
    return float(np.sqrt(np.mean(ev.highpass_band(img[None], band) ** 2)))


def table(translated: dict, i: int, band: str) -> pd.DataFrame:
    from noise_gan import evaluate as ev
    rows = []
    first = next(iter(translated.values()))
    for direction, (src, tgt, rec, _) in ROWS.items():
        target = first[tgt][i]
        rows.append({"direction": direction, "case": "original", "id": str(first["id"][i]),
                     "band": band, "flux_difference": 0.0,
                     "summed_abs_flux": float(ev.total_flux(target[None], band)[0]),
                     "highpass_rms": hp_rms(target, band)})
        for case, t in translated.items():
            img, own = t[rec][i], t[tgt][i]     # own: regridded for (g), (h) on CFHT
            rows.append({"direction": direction, "case": case, "id": str(t["id"][i]),
                         "band": band,
                         "flux_difference": float(ev.flux_difference(img[None], own[None],
                                                                     band)[0]),
                         "summed_abs_flux": float(ev.total_flux(img[None], band)[0]),
                         "highpass_rms": hp_rms(img, band)})
    return pd.DataFrame(rows)


def plot(translated: dict, i: int, band: str, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from noise_gan import evaluate as ev
    b = ev.band_index(band)
    first = next(iter(translated.values()))
    cols = 2 + len(translated)
    fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols, 3.9), squeeze=False)
    for r, (src, tgt, rec, name) in enumerate(ROWS.values()):
        target = first[tgt][i, ..., b]
        lo, hi = np.percentile(target, 0.5), np.percentile(target, 99.8)
        s = first[src][i, ..., b]
        panels = [(f"input {src.upper()}", s, np.percentile(s, 0.5), np.percentile(s, 99.8)),
                  (f"original {tgt.upper()}", target, lo, hi)]
        panels += [(lc.CASE_LABELS[c], t[rec][i, ..., b], lo, hi)
                   for c, t in translated.items()]
        for j, (label, img, vmin, vmax) in enumerate(panels):
            ax = axes[r, j]
            ax.imshow(img, origin="lower", cmap="magma", vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=6)
        axes[r, 0].set_ylabel(name, fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def run(args) -> pd.DataFrame:
    t0 = time.time()
    root, cache = lc.start(args, "Fig. 4")
    translated = scheduler.translate_cases(args, root, cache)
    args.band = lc.check_band(translated, args.band or default_band(translated))
    first = next(iter(translated.values()))
    i = lc.pick_galaxies(first["id"], first["sdss"], 1, args.galaxy[:1] if args.galaxy
                         else None)[0]
    df = table(translated, i, args.band)
    out = lc.out_dir(args, "lin_fig4")
    lc.save_csv(df, out, "fig4.csv")
    gid = first["id"][i]
    fig = plot(translated, i, args.band,
               f"Lin et al. Fig. 4 reproduced: galaxy {gid}, {args.band} band, stretched "
               f"units ({args.preset} preset; rule: brightest in SDSS r unless --galaxy)")
    paths = lc.save_figure(fig, out, "fig4")
    print(f"\nFig. 4: galaxy {gid} ({'--galaxy' if args.galaxy else 'brightest in SDSS r'}), "
          f"{args.band} band")
    print(f"{'case':24s} {'direction':13s} {'sum|rec-orig|':>13s} {'highpass rms':>12s}")
    for r in df.itertuples():
        label = "original" if r.case == "original" else lc.CASE_LABELS[r.case]
        print(f"{label:24s} {r.direction:13s} {r.flux_difference:13.4g} {r.highpass_rms:12.4g}")
    print("paper (Fig. 4, §IV-C): (a) conveys identity but misses the unpaired "
          "distribution; (b), (g) vary widely in the half cycle; (c) closer but still "
          "off; (a)-(e), (g) show regular noise-like fluctuations instead of noise; "
          "(h) keeps some stochasticity but not the shape or the noise pattern")
    print(f"wall time {time.time() - t0:.0f} s")
    print(f"wrote {', '.join(str(p) for p in paths)}, {out / 'fig4.csv'}")
    return df


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    args = parse_args(argv)
    quiet_tensorflow(args.verbose)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
