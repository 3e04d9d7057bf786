"""Photometry on the pseudo-HSC FITS files, against the simulator's truth.

    python experiments/fits_check.py                  # cpu preset, 3 seeds, 100 galaxies
    python experiments/fits_check.py --samples 4 --max-galaxies 20

Converts the TEST half of the simulated test split (``calibration_stats.split_ids``)
DECaLS -> pseudo-HSC through the user's command, ``python -m pix2wgan.predict --model
<the Table 1 seed runs> --manifest CATALOG --format fits --survey decals``. It then
opens every FITS file with astropy and checks two things:

* its WCS puts the catalogue's ra, dec at the stamp centre;
* photutils aperture photometry recovers the simulated flux. The r-band flux in a
  circle of twice the Petrosian radius is taken on the FITS primary HDU and on the
  noise-free truth (``truth/<id>.npy``, nanomaggies), and the magnitude difference is
  compared with what ``experiments/physics.py`` reports for the PNG pseudo-HSC
  (``results/physics.csv``, pseudo-HSC¹ against the truth).

The FITS flux comes from inverting the 8-bit viewer stretch, so it shares that
stretch's limits. A plane clipped at 255 (a bright core) loses flux; the HSC JPEG
itself loses the same (physics.py's "truth as an 8-bit HSC JPEG" column). The flux
error ``SIGMA`` reports is the aperture sum of the per-pixel variances. Those come
from the draws, so it is the model's spread, not that loss.

Writes ``RESULTS/fits_check/``: ``catalog.csv`` (the catalogue given to predict),
``fits/`` (the FITS files, in predict's one shard folder), ``fits_check.csv`` (one row per galaxy) and
``fits_check.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from common.cli import Parser, add_verbose, positive_int
from common.io import atomic_write_text

#: Aperture radius in Petrosian radii: the Petrosian flux aperture (SDSS's 2 R_P).
APERTURE_PETRO = 2.0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/fits_check.py",
               description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", help="Luo preset whose Table 1 runs to use")
    p.add_argument("--data", help="dataset folder (default: the preset's)")
    p.add_argument("--run", help="Table 1 run base (default: table1.py's)")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="Table 1 training seeds in the ensemble")
    p.add_argument("--samples", type=positive_int, default=1,
                   help="MC-dropout draws per model")
    p.add_argument("--max-galaxies", type=positive_int, default=100,
                   help="TEST galaxies converted (sorted ids)")
    p.add_argument("--results", default="results", help="results folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar while simulating")
    add_verbose(p)
    return p


def aperture_flux(image: np.ndarray, cx: float, cy: float, radius: float) -> float:
    """photutils' sum of ``image`` ``[H, W]`` in a circle (exact pixel overlap)."""
    from photutils.aperture import CircularAperture, aperture_photometry
    table = aperture_photometry(image, CircularAperture((cx, cy), r=radius),
                                method="exact")
    return float(table["aperture_sum"][0])


def robust_spread(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (the Gaussian sigma of the bulk)."""
    x = np.asarray(x, np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def physics_reference(results: Path) -> str:
    """physics.py's mag_r of pseudo-HSC¹ against the truth (``results/physics.csv``)."""
    path = results / "physics.csv"
    if not path.is_file():
        return "not available (run python experiments/physics.py)"
    df = pd.read_csv(path)
    row = df[(df["kind"] == "pseudo1") & (df["reference"] == "truth")
             & (df["quantity"] == "mag_r") & df["source"].isna()]
    if row.empty:
        return f"no pseudo-HSC¹ mag_r row against the truth in {path}"
    r = row.iloc[0]
    return f"{r['bias']:+.3f} ± {r['scatter']:.3f} (N {int(r['n'])})"


def run(args) -> pd.DataFrame:
    from astropy.wcs.utils import skycoord_to_pixel
    from astropy.coordinates import SkyCoord

    from data.layout import image_path, read_manifest, truth_path
    from data.pseudo_fits import read_pseudo_hsc
    from data.surveys import HSC
    from experiments.calibration_stats import seed_chains, split_ids
    from experiments.luo_models import ensure_data
    from pix2wgan import predict
    from pix2wgan.survey import shard_name

    results = Path(args.results)
    out = results / "fits_check"
    root = ensure_data(args.preset, args.data, progress=not args.quiet)
    test = read_manifest(root, "test").set_index("id")
    ids = split_ids(test.index)[1][:args.max_galaxies]
    cat = pd.DataFrame({"id": ids,
                        "path": [str(image_path(root, "test", "decals", g)) for g in ids],
                        "ra": test.loc[ids, "ra"].to_numpy(),
                        "dec": test.loc[ids, "dec"].to_numpy()})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "catalog.csv", cat.to_csv(index=False))
    _, folders = seed_chains(args.preset, args.run, "pix2wgan", args.seeds)
    argv = ["--model", *map(str, folders), "--samples", str(args.samples), "--manifest",
            str(out / "catalog.csv"), "--out", str(out / "fits"), "--format", "fits",
            "--survey", "decals"]
    print("python -m pix2wgan.predict " + " ".join(argv))
    code = predict.main(argv)
    if code:
        raise ValueError(f"pix2wgan.predict exited with {code} (its error is above)")

    r_band = HSC.rgb_bands.index("r")
    rows = []
    for g in ids:
        flux, sigma, halluc, wcs, _ = read_pseudo_hsc(out / "fits" / shard_name(0, 1) / f"{g}.fits")
        size = flux.shape[0]
        centre = (size - 1) / 2.0  # 0-based pixel of the stamp centre
        x, y = skycoord_to_pixel(SkyCoord(test.at[g, "ra"], test.at[g, "dec"],
                                          unit="deg"), wcs)
        radius = APERTURE_PETRO * test.at[g, "petro_theta"] / HSC.pixel_scale
        truth = np.load(truth_path(root, "test", g))[..., r_band]
        f_fits = aperture_flux(flux[..., r_band], centre, centre, radius)
        f_true = aperture_flux(truth, centre, centre, radius)
        var = None if sigma is None else sigma[..., r_band] ** 2
        rows.append({
            "id": g, "wcs_offset_px": float(np.hypot(x - centre, y - centre)),
            "radius_px": radius, "flux_fits": f_fits, "flux_truth": f_true,
            "flux_sigma": np.nan if var is None else np.sqrt(
                aperture_flux(var, centre, centre, radius)),
            "dmag": -2.5 * np.log10(f_fits / f_true) if f_fits > 0 else np.nan,
            "halluc_px": 0 if halluc is None else int(halluc.sum())})
    df = pd.DataFrame(rows)
    atomic_write_text(out / "fits_check.csv", df.to_csv(index=False, float_format="%.6g"))
    report(df, out, argv, physics_reference(results))
    return df


def report(df: pd.DataFrame, out: Path, argv: list[str], physics: str) -> None:
    d = df["dmag"].dropna().to_numpy()
    lines = [
        "# Photometry on the pseudo-HSC FITS files",
        "",
        f"- command: `python -m pix2wgan.predict {' '.join(argv)}`",
        f"- galaxies: {len(df)} (TEST half of the simulated test split)",
        f"- WCS: largest offset of the catalogue's ra, dec from the stamp centre "
        f"{df['wcs_offset_px'].max():.2e} px",
        f"- r-band flux in a circle of {APERTURE_PETRO:g} Petrosian radii (photutils, "
        f"exact overlap), FITS against the noise-free truth: median mag difference "
        f"{np.median(d):+.3f}, robust scatter {robust_spread(d):.3f} (N {len(d)})",
        f"- physics.py, the PNG pseudo-HSC¹ against the truth: {physics}",
        f"- median aperture flux error from SIGMA (model spread): "
        f"{np.nanmedian(df['flux_sigma'] / df['flux_truth']):.2%} of the flux"
        if df["flux_sigma"].notna().any() else "- SIGMA: one draw, none written",
        f"- galaxies with HALLUC pixels: {int((df['halluc_px'] > 0).sum())}",
        "",
        "The FITS flux inverts the 8-bit viewer stretch: cores that clip at 255 lose flux "
        "(the HSC JPEG loses the same: physics.py's 'truth as an 8-bit HSC JPEG' column), "
        "and SIGMA is the model spread, which does not include that loss.",
    ]
    atomic_write_text(out / "fits_check.md", "\n".join(lines) + "\n")
    print("\n".join(lines[2:8]))
    print(f"wrote {out}/fits_check.md, fits_check.csv, catalog.csv and fits/")


def main(argv=None) -> int:
    from common.errors import run_cli
    args = build_parser().parse_args(argv)
    from common.cli import quiet_tensorflow
    quiet_tensorflow(args.verbose)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
