"""Lin et al. (2021) Fig. 3: our model's translations of paired test galaxies.

Upper panel: r- and z-band images of two galaxies, each survey's original next to its
reconstruction from the other survey (SDSS from CFHT, CFHT from SDSS), in the
stretched units the networks work in (negative values: background-subtracted sky).
Lower panel: more galaxies as Lupton et al. (2004) RGB composites (i, r, g; from
nanomaggies, ``noise_gan.evaluate.lupton_rgb``). Reconstructions carry a fresh draw of
the Noise Emulators' noise, so their noise amplitude need not match the original's
(Fig. 3 caption).

Galaxies, unless ``--galaxy ID`` (repeatable) names them: the upper panel shows the
two brightest paired test galaxies in SDSS r (largest summed stretched flux); the lower
panel the galaxies at the 20th, 40th, 60th and 80th percentiles of that flux among the
others.

    python experiments/lin_fig3.py                   # cpu preset, simulated set
    python experiments/lin_fig3.py --galaxy ID1 --galaxy ID2

Trains "ours" once (``runs/lin/PRESET/ours``, shared with Figs. 4-6). Writes
``results/lin_fig3/fig3.{png,pdf}``, ``fig3.csv`` (per shown image: flux, range and
flux difference to the original) and ``fig3_pixels.npz`` (the shown arrays).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from common.cli import Parser
from experiments import lin_common as lc
from experiments import scheduler

#: panel -> (array key, original key, title, pixel scale ")
COLUMNS = {"sdss": ("sdss", "sdss", "SDSS original", 0.396),
           "sdss_rec": ("sdss_rec", "sdss", "SDSS from CFHT", 0.396),
           "cfht": ("cfht", "cfht", "CFHT original", 0.187),
           "cfht_rec": ("cfht_rec", "cfht", "CFHT from SDSS", 0.187)}
BANDS = ("r", "z")          # the upper panel's bands (the paper's)
RGB_BANDS = ("i", "r", "g")  # the lower panel's colours
RGB_QUANTILES = (0.2, 0.4, 0.6, 0.8)


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog="python experiments/lin_fig3.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    p.add_argument("--n-rgb", type=int, default=len(RGB_QUANTILES),
                   help="galaxies in the RGB panel (at evenly spaced flux quantiles)")
    p.add_argument("--out", help="output folder (default results/lin_fig3, or "
                                 "results/lin_fig3-PRESET for a preset other than cpu)")
    return p.parse_args(argv)


def choose(t: dict, chosen, n_rgb: int) -> tuple[list[int], list[int]]:
    """``(upper, lower)`` galaxy indices by the rule in the module docstring; with
    ``--galaxy``: the first two named go up, the rest down (then the rule fills up)."""
    from noise_gan import evaluate as ev
    if chosen:
        idx = lc.pick_galaxies(t["id"], t["sdss"], len(chosen), chosen)
        upper, lower = idx[:2], idx[2:]
        if lower:
            return upper, lower
    else:
        upper = lc.pick_galaxies(t["id"], t["sdss"], 2)
    rest = [i for i in np.argsort(ev.total_flux(t["sdss"], "r"), kind="stable")
            if i not in upper]
    qs = np.linspace(0.2, 0.8, n_rgb) if n_rgb > 1 else [0.5]
    lower = list(dict.fromkeys(int(rest[int(round(q * (len(rest) - 1)))]) for q in qs)) \
        if rest else []
    return upper, lower


def shown_bands(t: dict) -> tuple[list[str], bool]:
    """``(bands of the upper panel, whether the RGB panel can be drawn)``: the paper's
    r and z, and RGB = (i, r, g), as far as the case was trained on them (``--band-set``)."""
    have = lc.bands_of(t)
    return [b for b in BANDS if b in have], all(b in have for b in RGB_BANDS)


def table(t: dict, upper, lower) -> pd.DataFrame:
    from noise_gan import evaluate as ev
    rows = []
    bands, _ = shown_bands(t)
    for role, idx in (("bands", upper), ("rgb", lower)):
        for i in idx:
            for band in ev.BANDS if role == "rgb" else bands:
                for panel, (key, okey, _, _) in COLUMNS.items():
                    img = t[key][i:i + 1]
                    plane = img[0, ..., ev.band_index(band)]
                    rows.append({"panel_group": role, "id": str(t["id"][i]), "band": band,
                                 "panel": panel,
                                 "summed_abs_flux": float(ev.total_flux(img, band)[0]),
                                 "flux_difference_to_original":
                                     float(ev.flux_difference(img, t[okey][i:i + 1], band)[0]),
                                 "min": float(plane.min()), "max": float(plane.max())})
    return pd.DataFrame(rows)


def plot(t: dict, upper, lower, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from data.lin_pipeline import unstretch
    from noise_gan import evaluate as ev
    bands, _ = shown_bands(t)
    n_up, n_low = len(upper) * len(bands), len(lower)
    fig = plt.figure(figsize=(8.4, 2.0 * (n_up + n_low) + 0.6))
    if lower:
        top, bottom = fig.subfigures(2, 1, height_ratios=[max(n_up, 1), n_low])
    else:                                   # no RGB panel (a run without i, r, g)
        top, bottom = fig.subfigures(1, 1), None
    axes = top.subplots(max(n_up, 1), len(COLUMNS), squeeze=False)
    row = 0
    for i in upper:
        for band in bands:
            b = ev.band_index(band)
            for survey in ("sdss", "cfht"):        # one colour scale per survey pair
                o = t[survey][i, ..., b]
                lo, hi = np.percentile(o, 0.5), np.percentile(o, 99.8)
                for j, (panel, (key, _, name, _)) in enumerate(COLUMNS.items()):
                    if not panel.startswith(survey):
                        continue
                    ax = axes[row, j]
                    im = ax.imshow(t[key][i, ..., b], origin="lower", cmap="magma",
                                   vmin=lo, vmax=hi)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.set_title(f"{name}, {band}\n{t['id'][i]}", fontsize=6)
                    cb = top.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                    cb.ax.tick_params(labelsize=5)
            row += 1
    top.suptitle(f"{' and '.join(bands)} band(s), stretched units sign(I)(sqrt(|I|+1)-1)", fontsize=7)
    if bottom is None:
        fig.suptitle(title, fontsize=8, y=1.04)
        return fig
    axes = bottom.subplots(n_low, len(COLUMNS), squeeze=False)
    for r, i in enumerate(lower):
        for j, (key, _, name, scale) in enumerate(COLUMNS.values()):
            ax = axes[r, j]
            ax.imshow(ev.lupton_rgb(unstretch(t[key][i]), pixel_scale=scale),
                      origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}\n{t['id'][i]}", fontsize=6)
    bottom.suptitle(f"RGB = (i, r, g), Lupton et al. 2004 asinh (stretch "
                    f"{ev.LUPTON_STRETCH} nMgy per 0.396\" pixel, Q {ev.LUPTON_Q})",
                    fontsize=7)
    fig.suptitle(title, fontsize=8, y=1.0)
    return fig


def run(args) -> pd.DataFrame:
    t0 = time.time()
    root, cache = lc.start(args, "Fig. 3")
    run_dir = scheduler.ensure_case("ours", args.preset, root, args.runs, not args.quiet)
    t = lc.translate_test_set(run_dir, root, args.seed, cache)
    upper, lower = choose(t, args.galaxy, args.n_rgb)
    bands, rgb = shown_bands(t)
    if not rgb:
        print(f"the case was trained on band(s) {lc.bands_of(t)} only: the upper panel shows "
              f"{', '.join(bands) or 'no band'} of r, z; the RGB panel (i, r, g) is left out")
        lower = []
    df = table(t, upper, lower)
    out = lc.out_dir(args, "lin_fig3")
    lc.save_csv(df, out, "fig3.csv")
    shown = sorted(set(upper) | set(lower))
    pix = {f"{k}": t[k][shown] for k in ("sdss", "sdss_rec", "cfht", "cfht_rec")}
    lc.save_npz(out / "fig3_pixels.npz", {"id": t["id"][shown], **pix})
    fig = plot(t, upper, lower, f"Lin et al. Fig. 3 reproduced: ours ({args.preset} preset)")
    paths = lc.save_figure(fig, out, "fig3")
    print("\nFig. 3: upper panel (rule: two brightest in SDSS r unless --galaxy): "
          + ", ".join(str(t["id"][i]) for i in upper)
          + "; RGB panel (20-80th flux percentiles): "
          + ", ".join(str(t["id"][i]) for i in lower))
    up = df[(df.panel_group == "bands") & df.panel.str.endswith("_rec")]
    for r in up.itertuples():
        print(f"  {r.id} {r.band} {r.panel}: sum|rec - orig| = "
              f"{r.flux_difference_to_original:.4g} (sum|rec| {r.summed_abs_flux:.4g})")
    print("paper (Fig. 3): good visual agreement with the paired real images; "
          "well-behaved regenerated noise background; main loss: small-scale non-noise "
          "structure (spots, faint arms) in reconstructed CFHT images")
    print(f"wall time {time.time() - t0:.0f} s")
    print(f"wrote {', '.join(str(p) for p in paths)}, {out / 'fig3.csv'}, "
          f"{out / 'fig3_pixels.npz'}")
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
