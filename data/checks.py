"""Up-front checks of cutout JPEGs: the cheap layers of ``data.pipeline``'s error reports.

Bad input is reported as a one-line ``DataError`` naming the file, cheapest first:

1. **Always** (:func:`pair_paths`): the root and manifest exist, the survey names are
   known (``ValueError`` from :func:`data.surveys.get_survey`), the requested ids are in
   the split, and every listed file exists (one ``os.stat`` each; the message gives the
   count and the first missing file).
2. **By default** (:func:`validate_split`, :func:`validate_files`): every file is
   decoded once with PIL (~0.3 ms each) and checked by :func:`check_image`. A successful
   run leaves an empty stamp file ``ROOT/.validated/<digest>``, the digest covering the
   file list, sizes and mtimes, so later runs over unchanged files skip the decode.

The third layer (the same checks in-graph while iterating) is ``data.pipeline``'s.
``data.shard`` validates a split here before packing it. No TensorFlow in this module.

Blank rule (out-of-footprint cutouts): the viewer renders zero flux as a uniform grey
(:func:`data.render.blank_level`: 22 for SDSS, 32 for DECaLS/HSC). An image counts as
blank when its pixel standard deviation over all ``H x W x 3`` values is below
``BLANK_STD = 1`` grey level and its mean lies within ``BLANK_MEAN_TOL = 3`` of that
grey (both in ``data.render``). Any real galaxy (or even sky noise) has a far larger
spread.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.errors import DataError
from data.layout import image_path, manifest_path, read_manifest
from data.render import BLANK_MEAN_TOL, BLANK_STD, blank_level, is_blank
from data.surveys import LUO_SIZE, LUO_SURVEYS, get_survey

#: Bumped whenever check_image's rules change, so old validation stamps stop matching.
_RULES_VERSION = "1"
#: Folder of a dataset root holding the validation stamps.
STAMP_DIR = ".validated"


def survey_blank(survey: str) -> int:
    """Grey level (0..255) of a zero-flux pixel in ``survey``'s JPEGs; ``ValueError``
    for an unknown survey."""
    return blank_level(get_survey(survey))


def check_image(path: str | Path, image_size: int = LUO_SIZE,
                blank: int | None = None, *, data: bytes | None = None) -> None:
    """Decode one JPEG with PIL and raise ``DataError`` naming it if it is unusable.

    Unusable: missing, not a (complete) JPEG, not ``image_size x image_size`` RGB, or,
    when ``blank`` (the survey's blank grey) is given, a blank cutout (module docstring).
    With ``data`` (the JPEG's bytes, e.g. from a shard record) those are checked instead
    of a file, and ``path`` only names them in the message.
    """
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as img:
            img.load()  # full decode: catches truncated or damaged data
            fmt, mode, (w, h) = img.format, img.mode, img.size
            arr = np.asarray(img) if blank is not None else None
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable JPEG ({e})") from None
    if fmt != "JPEG":
        raise DataError(f"{path}: not a JPEG file (PIL reads it as {fmt})")
    if mode != "RGB" or (w, h) != (image_size, image_size):
        raise DataError(f"{path}: expected a {image_size}x{image_size}x3 RGB image, "
                        f"got {w}x{h} {mode}")
    if blank is not None and is_blank(arr, blank):
        raise DataError(f"{path}: blank cutout (uniform grey {arr.mean():.1f}, survey "
                        f"blank level {blank}): outside the survey footprint? "
                        "Drop it from the manifest")



def stat_all(paths: Sequence[str], where: str) -> list[os.stat_result]:
    """``os.stat`` every path; raise one ``DataError`` summarising the missing ones."""
    stats, missing = [], []
    for p in paths:
        try:
            stats.append(os.stat(p))
        except FileNotFoundError:
            missing.append(p)
    if missing:
        raise DataError(f"{len(missing)} of {len(paths)} files {where} are missing; "
                        f"first: {missing[0]}")
    return stats


def pair_paths(root: str | Path, split: str, source: str, target: str,
               ids: Iterable[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """Ids and (source, target) file paths of a split, after the cheap up-front checks.

    Args:
        root: dataset folder (``ROOT/manifest.csv``, ``ROOT/<split>/<survey>/<id>.jpg``).
        split: ``"train"`` or ``"test"``.
        source, target: survey names (``ValueError`` if unknown).
        ids: optional subset of the split's ids, in the order wanted.
    Returns:
        ``(ids, source_paths, target_paths)``, three equally long lists of ``str``.
    Raises:
        DataError: missing root/manifest, empty split, unknown id, or missing files.
    """
    for s in (source, target):
        get_survey(s)
    manifest = read_manifest(root, split)
    known = list(manifest["id"])
    if ids is None:
        ids = known
    else:
        ids = [str(i) for i in ids]
        unknown = sorted(set(ids) - set(known))
        if unknown:
            raise DataError(f"{len(unknown)} requested id(s) are not in the {split!r} "
                            f"split of {manifest_path(root)}; first: {unknown[0]!r}")
    if not ids:
        raise DataError(f"no galaxies in the {split!r} split of {manifest_path(root)}")
    src = [str(image_path(root, split, source, i)) for i in ids]
    tgt = [str(image_path(root, split, target, i)) for i in ids]
    stat_all(src + tgt, f"listed in {manifest_path(root)} ({split})")
    return ids, src, tgt


def validate_files(paths: Sequence[str], blanks: Sequence[int | None],
                   image_size: int = LUO_SIZE, *, stamp_dir: str | Path | None = None,
                   progress: bool | None = None) -> int:
    """Run :func:`check_image` on every file; raise ``DataError`` at the first bad one.

    Args:
        paths: JPEG files; ``blanks``: the blank grey of each file's survey (``None``
            skips the blank test for that file).
        stamp_dir: if given, a stamp named by a digest of the file list, sizes, mtimes
            and rules is looked up there (hit: nothing is decoded) and written on success
            (silently skipped if the folder is not writable).
        progress: tqdm bar; ``None`` shows it only on a terminal.
    Returns:
        The number of files decoded (0 when the stamp matched).
    """
    stats = stat_all(paths, "to validate")
    stamp = None
    if stamp_dir is not None:
        h = hashlib.sha1(f"{_RULES_VERSION} {image_size} {BLANK_STD} {BLANK_MEAN_TOL}"
                         .encode())
        for p, st, b in zip(paths, stats, blanks):
            h.update(f"\n{os.path.abspath(p)}\t{st.st_size}\t{st.st_mtime_ns}\t{b}"
                     .encode())
        stamp = Path(stamp_dir) / h.hexdigest()
        if stamp.is_file():
            return 0
    for p, b in tqdm(list(zip(paths, blanks)), desc="validating JPEGs", unit="file",
                     disable=None if progress is None else not progress, leave=False):
        check_image(p, image_size, b)
    if stamp is not None:
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
        except OSError:
            pass  # read-only dataset: validate again next time
    return len(paths)


def validate_split(root: str | Path, split: str,
                   surveys: Sequence[str] = LUO_SURVEYS, *,
                   ids: Iterable[str] | None = None, image_size: int = LUO_SIZE,
                   cache: bool = True, progress: bool | None = None) -> int:
    """Check every JPEG of ``surveys`` in a split (existence, decode, size, blank).

    Uses a stamp under ``ROOT/.validated/`` when ``cache`` so unchanged files are
    decoded only once across runs. Returns the number of files decoded; raises
    ``DataError`` naming the first bad file.
    """
    surveys = list(surveys)
    ids, _, _ = pair_paths(root, split, surveys[0], surveys[0], ids)
    paths, blanks = [], []
    for s in surveys:
        b = survey_blank(s)
        for i in ids:
            paths.append(str(image_path(root, split, s, i)))
            blanks.append(b)
    return validate_files(paths, blanks, image_size, progress=progress,
                          stamp_dir=Path(root) / STAMP_DIR if cache else None)

