"""Paired and unpaired SDSS/CFHT sets for Lin et al. (2021) from the downloaded FITS pools.

``python -m data.download pairs --sdss ROOT --cfht ROOT --out ROOT`` reads the ``ok``
galaxies of ``ROOT/pool/sdss_state.csv`` and ``ROOT/pool/cfht_state.csv`` (written by
``sdss-fits`` / ``cfht-fits``, ``data.sdss`` / ``data.cfht``) and, as in the paper's §IV.A:

1. cross-matches them on ra/dec within ``--match-arcsec`` (1"), one to one, closest
   pairs first;
2. keeps a candidate pair only if the brightest pixels of the two cubes (band
   ``--peak-band``, default r) lie within ``--peak-arcsec`` (1") of each other on the sky,
   each mapped through its own cube's WCS ("aligned peak positions");
3. shuffles the pairs (``--seed``) and takes ``--n-test`` (2,500) as ``paired_test`` and
   ``--n-train`` (2,557) as ``paired_train``; with fewer pairs both shrink in proportion
   (a warning says so); pairs beyond the two counts, like every other galaxy, go to
   ``unpaired``.

Files are hard links to the pool files (copies where links are impossible), so the sets
cost no extra disk::

    ROOT/paired_{train,test}/{sdss,cfht}/<sdss id>.fits   both members under the SDSS id
    ROOT/unpaired/sdss/<sdss id>.fits, ROOT/unpaired/cfht/<cfht id>.fits
    ROOT/lin_manifest.csv    id, survey, subset, source_id, ra, dec, match_sep_arcsec,
                             peak_sep_arcsec (one row per file; source_id = the
                             survey's own id; the separations are NaN if no candidate)
    ROOT/lin_summary.md      counts per step

A rerun with the same pools and flags gives the same sets; files no longer assigned to a
set are removed from it (only ``*.fits`` inside ``ROOT/<set>/{sdss,cfht}/``).
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from common.io import atomic_path, atomic_write_text
from data import surveys
from data.cube import BANDS, POOL, default_out, read_cube
from data.pool import read_state, state_path
from data.layout import LIN_MANIFEST, fits_path

SETS = ("paired_train", "paired_test", "unpaired")
SUMMARY = "lin_summary.md"


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """``[N, 3]`` unit vectors of ra/dec in degrees."""
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation in arcsec (inputs in degrees, broadcast)."""
    d = np.linalg.norm(_unit(np.asarray(ra1, float), np.asarray(dec1, float))
                       - _unit(np.asarray(ra2, float), np.asarray(dec2, float)), axis=-1)
    return np.degrees(2.0 * np.arcsin(np.clip(d / 2.0, 0.0, 1.0))) * 3600.0


def crossmatch(ra1, dec1, ra2, dec2, radius_arcsec: float) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i, j, sep_arcsec)`` within ``radius_arcsec`` between
    catalogue 1 and 2, taken greedily closest first (each index used once)."""
    from scipy.spatial import cKDTree

    if len(ra1) == 0 or len(ra2) == 0:
        return []
    a, b = _unit(np.asarray(ra1, float), np.asarray(dec1, float)), \
        _unit(np.asarray(ra2, float), np.asarray(dec2, float))
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    cands = []
    for i, js in enumerate(cKDTree(b).query_ball_point(a, r=chord)):
        for j in js:
            cands.append((float(separation_arcsec(ra1[i], dec1[i], ra2[j], dec2[j])), i, j))
    cands.sort()
    used1, used2, out = set(), set(), []
    for sep, i, j in cands:
        if sep <= radius_arcsec and i not in used1 and j not in used2:
            used1.add(i)
            used2.add(j)
            out.append((i, j, sep))
    return out


def peak_sky(path: Path, band: str) -> tuple[float, float]:
    """ra, dec (deg) of the brightest pixel of ``band`` in the cube at ``path``."""
    cube, wcs, _ = read_cube(path)
    plane = cube[BANDS.index(band)]
    y, x = np.unravel_index(int(np.argmax(plane)), plane.shape)
    ra, dec = wcs.pixel_to_world_values(float(x), float(y))
    return float(ra), float(dec)


def _pool(root: Path, survey: str) -> pd.DataFrame:
    """``ok`` rows of a survey's download state whose cube exists, sorted by id."""
    st = read_state(state_path(root, survey))
    st = st[st["status"] == "ok"].copy()
    st["path"] = [fits_path(root, POOL, survey, g) for g in st["id"]]
    st = st[[p.is_file() for p in st["path"]]]
    return st.sort_values("id").reset_index(drop=True)


def _place(src: Path, dst: Path) -> None:
    """Make ``dst`` a hard link to (or, failing that, a copy of) ``src``, atomically;
    nothing is done if it already is one."""
    if dst.exists():
        try:
            if os.path.samefile(src, dst) or filecmp.cmp(src, dst, shallow=True):
                return
        except OSError:
            pass
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def make_sets(sdss_root: Path | str, cfht_root: Path | str, out: Path | str, *,
              n_train: int = surveys.LIN_N_PAIRED_TRAIN,
              n_test: int = surveys.LIN_N_PAIRED_TEST,
              match_arcsec: float = surveys.LIN_MATCH_ARCSEC, peak_arcsec: float = 1.0,
              peak_band: str = "r", seed: int = 0) -> dict:
    """Build ``OUT/{paired_train,paired_test,unpaired}/{sdss,cfht}/`` and the manifest
    (see the module docstring); returns the counts written to ``OUT/lin_summary.md``."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"--n-train {n_train} and --n-test {n_test} must be >= 0")
    if peak_band not in BANDS:
        raise ValueError(f"--peak-band {peak_band!r} is not one of {', '.join(BANDS)}")
    out = Path(out)
    sd, cf = _pool(Path(sdss_root), "sdss"), _pool(Path(cfht_root), "cfht")
    matches = crossmatch(sd["ra"].to_numpy(), sd["dec"].to_numpy(),
                         cf["ra"].to_numpy(), cf["dec"].to_numpy(), match_arcsec)
    sd_info = {i: (np.nan, np.nan) for i in range(len(sd))}
    cf_info = {j: (np.nan, np.nan) for j in range(len(cf))}
    pairs = []
    for i, j, sep in matches:
        a = peak_sky(sd["path"][i], peak_band)
        b = peak_sky(cf["path"][j], peak_band)
        psep = float(separation_arcsec(a[0], a[1], b[0], b[1]))
        sd_info[i] = cf_info[j] = (sep, psep)
        if psep <= peak_arcsec:
            pairs.append((i, j))

    rng = np.random.default_rng(seed)
    order = [pairs[k] for k in rng.permutation(len(pairs))]
    want = n_train + n_test
    if len(order) < want:
        k_test = round(len(order) * n_test / want) if want else 0
        k_train = len(order) - k_test
        print(f"warning: {len(order)} pairs found, fewer than {n_train} + {n_test}; "
              f"split {k_train} train / {k_test} test")
    else:
        k_test, k_train = n_test, n_train
    test, train = order[:k_test], order[k_test:k_test + k_train]

    rows, wanted = [], set()

    def add(subset, survey, gid, df, k, info):
        sep, psep = info[k]
        src = df["path"][k]
        dst = fits_path(out, subset, survey, gid)
        _place(src, dst)
        wanted.add(dst)
        rows.append({"id": gid, "survey": survey, "subset": subset,
                     "source_id": df["id"][k], "ra": df["ra"][k], "dec": df["dec"][k],
                     "match_sep_arcsec": sep, "peak_sep_arcsec": psep})

    paired_sd, paired_cf = set(), set()
    for subset, chosen in (("paired_train", train), ("paired_test", test)):
        for i, j in sorted(chosen, key=lambda p: sd["id"][p[0]]):
            gid = sd["id"][i]
            add(subset, "sdss", gid, sd, i, sd_info)
            add(subset, "cfht", gid, cf, j, cf_info)
            paired_sd.add(i)
            paired_cf.add(j)
    for i in range(len(sd)):
        if i not in paired_sd:
            add("unpaired", "sdss", sd["id"][i], sd, i, sd_info)
    for j in range(len(cf)):
        if j not in paired_cf:
            add("unpaired", "cfht", cf["id"][j], cf, j, cf_info)

    removed = 0
    for subset in SETS:
        for survey in ("sdss", "cfht"):
            folder = out / subset / survey
            if folder.is_dir():
                for f in folder.glob("*.fits"):
                    if f not in wanted:
                        f.unlink()
                        removed += 1

    cols = ["id", "survey", "subset", "source_id", "ra", "dec", "match_sep_arcsec",
            "peak_sep_arcsec"]
    man = pd.DataFrame(rows, columns=cols)
    atomic_write_text(out / LIN_MANIFEST, man.to_csv(index=False))
    counts = {
        "sdss ok": len(sd), "cfht ok": len(cf),
        f"matched within {match_arcsec:g}\"": len(matches),
        f"peaks within {peak_arcsec:g}\" (pairs)": len(pairs),
        "paired_train": len(train), "paired_test": len(test),
        "unpaired sdss": len(sd) - len(paired_sd),
        "unpaired cfht": len(cf) - len(paired_cf),
        "stale files removed": removed,
    }
    lines = ["# Lin et al. paired / unpaired sets", "",
             f"seed {seed}, peak band {peak_band}", "", "| step | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    atomic_write_text(out / SUMMARY, "\n".join(lines) + "\n")
    return counts


# --------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``pairs`` subcommand of ``python -m data.download``."""
    p = subparsers.add_parser(
        "pairs", help="paired / unpaired SDSS-CFHT sets from the FITS pools",
        description="Cross-match the sdss-fits and cfht-fits pools within 1\", keep "
                    "pairs whose brightest pixels agree within 1\", split them "
                    "2,557 train / 2,500 test; everything else is unpaired.")
    p.add_argument("--sdss", type=Path, default=default_out(),
                   help="root given to sdss-fits --out (default %(default)s)")
    p.add_argument("--cfht", type=Path, default=default_out(),
                   help="root given to cfht-fits --out (default %(default)s)")
    p.add_argument("--out", type=Path, default=default_out(),
                   help="dataset root for the sets (default %(default)s)")
    p.add_argument("--n-train", type=int, default=surveys.LIN_N_PAIRED_TRAIN)
    p.add_argument("--n-test", type=int, default=surveys.LIN_N_PAIRED_TEST)
    p.add_argument("--match-arcsec", type=float, default=surveys.LIN_MATCH_ARCSEC)
    p.add_argument("--peak-arcsec", type=float, default=1.0)
    p.add_argument("--peak-band", default="r", choices=BANDS)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> None:
    """Build the sets and print the counts."""
    counts = make_sets(args.sdss, args.cfht, args.out, n_train=args.n_train,
                       n_test=args.n_test, match_arcsec=args.match_arcsec,
                       peak_arcsec=args.peak_arcsec, peak_band=args.peak_band,
                       seed=args.seed)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    print(f"-> {Path(args.out) / LIN_MANIFEST}")
