"""Luo et al. Fig. 1: the same galaxies seen by SDSS (top), DECaLS and HSC (bottom).

    python experiments/figure1.py                 # cpu preset's simulated set
    python experiments/figure1.py --data DIR      # any dataset folder (e.g. real downloads)
    python experiments/figure1.py --galaxy ID --galaxy ID2

Three test galaxies chosen by :data:`experiments.luo_common.TRIPLETS` (a spiral, a
disk without arms, a bulge-dominated galaxy; the largest clean one of each), or the
``--galaxy`` ids. No model is involved. Writes ``results/figure1.png`` / ``.pdf`` and
``results/figure1_galaxies.csv`` (``figure1_custom*`` with ``--galaxy``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.cli import Parser
from experiments import luo_common as lc

PAPER = ("Fig. 1: three galaxies (columns), each seen by SDSS (top), DECaLS (middle) "
         "and HSC (bottom), viewer JPEGs at 0.168\"/px; structure and extent grow with "
         "depth and resolution, outer structure hard to see in SDSS.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure1.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p, models=False)
    return p


def run(args) -> list[Path]:
    root = lc.ensure_data(args)
    df = lc.test_manifest(root)
    chosen = lc.chosen_or_given(args, df, lc.select_triplets)
    name = "figure1_custom" if args.galaxy else "figure1"
    ids = [g for g, _ in chosen]
    rows = [(lc.SURVEY_LABEL[s], [lc.load_rgb(root, s, g) for g in ids])
            for s in ("sdss", "decals", "hsc")]
    fig = lc.panel_grid(rows, [lc.col_title(g, w) for g, w in chosen],
                        "Fig. 1 (Luo et al.): SDSS / DECaLS / HSC of the same galaxies")
    paths = lc.save_figure(fig, args.results, name)
    recs = [dict(figure=name, column=j + 1, id=g, reason=w)
            for j, (g, w) in enumerate(chosen)]
    # background grey-level noise of each row: the depth ordering the caption describes
    sig = {s: lc.background_sigma(np.stack(imgs)) for s, imgs in
           zip(("sdss", "decals", "hsc"), (r[1] for r in rows))}
    for r in recs:
        r.update({f"bg_sigma_{s}": v for s, v in sig.items()})
    paths.append(lc.write_selection(args.results, name, recs))
    lc.report(PAPER, recs, paths, lines=[
        "ours: background noise (grey levels, border MAD): "
        + ", ".join(f"{lc.SURVEY_LABEL[s]} {v:.1f}" for s, v in sig.items())])
    return paths


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
