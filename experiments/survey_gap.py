"""The survey gap before any model: DECaLS-HSC and SDSS-HSC similarity (Luo et al. Table 1).

Compares the untransformed input JPEGs of the test split with the HSC JPEGs of the
same galaxies (RMSE, PSNR with MAX = 255, SSIM; per image on [0, 255], then averaged),
and prints them beside the paper's rows "DECaLS - HSC" and "SDSS - HSC". On a simulated
set this checks that the simulator reproduces the size of the gap the models must close.

    python experiments/survey_gap.py                  # default simulated set (made if missing)
    python experiments/survey_gap.py --data DIR       # any dataset folder, real or simulated

Writes ``results/survey_gap.csv`` and ``results/survey_gap.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# common.metrics (SSIM) imports TensorFlow: imported where it is used, so --help stays
# free of it.
from common.cli import Parser, add_verbose, positive_int
from common.io import atomic_write
from common.paper import TABLE1
from common.errors import DataError
from data import layout, render
from data.sim_luo import SimConfig, ensure_simulated
from experiments.luo_common import background_sigma

#: Luo et al. Table 1, untransformed pairs (RMSE, PSNR dB, SSIM).
PAPER = {s: tuple(TABLE1[pair][m] for m in ("rmse", "psnr", "ssim"))
         for s, pair in (("decals", "DECaLS–HSC"), ("sdss", "SDSS–HSC"))}
RESULTS = layout.REPO_ROOT / "results"


def load_split(root: Path, survey: str, ids, split: str = "test") -> np.ndarray:
    """``[N, H, W, 3]`` uint8 JPEGs of one survey for the given ids."""
    return np.stack([render.read_jpeg(layout.image_path(root, split, survey, i)) for i in ids])


def survey_gap(root: Path, split: str = "test", batch: int = 100) -> pd.DataFrame:
    """Per-pair mean RMSE / PSNR / SSIM of sdss and decals against hsc on ``split``."""
    from common import metrics
    ids = layout.read_manifest(root, split)["id"].tolist()
    if not ids:
        raise DataError(f"{layout.manifest_path(root)} has no {split!r} rows")
    vals = {s: {k: [] for k in ("rmse", "psnr", "ssim")} for s in PAPER}
    bg = {s: [] for s in ("sdss", "decals", "hsc")}
    for lo in range(0, len(ids), batch):
        chunk = ids[lo:lo + batch]
        hsc = load_split(root, "hsc", chunk, split)
        bg["hsc"].append(background_sigma(hsc))
        for s in PAPER:
            x = load_split(root, s, chunk, split)
            bg[s].append(background_sigma(x))
            vals[s]["rmse"].append(metrics.rmse(x, hsc))
            vals[s]["psnr"].append(metrics.psnr(x, hsc))
            vals[s]["ssim"].append(metrics.ssim(x, hsc))
    rows = []
    for s in ("sdss", "decals"):
        v = {k: float(np.mean(np.concatenate(a))) for k, a in vals[s].items()}
        pr, pp, ps = PAPER[s]
        rows.append({"pair": f"{s}-hsc", "n": len(ids),
                     "rmse": v["rmse"], "paper_rmse": pr,
                     "psnr": v["psnr"], "paper_psnr": pp,
                     "ssim": v["ssim"], "paper_ssim": ps,
                     "bg_sigma_input": float(np.mean(bg[s])),
                     "bg_sigma_hsc": float(np.mean(bg["hsc"]))})
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, root: Path) -> str:
    lines = [f"# Survey gap on `{root}` ({int(df.n.iloc[0])} test galaxies)", "",
             "Untransformed input vs HSC, per image on [0, 255], mean over the test split; "
             "paper = Luo et al. Table 1.", "",
             "| pair | RMSE | paper | PSNR (dB) | paper | SSIM | paper | bg sigma in / hsc |",
             "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.pair} | {r.rmse:.2f} | {r.paper_rmse:.2f} | {r.psnr:.2f} | "
                     f"{r.paper_psnr:.2f} | {r.ssim:.3f} | {r.paper_ssim:.2f} | "
                     f"{r.bg_sigma_input:.1f} / {r.bg_sigma_hsc:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    ap = Parser(prog="python experiments/survey_gap.py",
                description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="dataset folder (default: the simulated default set, made if missing)")
    ap.add_argument("--n-train", type=positive_int, default=SimConfig.n_train,
                    help="if simulating")
    ap.add_argument("--n-test", type=positive_int, default=SimConfig.n_test,
                    help="if simulating")
    ap.add_argument("--seed", type=int, default=0, help="if simulating")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="if simulating (default: one per CPU)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    add_verbose(ap)
    return ap.parse_args(argv)


def run(a: argparse.Namespace) -> pd.DataFrame:
    """Score the survey gap of ``a.data`` (or the simulated default set) and write
    ``a.out/survey_gap.{csv,md}``; returns the table."""
    root = a.data or ensure_simulated(SimConfig(n_train=a.n_train, n_test=a.n_test,
                                                seed=a.seed, workers=a.workers))
    df = survey_gap(root)
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write(a.out / "survey_gap.csv",
                 lambda t: df.to_csv(t, index=False, float_format="%.4f"))
    md = to_markdown(df, root)
    atomic_write(a.out / "survey_gap.md", lambda t: t.write_text(md))
    print(md)
    print(f"wrote {a.out / 'survey_gap.csv'}, {a.out / 'survey_gap.md'}")
    return df


def main(argv=None) -> int:
    """Exit code 0, or 2 with one ``error:`` line (a missing or empty dataset...)."""
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    a = parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: run(a))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
