"""Pack a dataset's JPEGs into TFRecord shards (``python -m data.shard``).

::

    python -m data.shard --data ROOT [--out ROOT/shards] [--shard-mb 150]
                         [--surveys sdss,decals,hsc] [--splits train,test]

Why: hundreds of thousands of 10 kB files are slow to list, copy and read on network or
cloud disks; a few hundred 150 MB shards stream at disk speed. Once
``ROOT/shards/index.json`` exists, :func:`data.pipeline.make_dataset` reads the shards
instead of the JPEGs (``layout="auto"``), so training and evaluation commands do not
change; it refuses them, naming the file, once a JPEG changed since it was packed (one
``os.stat`` per file against the index). The shard folder is self-contained: it can be
copied to a GPU machine without the JPEGs and passed as the dataset root (``--data
OUT``).

Layout (``OUT`` defaults to ``ROOT/shards``)::

    OUT/<split>-<k>-of-<n>.tfrecord   records in manifest order, k = 00000 .. n-1
    OUT/index.json                    see below
    OUT/manifest.csv                  a copy of ROOT's, so OUT is a dataset root itself

Each record is a ``tf.train.Example`` with ``id`` (the galaxy id, bytes) and
``jpeg/<survey>`` (the survey's cutout file, byte for byte: nothing is re-encoded, so a
decoded shard image equals the decoded file exactly). ``index.json`` holds ``format``
(:data:`FORMAT`) and, per split: ``complete`` (false while packing), ``surveys``,
``image_size``, ``shard_mb``, ``records``, ``ids`` (manifest order) and ``shards``: for
each file its ``file`` name, ``first`` (position of its first record in ``ids``),
``records``, ``bytes``, ``sha256`` and ``inputs`` (a digest of the packed files' ids,
sizes and mtimes).

Writing streams one galaxy at a time (memory does not grow with the set), every shard is
written under a temporary name and renamed when complete, and the index is rewritten
after each shard. A rerun (after a kill, or after files changed) keeps every shard whose
inputs and sha256 still match the index and rewrites only the others. Shard boundaries
are planned from the file sizes before writing (record sizes are computed exactly), so
they are the same on every run. MB means 10^6 bytes; a shard exceeds ``--shard-mb`` only
when a single record does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.cli import Parser, positive_float, positive_int
from common.errors import DataError, run_cli
from common.io import (atomic_path, atomic_write, atomic_write_text, clean_stale_tmp,
                       file_sha256)
from data.checks import validate_split
from data.layout import SPLITS, image_path, manifest_path, read_manifest
from data.surveys import LUO_SURVEYS, get_survey

SHARD_DIR = "shards"
INDEX = "index.json"
FORMAT = "galaxy-jpeg-shards/1"
DEFAULT_SHARD_MB = 150.0
_TFRECORD_FRAMING = 16  # uint64 length + uint32 crc + payload + uint32 crc


def feature_key(survey: str) -> str:
    """Name of the feature holding ``survey``'s JPEG bytes in a record."""
    return f"jpeg/{survey}"


def shard_name(split: str, k: int, n: int) -> str:
    return f"{split}-{k:05d}-of-{n:05d}.tfrecord"


# ---------------------------------------------------------------------------- records
def encode_record(galaxy_id: str, jpegs: dict[str, bytes]) -> bytes:
    """One galaxy -> serialized ``tf.train.Example`` (``id`` + ``jpeg/<survey>``).

    Serialized deterministically (map keys sorted), so equal inputs give equal bytes.
    """
    import tensorflow as tf

    def _bytes(b: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[b]))

    feats = {"id": _bytes(galaxy_id.encode())}
    feats.update({feature_key(s): _bytes(b) for s, b in jpegs.items()})
    ex = tf.train.Example(features=tf.train.Features(feature=feats))
    return ex.SerializeToString(deterministic=True)


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _field_len(n: int) -> int:
    """Bytes of one length-delimited protobuf field (1-byte tag) with an ``n``-byte body."""
    return 1 + _varint_len(n) + n


def record_bytes(galaxy_id: str, sizes: dict[str, int]) -> int:
    """Exact size on disk of :func:`encode_record`'s record inside a TFRecord file,
    computed from the JPEG sizes alone (protobuf sizes depend only on lengths)."""
    total = 0
    items = [("id", len(galaxy_id.encode()))] + [(feature_key(s), n)
                                                 for s, n in sizes.items()]
    for key, n in items:
        feature = _field_len(_field_len(_field_len(n)))  # Feature{BytesList{value}}
        entry = _field_len(len(key.encode())) + feature  # map entry {key, value}
        total += _field_len(entry)
    return _field_len(total) + _TFRECORD_FRAMING  # Example{Features{...}} + framing


def plan_shards(record_sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Greedy split of consecutive records into shards of at most ``limit`` bytes.

    Returns ``(first, count)`` per shard. A record larger than ``limit`` gets a shard
    of its own (the only case where a shard exceeds ``limit``).
    """
    plan, first, used = [], 0, 0
    for k, n in enumerate(record_sizes):
        if k > first and used + n > limit:
            plan.append((first, k - first))
            first, used = k, 0
        used += n
    if len(record_sizes) > first:
        plan.append((first, len(record_sizes) - first))
    return plan


# ---------------------------------------------------------------------------- index
def index_path(out: Path | str) -> Path:
    return Path(out) / INDEX


def find_index(root: Path | str) -> Path | None:
    """``ROOT/shards/index.json`` if it exists, else ``ROOT/index.json`` (``ROOT`` is a
    shard folder) if that exists, else ``None``."""
    for p in (Path(root) / SHARD_DIR / INDEX, Path(root) / INDEX):
        if p.is_file():
            return p
    return None


def read_index(path: Path | str) -> dict:
    """Load and sanity-check an ``index.json``; ``DataError`` naming it if unusable."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: shard index is missing") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable shard index ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        got = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise DataError(f"{path}: shard index format {got!r}, expected {FORMAT!r}")
    splits = index.get("splits")
    if not isinstance(splits, dict):
        raise DataError(f"{path}: shard index has no 'splits' table")
    for split, e in splits.items():
        need = {"complete", "surveys", "image_size", "ids", "shards"}
        if not isinstance(e, dict) or need - set(e):
            raise DataError(f"{path}: split {split!r} lacks "
                            f"{', '.join(sorted(need - set(e or {})))}")
    return index


def load_split(path: Path | str, split: str, surveys: Sequence[str], image_size: int,
               root: Path | str | None = None) -> dict:
    """The index entry of one fully packed split, checked against what a reader needs.

    ``DataError`` (naming the index) if the split is absent or partly packed, lacks one
    of ``surveys``, has another image size, or (when ``root`` holds a manifest) no longer
    lists the manifest's ids in order, or (when the index is ``ROOT/shards/index.json``)
    a JPEG under ``root`` changed since it was packed (:func:`changed_input`).
    """
    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    entry = read_index(path)["splits"].get(split)
    hint = f"rerun `python -m data.shard --data {Path(root) if root else '<ROOT>'}`"
    if entry is None:
        raise DataError(f"{path}: no {split!r} split in the shard index; {hint}")
    if not entry["complete"]:
        raise DataError(f"{path}: the {split!r} split is only partly packed "
                        f"({len(entry['shards'])} shards so far); {hint}, or pass "
                        "layout='files'")
    for s in surveys:
        if s not in entry["surveys"]:
            raise DataError(f"{path}: the {split!r} shards hold "
                            f"{', '.join(entry['surveys'])}, not {s!r}; {hint} "
                            f"--surveys {','.join(sorted(set(entry['surveys']) | {s}))}")
    if int(entry["image_size"]) != int(image_size):
        raise DataError(f"{path}: the {split!r} shards hold {entry['image_size']} px "
                        f"images, {image_size} px wanted")
    if root is not None and manifest_path(root).is_file():
        want = list(read_manifest(root, split)["id"])
        if want != entry["ids"]:
            diff = next((f"{a!r} vs {b!r} at row {k}" for k, (a, b)
                         in enumerate(zip(want, entry["ids"])) if a != b),
                        f"{len(want)} vs {len(entry['ids'])} ids")
            raise DataError(f"{path}: stale: the {split!r} shards do not match "
                            f"{manifest_path(root)} ({diff}); {hint}")
    if root is not None and path == Path(root) / SHARD_DIR / INDEX:
        changed = changed_input(path, entry, root, split)
        if changed:
            raise DataError(f"{changed}; {hint}")
    return entry


def _stats(root: Path, split: str, surveys: Sequence[str],
           ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """File sizes and mtimes (ns) of ``ids`` x ``surveys``: two ``[len(ids),
    len(surveys)]`` int64 arrays from ``os.stat``, -1 for a missing file."""
    nbytes = np.full((len(ids), len(surveys)), -1, np.int64)
    mtimes = nbytes.copy()
    for j, gid in enumerate(ids):
        for c, s in enumerate(surveys):
            try:
                st = os.stat(image_path(root, split, s, gid))
            except FileNotFoundError:
                continue
            nbytes[j, c], mtimes[j, c] = st.st_size, st.st_mtime_ns
    return nbytes, mtimes


def changed_input(path: Path, entry: dict, root: Path | str, split: str) -> str | None:
    """One line naming the first JPEG of ``split`` under ``root`` that changed since it
    was packed, or ``None``. Cheap: one ``os.stat`` per file, compared with each shard's
    ``inputs`` digest in the index at ``path``; only the first stale shard is read, to
    tell which of its files changed. ``None`` too when ``ROOT/<split>/`` is gone (the
    JPEGs were removed after packing: the shards are the data)."""
    root = Path(root)
    if not (root / split).is_dir():
        return None
    ids, surveys = entry["ids"], entry["surveys"]
    for e in entry["shards"]:
        sl = ids[e["first"]:e["first"] + e["records"]]
        nbytes, mtimes = _stats(root, split, surveys, sl)
        if _inputs_digest(sl, surveys, nbytes.tolist(), mtimes.tolist(),
                          entry["image_size"]) != e.get("inputs"):
            files = [[image_path(root, split, s, g) for s in surveys] for g in sl]
            return _first_change(path.parent / e["file"], surveys, files, nbytes, mtimes)
    return None


def _first_change(shard: Path, surveys: Sequence[str], files: list[list[Path]],
                  nbytes: np.ndarray, mtimes: np.ndarray) -> str:
    """``"<file>: changed since it was packed into <shard> (<how>)"`` for the first of
    ``files`` (``[records][surveys]``, sizes and mtimes ``[records, surveys]``, -1:
    missing) that is missing or whose bytes differ from its record; if none does, the
    first one touched after the shard was written (same bytes, new mtime)."""
    import tensorflow as tf

    def line(j, c, how):
        return f"{files[j][c]}: changed since it was packed into {shard} ({how})"
    spec = {feature_key(s): tf.io.FixedLenFeature([], tf.string) for s in surveys}
    try:
        for j, rec in enumerate(tf.data.TFRecordDataset(str(shard)).take(len(files))):
            ex = tf.io.parse_single_example(rec, spec)
            for c, s in enumerate(surveys):
                old = ex[feature_key(s)].numpy()
                if nbytes[j, c] < 0:
                    return line(j, c, "now missing")
                if nbytes[j, c] != len(old):
                    return line(j, c, f"{nbytes[j, c]} bytes, {len(old)} when packed")
                if files[j][c].read_bytes() != old:
                    return line(j, c, "other bytes")
    except tf.errors.OpError:
        pass  # a damaged shard: the mtimes still name a file
    packed = shard.stat().st_mtime_ns if shard.is_file() else 0
    # the first missing or touched file; the newest one if the shard is newer still
    j, c = np.argwhere((mtimes < 0) | (mtimes > packed) | (mtimes == mtimes.max()))[0]
    return line(j, c, "now missing" if mtimes[j, c] < 0 else "new modification time")


# ---------------------------------------------------------------------------- writing
@dataclass
class ShardReport:
    """What :func:`write_shards` did: the index it wrote and the shard files (names)
    it wrote anew or kept from an earlier run."""
    out: Path
    index: dict
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _inputs_digest(ids, surveys, sizes, mtimes, image_size) -> str:
    h = hashlib.sha1(f"{FORMAT} {image_size} {','.join(surveys)}".encode())
    for k, gid in enumerate(ids):
        h.update(f"\n{gid}\t{sizes[k]}\t{mtimes[k]}".encode())
    return h.hexdigest()


def _detect_size(path: Path | str) -> int | None:
    try:
        with Image.open(path) as img:
            return img.size[0]
    except OSError:
        return None  # validation names the file


def _save_index(out: Path, index: dict) -> None:
    atomic_write_text(index_path(out), json.dumps(index, indent=1) + "\n")


def write_shards(root: Path | str, out: Path | str | None = None, *,
                 shard_mb: float = DEFAULT_SHARD_MB,
                 surveys: Sequence[str] = LUO_SURVEYS, splits: Sequence[str] = SPLITS,
                 image_size: int | None = None,
                 progress: bool | None = None) -> ShardReport:
    """Pack ``ROOT``'s JPEGs into TFRecord shards under ``out`` (module docstring).

    Args:
        root: dataset folder (:mod:`data.layout`).
        out: shard folder (default ``ROOT/shards``, which ``make_dataset`` finds).
        shard_mb: size limit of one shard file, in 10^6 bytes (> 0).
        surveys: surveys stored in every record (each must have a file per galaxy).
        splits: splits to pack (others already in the index are left as they are).
        image_size: required image side; ``None`` takes the first file's.
        progress: tqdm bars (``None``: only on a terminal).
    Returns:
        a :class:`ShardReport`.
    Raises:
        ValueError: bad ``shard_mb``, unknown or repeated survey. DataError: missing
        root/manifest/files, an empty split, or an unusable JPEG (named; checked with
        :func:`data.checks.validate_split` before anything is packed).
    """
    import tensorflow as tf  # only packing needs it (not --help, nor the index readers)

    if not (isinstance(shard_mb, (int, float)) and shard_mb > 0):
        raise ValueError(f"shard_mb must be > 0, got {shard_mb!r}")
    for s in surveys:
        get_survey(s)  # ValueError naming an unknown survey
    surveys = [s.lower() for s in surveys]
    if not surveys or len(set(surveys)) != len(surveys):
        raise ValueError(f"surveys must be distinct and not empty, got "
                         f"{','.join(surveys) or 'none'}")
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(root)
    out = Path(out) if out is not None else root / SHARD_DIR
    limit = int(shard_mb * 1e6)
    try:
        index = read_index(index_path(out)) if index_path(out).is_file() else None
    except DataError:
        index = None  # unreadable: rebuild everything
    index = index or {"format": FORMAT, "splits": {}}
    report = ShardReport(out, index)
    disable = None if progress is None else not progress

    for split in splits:
        ids = list(read_manifest(root, split)["id"])
        if not ids:
            raise DataError(f"no galaxies in the {split!r} split of {manifest_path(root)}")
        size = image_size or _detect_size(image_path(root, split, surveys[0], ids[0])) or 0
        # every file exists and decodes (cached by the same stamps as make_dataset's)
        validate_split(root, split, surveys, image_size=size, progress=progress)
        # [N, n_surveys] int64 file sizes and mtimes: the only per-galaxy state kept
        nbytes, mtimes = _stats(root, split, surveys, ids)
        rec = [record_bytes(g, dict(zip(surveys, map(int, nbytes[j]))))
               for j, g in enumerate(ids)]
        plan = plan_shards(rec, limit)
        old = {e["file"]: e for e in index["splits"].get(split, {}).get("shards", [])}
        entry = {"complete": False, "surveys": surveys, "image_size": size,
                 "shard_mb": shard_mb, "records": len(ids), "ids": ids, "shards": []}
        index["splits"][split] = entry
        clean_stale_tmp(out)  # left by a killed run

        todo = []
        bar = tqdm(total=len(ids), desc=f"packing {split}", unit="galaxy",
                   disable=disable, leave=False)
        for k, (first, count) in enumerate(plan):  # 1. keep what is still valid
            name = shard_name(split, k, len(plan))
            sl = slice(first, first + count)
            digest = _inputs_digest(ids[sl], surveys, nbytes[sl].tolist(),
                                    mtimes[sl].tolist(), size)
            spec = {"file": name, "first": first, "records": count,
                    "bytes": sum(rec[sl]), "inputs": digest}
            prev, path = old.get(name), out / name
            if (prev and all(prev.get(key) == v for key, v in spec.items())
                    and path.is_file() and path.stat().st_size == spec["bytes"]
                    and file_sha256(path) == prev.get("sha256")):
                entry["shards"].append(prev)
                report.kept.append(name)
                bar.update(count)
            else:
                todo.append(spec)
        if todo:  # readers see "partly packed" until the last shard is renamed
            _save_index(out, index)

        for spec in todo:  # 2. write the rest, one galaxy at a time
            path = out / spec["file"]
            with atomic_path(path) as tmp:
                with tf.io.TFRecordWriter(str(tmp)) as w:
                    for j in range(spec["first"], spec["first"] + spec["records"]):
                        jpegs = {}
                        for c, s in enumerate(surveys):
                            p = image_path(root, split, s, ids[j])
                            data = p.read_bytes()
                            if len(data) != nbytes[j, c]:
                                raise DataError(f"{p}: changed while packing (size "
                                                "differs); rerun to pack it again")
                            jpegs[s] = data
                        w.write(encode_record(ids[j], jpegs))
                        bar.update(1)
                got = tmp.stat().st_size
                if got != spec["bytes"]:  # record_bytes is exact; never expected
                    raise RuntimeError(f"{path}: wrote {got} bytes, planned "
                                       f"{spec['bytes']}")
                spec["sha256"] = file_sha256(tmp)
            entry["shards"].append(spec)
            entry["shards"].sort(key=lambda e: e["first"])
            report.written.append(spec["file"])
            _save_index(out, index)
        bar.close()

        entry["complete"] = True
        _save_index(out, index)
        names = {e["file"] for e in entry["shards"]}
        for name in set(old) - names:  # an earlier plan's shards (other --shard-mb)
            (out / name).unlink(missing_ok=True)
    # A copy of the manifest makes OUT a dataset root of its own (trainer, table1).
    atomic_write(manifest_path(out), lambda tmp: shutil.copyfile(manifest_path(root), tmp))
    return report


# ---------------------------------------------------------------------------- CLI
def _names(check):
    def parse(text: str) -> list[str]:
        names = [t.strip().lower() for t in text.split(",") if t.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"empty list {text!r}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"repeated name in {text!r}")
        for n in names:
            try:
                check(n)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return names
    return parse


def _check_split(name: str) -> None:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line -> namespace (bad values end in a one-line argparse error)."""
    ap = Parser(prog="python -m data.shard", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset folder")
    ap.add_argument("--out", type=Path, default=None,
                    help="shard folder (default: DATA/shards, found by the pipeline)")
    ap.add_argument("--shard-mb", type=positive_float, default=DEFAULT_SHARD_MB,
                    help="size limit of one shard, MB (10^6 bytes)")
    # string defaults go through `type` too: the help shows them as typed
    ap.add_argument("--surveys", type=_names(get_survey), default=",".join(LUO_SURVEYS),
                    help="comma-separated surveys stored per galaxy")
    ap.add_argument("--splits", type=_names(_check_split), default=",".join(SPLITS),
                    help="comma-separated splits to pack")
    ap.add_argument("--image-size", type=positive_int, default=None,
                    help="required image side in px (default: the first file's)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)

    def job():
        rep = write_shards(a.data, a.out, shard_mb=a.shard_mb, surveys=a.surveys,
                           splits=a.splits, image_size=a.image_size,
                           progress=False if a.no_progress else None)
        for split in a.splits:
            e = rep.index["splits"][split]
            mb = sum(s["bytes"] for s in e["shards"]) / 1e6
            mine = {s["file"] for s in e["shards"]}
            print(f"{split}: {e['records']} galaxies in {len(e['shards'])} shards "
                  f"({mb:.1f} MB; {len(mine & set(rep.written))} written, "
                  f"{len(mine & set(rep.kept))} kept)")
        print(f"wrote {len(rep.written)} shard(s), kept {len(rep.kept)} in {rep.out}; "
              f"index: {index_path(rep.out)}")
    return run_cli(job)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
