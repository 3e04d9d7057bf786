"""The on-disk layout shared by the simulator, the downloader and the pipeline.

::

    ROOT/manifest.csv                      one row per galaxy: id, ra, dec, split, ...
    ROOT/<split>/<survey>/<id>.jpg         128x128x3 viewer-rendered cutouts
    ROOT/<split>/truth/<id>.npy            simulated sets only: noise-free HSC truth

FITS sets for Lin et al. (2021) (ugriz, SDSS and CFHT), written by
``python -m data.download sdss-fits | cfht-fits | pairs`` (``data/sdss.py``,
``data/cfht.py``, ``data/lin_pairs.py``; the cube format in ``data/cube.py``) and by
``python -m data.simulate --setup lin`` (no ``pool``; same files otherwise)::

    ROOT/<subset>/<survey>/<id>.fits       float32 [5, H, W] u,g,r,i,z cube in nanomaggies,
                                           TAN WCS, BANDS/BAND0..BAND4 header keys;
                                           survey sdss: 64x64 at 0.396"/px,
                                           survey cfht: 136x136 at 0.187"/px
    ROOT/pool/<survey>_state.csv           download state: id, ra, dec, status (ok | failed: why)
    ROOT/pool/<survey>_summary.md          download summary table
    ROOT/lin_manifest.csv                  one row per file of the three sets below:
                                           id, survey, subset, source_id, ra, dec, ...
                                           (simulated sets: + simulation parameters)
    ROOT/paired_test/truth_<survey>/<id>.fits   simulated sets only: the noise-free
                                           (PSF-convolved) cube of the same image
    ROOT/sim_config.json                   simulated sets only: settings, checked on resume

``subset`` is ``pool`` (everything downloaded, before pairing), ``paired_train`` /
``paired_test`` (the two members of a pair share the SDSS galaxy's id) or ``unpaired``.

``ROOT`` defaults to ``datasets/`` next to the ``data/`` package; set ``GALAXY_DATA``
to move it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from common.errors import DataError

#: Repository root (the folder holding ``data/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

SPLITS = ("train", "test")
MANIFEST = "manifest.csv"
TRUTH = "truth"

#: Catalogue ids become file names, so they must be plain: letters, digits, ``+-._``.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+\-._]{0,127}$")


def data_root() -> Path:
    """Folder holding all datasets (``$GALAXY_DATA`` or ``<repo>/datasets``)."""
    return Path(os.environ.get("GALAXY_DATA", REPO_ROOT / "datasets"))


def default_sim_dir() -> Path:
    """Where the embedded default simulated dataset lives."""
    return data_root() / "sim-default"


def check_id(galaxy_id: str) -> str:
    """Return ``galaxy_id`` if it is safe as a file name, else raise ``DataError``."""
    gid = str(galaxy_id)
    if not _SAFE_ID.match(gid) or ".." in gid:
        raise DataError(
            f"unsafe galaxy id {gid!r}: ids may only contain letters, digits and '+-._'"
        )
    return gid


def image_path(root: Path | str, split: str, survey: str, galaxy_id: str) -> Path:
    """Path of one cutout JPEG."""
    return Path(root) / split / survey / f"{check_id(galaxy_id)}.jpg"


def truth_path(root: Path | str, split: str, galaxy_id: str) -> Path:
    """Path of a simulated galaxy's noise-free truth array."""
    return Path(root) / split / TRUTH / f"{check_id(galaxy_id)}.npy"


#: Subsets of the Lin et al. FITS layout; ``pool`` holds the downloads before pairing.
PAIRED_TRAIN, PAIRED_TEST, UNPAIRED = "paired_train", "paired_test", "unpaired"
FITS_SUBSETS = ("pool", PAIRED_TRAIN, PAIRED_TEST, UNPAIRED)
LIN_MANIFEST = "lin_manifest.csv"


def fits_path(root: Path | str, subset: str, survey: str, galaxy_id: str) -> Path:
    """Path of one ugriz FITS cube: ``ROOT/<subset>/<survey>/<id>.fits``."""
    if subset not in FITS_SUBSETS:
        raise DataError(f"unknown FITS subset {subset!r}; choose one of "
                        f"{', '.join(FITS_SUBSETS)}")
    return Path(root) / subset / survey / f"{check_id(galaxy_id)}.fits"


#: Noise-free truth of a simulated set's paired_test: ``ROOT/paired_test/truth_<survey>/``.
TRUTH_PREFIX = "truth_"


def lin_truth_path(root: Path | str, subset: str, survey: str, galaxy_id: str) -> Path:
    """``ROOT/<subset>/truth_<survey>/<id>.fits``: a simulated image's noise-free cube."""
    return fits_path(root, subset, TRUTH_PREFIX + survey, galaxy_id)


def manifest_path(root: Path | str) -> Path:
    return Path(root) / MANIFEST


def check_unique(ids: pd.Series, where: Path | str) -> None:
    """``DataError`` naming ``where`` and the first (up to 3) repeated ``ids`` values.

    A repeated id would make one galaxy count twice and shadow another's files (an id
    in both splits also leaks test galaxies into training)."""
    rep = list(dict.fromkeys(ids[ids.duplicated()]))
    if rep:
        more = f" and {len(rep) - 3} more" if len(rep) > 3 else ""
        raise DataError(f"{where}: duplicate id(s) {', '.join(map(repr, rep[:3]))}"
                        f"{more}; every galaxy must be listed once")


def read_manifest(root: Path | str, split: str | None = None) -> pd.DataFrame:
    """Read ``ROOT/manifest.csv`` (optionally one split), checking its required columns
    and that every id is safe and listed once."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (simulate it with "
                        f"`python -m data.simulate --out {root}` or download it)")
    path = manifest_path(root)
    if not path.is_file():
        raise DataError(f"{path} is missing: {root} is not a dataset folder")
    df = pd.read_csv(path, dtype={"id": str})
    missing = {"id", "ra", "dec", "split"} - set(df.columns)
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(sorted(missing))}")
    df["id"].map(check_id)
    check_unique(df["id"], path)
    if split is not None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        df = df[df["split"] == split].reset_index(drop=True)
    return df
