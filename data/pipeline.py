"""Cutout JPEGs on disk -> ``tf.data.Dataset`` of normalised image pairs.

Any survey can be the input and any the target (``sdss -> hsc``, ``decals -> hsc``,
``sdss -> decals`` for the cascade's first stage, ...). Images are streamed: the dataset
is built from file *paths* (``ROOT/<split>/<survey>/<id>.jpg``, see :mod:`data.layout`)
and each file is read and decoded when its batch is needed, so a survey never has to fit
in memory. A set packed into TFRecord shards by ``python -m data.shard`` is streamed from
those instead, with the same decoding, checks, augmentation and scaling: see
:func:`make_dataset`'s ``layout`` (``"auto"`` picks the shards when
``ROOT/shards/index.json`` exists).

Bad input is reported as a one-line :class:`common.errors.DataError` naming the file, in
three layers, cheapest first: the two up-front layers of :mod:`data.checks` (files exist;
by default every file decoded once, cached by a stamp under ``ROOT/.validated/``), then,
**while iterating** (inside the ``map``), the same size/channel/blank checks as
``tf.debugging.Assert`` ops whose message carries the file path. Iterate through
:func:`iterate_checked`, or wrap ``model.fit`` in ``with data_errors(ds):``, to turn any
TensorFlow error raised by the reader into a ``DataError`` naming the file; a decode
failure (whose TF message has no path) is traced back by re-checking the dataset's files
with PIL. The blank rule is :mod:`data.checks`'.
"""
from __future__ import annotations

import functools
import os
import re
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import tensorflow as tf

from common.errors import DataError
from common.images import normalize
from common.io import file_sha256
from data import shard
from data.checks import (STAMP_DIR, check_image, pair_paths, stat_all, survey_blank,
                         validate_files)
from data.render import BLANK_MEAN_TOL, BLANK_STD
from data.surveys import LUO_SIZE

_JPEG_SOI = b"\xff\xd8"
#: In-graph assertion messages look like ``[DataError] <path>: <problem>``.
_ASSERT_TAG = "[DataError] "
_ASSERT_RE = re.compile(re.escape(_ASSERT_TAG) + r"(.+?): ([^:\]\n]+)\]")
_JPEG_SUFFIXES = (".jpg", ".jpeg")

#: For each dataset this module built, a function that re-checks its files or shards
#: and raises a ``DataError`` naming the culprit (traces a decode error to its source).
_DATASET_CHECKS: "weakref.WeakKeyDictionary[tf.data.Dataset, Callable[[], None]]" = \
    weakref.WeakKeyDictionary()
#: make_dataset's on-disk layouts (see its docstring).
LAYOUTS = ("auto", "files", "shards")
#: Shards read in parallel while training, and records shuffled together (one block).
SHARD_CYCLE = 4
SHUFFLE_RECORDS = 2048


# ---------------------------------------------------------------------------- reading
def _fail(path: tf.Tensor, problem) -> tf.Tensor:
    return tf.strings.join([_ASSERT_TAG, path, ": ", problem])


def _read_image(path: tf.Tensor, image_size: int, blank: int | None) -> tf.Tensor:
    """Read + decode one JPEG in-graph -> ``[S, S, 3]`` uint8, with path-naming checks."""
    return _decode_checked(tf.io.read_file(path), path, image_size, blank)


def _decode_checked(data: tf.Tensor, name: tf.Tensor, image_size: int,
                    blank: int | None) -> tf.Tensor:
    """Decode JPEG bytes in-graph -> ``[S, S, 3]`` uint8 in [0, 255].

    ``data``: scalar string (the file's bytes); ``name``: scalar string naming where the
    bytes came from (a file path, or a shard record), put in every failure message as
    ``[DataError] <name>: <problem>`` (see :func:`data_errors`).
    """
    is_jpeg = tf.debugging.Assert(tf.equal(tf.strings.substr(data, 0, 2), _JPEG_SOI),
                                  [_fail(name, "not a JPEG file")])
    with tf.control_dependencies([is_jpeg]):
        # TF's default IDCT ("INTEGER_FAST") is off by up to ~8 grey levels; the accurate
        # one matches PIL (data.render.read_jpeg, check_image) bit for bit.
        img = tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE")
    shape = tf.shape(img)
    size_ok = tf.debugging.Assert(
        tf.reduce_all(tf.equal(shape, [image_size, image_size, 3])),
        [_fail(name, tf.strings.join(
            [f"expected a {image_size}x{image_size}x3 RGB image, got ",
             tf.strings.reduce_join(tf.strings.as_string(shape), separator="x")]))])
    checks = [size_ok]
    if blank is not None:
        x = tf.cast(img, tf.float32)
        mean, var = tf.nn.moments(x, axes=[0, 1, 2])
        blank_img = tf.logical_and(tf.sqrt(var) < BLANK_STD,
                                   tf.abs(mean - blank) < BLANK_MEAN_TOL)
        checks.append(tf.debugging.Assert(tf.logical_not(blank_img), [_fail(
            name, f"blank cutout (uniform grey near the survey blank level {blank}) "
                  "outside the survey footprint? Drop it from the manifest")]))
    with tf.control_dependencies(checks):
        img = tf.identity(img)
    return tf.ensure_shape(img, [image_size, image_size, 3])


def _augment_pair(src: tf.Tensor, tgt: tf.Tensor, seed: tf.Tensor):
    """One random element of the dihedral group D4 (rot90 x k, optional flip), drawn
    once per pair and applied to source and target alike (they are stacked first)."""
    pair = tf.concat([src, tgt], axis=-1)  # [S, S, 6]
    g = tf.random.stateless_uniform([], seed, minval=0, maxval=8, dtype=tf.int32)
    pair = tf.cond(g >= 4, lambda: tf.image.flip_left_right(pair), lambda: pair)
    pair = tf.image.rot90(pair, k=g % 4)
    return pair[..., :3], pair[..., 3:]


def make_dataset(root: str | Path, split: str, source: str, target: str,
                 batch_size: int, *, training: bool, seed: int | None = None,
                 drop_remainder: bool | None = None, ids: Iterable[str] | None = None,
                 with_ids: bool = False, image_size: int = LUO_SIZE,
                 augment: bool | None = None, validate: bool = True,
                 progress: bool | None = None, layout: str = "auto",
                 shuffle_buffer: int = SHUFFLE_RECORDS,
                 epochs: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """Paired ``source -> target`` dataset of one split, streamed from disk.

    Two on-disk layouts give the same batches (same pixels, same checks):

    * ``"files"``: the JPEGs ``ROOT/<split>/<survey>/<id>.jpg`` (:mod:`data.layout`),
      one file read per image;
    * ``"shards"``: TFRecord shards written by ``python -m data.shard``
      (:mod:`data.shard`), found at ``ROOT/shards/index.json``, or at
      ``ROOT/index.json`` when ``root`` is the shard folder itself (which holds a
      copy of the manifest and needs no JPEGs). Shards are read one after another when
      not ``training`` (manifest order); when ``training`` they are visited in a
      shuffled order, :data:`SHARD_CYCLE` at a time in parallel, and their records
      are shuffled in blocks of ``shuffle_buffer`` (memory stays flat however large the
      set).

    Args:
        root: dataset folder (see :mod:`data.layout`), or a shard folder.
        split: ``"train"`` or ``"test"``.
        source, target: survey names, e.g. ``"decals"``, ``"hsc"``.
        batch_size: images per batch.
        training: shuffle (seeded, a new order every epoch); else keep manifest order.
        augment: apply a random flip / rot90 identically to each input and its target
            (default ``training``). Luo et al. do not describe augmentation; these eight
            transforms keep a pair aligned and galaxies have no preferred orientation.
        seed: makes shuffling and augmentation reproducible (``None``: random; with
            shards, ``None`` also lets parallel shard reads come in any order).
        drop_remainder: drop a last partial batch; default ``training``.
        ids: optional subset (and order) of the split's ids. With shards, an
            evaluation (not ``training``) subset must follow the manifest order.
        with_ids: also yield the ``[B]`` string ids.
        image_size: required side of every JPEG (Luo et al.: 128).
        validate: files: decode every file once up front
            (:func:`data.checks.validate_split`, cached); shards: check that every
            shard file exists with the index's size (their JPEGs were validated when
            packed; damage inside a shard is caught by TFRecord checksums and the
            in-graph checks while iterating).
        progress: tqdm bar during validation (``None``: only on a terminal).
        layout: ``"auto"`` (shards if an index is found, else files), ``"files"`` or
            ``"shards"``.
        shuffle_buffer: records shuffled together from the shards (training only; each
            holds the survey JPEGs of one galaxy, ~10-30 kB at 128 px).
        epochs: training only: the dataset is the epochs ``range(*epochs)`` back to
            back (0-based), and epoch ``e``'s order and augmentation depend on
            ``(seed, e)`` alone (:func:`epoch_seed`), so a run resumed at epoch ``k``
            gets the batches an uninterrupted run gets from epoch ``k`` on. Each epoch
            is :func:`batches_per_epoch` batches (pass that as Keras'
            ``steps_per_epoch``).
    Returns:
        Batches ``(source, target)`` (``(source, target, ids)`` when ``with_ids``),
        each image batch ``[B, S, S, 3]`` float32 in ``[-1, 1]`` (Luo eq. 8).
    Raises:
        ValueError: unknown survey or layout. DataError: missing root, manifest, ids,
        files or shards, a partly packed or stale shard index, a JPEG changed since it
        was packed (shards beside their JPEGs: one ``os.stat`` per file, see
        :func:`data.shard.changed_input`), and, with ``validate``, any corrupt,
        wrong-size or blank JPEG (naming the file).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    augment = training if augment is None else augment
    ordered = seed is not None
    if seed is None:  # a random stream, still a new order every epoch
        seed = int.from_bytes(os.urandom(3), "little")
    blanks = (survey_blank(source), survey_blank(target))
    index = None
    if layout != "files":
        index = shard.find_index(root)
        if index is None and layout == "shards":
            raise DataError(f"{Path(root) / shard.SHARD_DIR / shard.INDEX} is missing: "
                            f"pack the set with `python -m data.shard --data {root}`")

    if index is None:
        ids, src, tgt = pair_paths(root, split, source, target, ids)
        if validate:
            validate_files(src + tgt, [blanks[0]] * len(src) + [blanks[1]] * len(tgt),
                           image_size, stamp_dir=Path(root) / STAMP_DIR,
                           progress=progress)
        n, columns = len(ids), (tf.constant(src), tf.constant(tgt), tf.constant(ids))

        def records(pass_seed):  # shuffle the (tiny) path strings, not images
            if training:
                order = _permutation(n, pass_seed)
                return tf.data.Dataset.from_tensor_slices(
                    tuple(tf.gather(c, order) for c in columns))
            return tf.data.Dataset.from_tensor_slices(columns)

        def read(s_path, t_path, gid):
            return (_read_image(s_path, image_size, blanks[0]),
                    _read_image(t_path, image_size, blanks[1]), gid)
        check = functools.partial(_check_files, tuple(src + tgt), image_size)
    else:
        n, records, read, check = _shard_records(index, root, split, source, target,
                                                 blanks, ids, training, ordered,
                                                 image_size, validate, shuffle_buffer)

    def load(rec, pair_seed=None):
        x, y, gid = read(*rec)
        if pair_seed is not None:
            x, y = _augment_pair(x, y, pair_seed)
        out = (normalize(x), normalize(y))
        return out + (gid,) if with_ids else out

    drop = training if drop_remainder is None else drop_remainder

    def one_pass(pass_seed):  # the batches of one epoch, all drawn from `pass_seed`
        ds = records(pass_seed)
        if augment:  # one stateless seed [2] per pair: (pass seed, position)
            pair_seeds = tf.data.Dataset.range(n).map(
                lambda j: tf.stack([tf.cast(pass_seed, tf.int64), j]))
            ds = tf.data.Dataset.zip(ds, pair_seeds).map(
                load, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda *rec: load(rec), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=drop)

    if training:
        first, last = epochs
        if not 0 <= first <= last:
            raise ValueError(f"epochs must be (first, last) with 0 <= first <= last, "
                             f"got {epochs}")
        ds = tf.data.Dataset.range(first, last).flat_map(
            lambda e: one_pass(epoch_seed(seed, e)))
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            (last - first) * batches_per_epoch(n, batch_size, drop)))
    else:
        ds = one_pass(seed)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    _DATASET_CHECKS[ds] = check
    return ds


#: Epochs a seed's stream can number before two (seed, epoch) pairs share an op seed.
EPOCH_SEEDS = 2 ** 24


def epoch_seed(seed: int, epoch):
    """The op seed (int64 scalar) of training epoch ``epoch`` (0-based, an int or a
    tensor) of a ``seed``'s stream: its shuffle and augmentation depend on the pair
    alone, so any epoch can be rebuilt without replaying the earlier ones (issue 18:
    a resumed run sees the batches of an uninterrupted one)."""
    return tf.constant(seed, tf.int64) * EPOCH_SEEDS + tf.cast(epoch, tf.int64)


def _permutation(n, pass_seed, block=-1) -> tf.Tensor:
    """A permutation ``[n]`` int64 of ``range(n)`` (``n`` an int or an int tensor), drawn
    statelessly from ``(pass_seed, block)``; ``block`` is negative (positions >= 0 are
    the augmentation's seeds). Stateless because a tensor op seed inside ``flat_map``
    trips ``Dataset.shuffle`` under a global seed of 0 (TF 2.21 compares it as a
    Python bool)."""
    seed = tf.stack([tf.cast(pass_seed, tf.int64), tf.cast(block, tf.int64)])
    return tf.random.experimental.stateless_shuffle(
        tf.range(tf.cast(n, tf.int64)), seed)


def batches_per_epoch(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Batches of ``batch_size`` in one pass over ``n`` records."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def _shard_records(index: Path, root, split, source, target, blanks, ids, training,
                   ordered, image_size, validate, shuffle_buffer):
    """The shards half of :func:`make_dataset`: the number of records, a function of
    a seed giving one pass of ``(shard path, serialized record)`` (shuffled with that
    seed when ``training``), the function decoding one into ``(source [S,S,3] uint8,
    target, id)``, and the damage finder for :func:`data_errors`."""
    entry = shard.load_split(index, split, (source, target), image_size, root=root)
    known = entry["ids"]
    keep = None
    if ids is not None:
        ids = [str(i) for i in ids]
        pos = {g: k for k, g in enumerate(known)}
        unknown = [i for i in ids if i not in pos]
        if unknown:
            raise DataError(f"{len(unknown)} requested id(s) are not in the {split!r} "
                            f"split of {index}; first: {unknown[0]!r}")
        order = [pos[i] for i in ids]
        if len(set(order)) != len(order):
            seen = set()
            again = next(i for i in ids if i in seen or seen.add(i))
            raise DataError(f"requested ids repeat an id; first: {again!r}")
        if not training and order != sorted(order):
            raise DataError(f"{index}: with the shards layout an evaluation subset of "
                            "ids must follow the manifest order; pass layout='files' "
                            "for another order")
        if len(ids) < len(known):
            keep = ids
    if not (known if ids is None else ids):
        raise DataError(f"no galaxies in the {split!r} split of {index}")
    wanted = None if keep is None else set(pos[i] for i in keep)
    used = [e for e in entry["shards"] if wanted is None or
            any(k in wanted for k in range(e["first"], e["first"] + e["records"]))]
    paths = [str(index.parent / e["file"]) for e in used]
    if validate:
        for p, e in zip(paths, used):
            try:
                got = os.stat(p).st_size
            except FileNotFoundError:
                raise DataError(f"{p}: shard is missing (listed in {index})") from None
            if got != e["bytes"]:
                raise DataError(f"{p}: {got} bytes, {e['bytes']} in {index}: damaged "
                                "or partly copied; rerun `python -m data.shard`")

    def tagged(f):
        return tf.data.TFRecordDataset(f).map(lambda r: (f, r))

    shard_files = tf.constant(paths)
    id_spec = {"id": tf.io.FixedLenFeature([], tf.string)}
    n = len(known) if keep is None else len(keep)
    table = None if keep is None else tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keep), tf.ones([n], tf.int32)),
        default_value=0)

    def records(pass_seed):
        if training:  # shards in a shuffled order, SHARD_CYCLE read at a time
            files = tf.data.Dataset.from_tensor_slices(
                tf.gather(shard_files, _permutation(len(paths), pass_seed)))
            ds = files.interleave(tagged, cycle_length=min(len(paths), SHARD_CYCLE),
                                  num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=ordered)
        else:  # one shard after another: records come in manifest order
            ds = tf.data.Dataset.from_tensor_slices(shard_files).interleave(
                tagged, cycle_length=1)
        if table is not None:
            ds = ds.filter(lambda f, r: table.lookup(
                tf.io.parse_single_example(r, id_spec)["id"]) > 0)
        if training:  # then shuffled in blocks of shuffle_buffer records (memory flat)
            def shuffle_block(k, block):  # block: ([m] shard paths, [m] records)
                order = _permutation(tf.size(block[0]), pass_seed, -2 - k)
                return tuple(tf.gather(b, order) for b in block)
            ds = ds.batch(shuffle_buffer).enumerate().map(shuffle_block).unbatch()
        # Known length (Keras then shows steps per epoch); a shard holding fewer records
        # than its index entry fails here, and data_errors names it.
        return ds.apply(tf.data.experimental.assert_cardinality(n))
    keys = (shard.feature_key(source), shard.feature_key(target))
    spec = dict(id_spec, **{k: tf.io.FixedLenFeature([], tf.string) for k in keys})

    def read(f, r):
        ex = tf.io.parse_single_example(r, spec)
        gid = ex["id"]
        x, y = (_decode_checked(ex[k], tf.strings.join([f, " (id ", gid, ", ", s, ")"]),
                                image_size, b)
                for k, s, b in zip(keys, (source, target), blanks))
        return x, y, gid
    check = functools.partial(_check_shards, index, tuple(used), keys, image_size)
    return n, records, read, check


def list_images(paths: str | Path | Iterable[str | Path]) -> list[str]:
    """A JPEG file, a folder (its ``*.jpg``/``*.jpeg``, sorted, not recursive) or an
    iterable of files -> list of file paths; ``DataError`` if missing or empty."""
    if isinstance(paths, (str, Path)):
        p = Path(paths)
        if p.is_dir():
            files = sorted(str(f) for f in p.iterdir()
                           if f.suffix.lower() in _JPEG_SUFFIXES and f.is_file())
            if not files:
                raise DataError(f"{p}: folder holds no .jpg/.jpeg files")
            return files
        files = [str(p)]
    else:
        files = [str(f) for f in paths]
        if not files:
            raise DataError("no image files given")
    stat_all(files, "given")
    return files


def image_dataset(paths: str | Path | Iterable[str | Path], batch_size: int, *,
                  survey: str | None = None, image_size: int = LUO_SIZE,
                  validate: bool = True, progress: bool | None = None) -> tf.data.Dataset:
    """Single-survey dataset for prediction: any file, folder or list of JPEGs.

    Args:
        paths: see :func:`list_images`.
        batch_size: images per batch (the last batch may be smaller).
        survey: if given, also reject blank cutouts of that survey.
        image_size, validate, progress: as in :func:`make_dataset` (no stamp cache).
    Returns:
        Batches ``(images [B, S, S, 3] float32 in [-1, 1], paths [B] string)``, in
        :func:`list_images` order, read from disk batch by batch.
    """
    files = list_images(paths)
    blank = survey_blank(survey) if survey is not None else None
    if validate:
        validate_files(files, [blank] * len(files), image_size, progress=progress)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda p: (normalize(_read_image(p, image_size, blank)), p),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    _DATASET_CHECKS[ds] = functools.partial(_check_files, tuple(files), image_size)
    return ds


# ---------------------------------------------------------------------------- errors
@contextmanager
def data_errors(dataset: tf.data.Dataset | None = None) -> Iterator[None]:
    """Turn TensorFlow errors raised while reading images into a one-line ``DataError``.

    ``with data_errors(ds): model.fit(ds)``. Our in-graph checks name the file in their
    message; a decode or read failure does not, so the files behind ``dataset`` (if it
    came from this module) are re-checked with PIL to find the culprit.
    """
    try:
        yield
    except tf.errors.OpError as e:
        found = _ASSERT_RE.search(e.message or "")
        if found:
            raise DataError(f"{found.group(1)}: {found.group(2).strip()}") from None
        check = _DATASET_CHECKS.get(dataset) if dataset is not None else None
        if check is not None:
            check()  # raises DataError naming the bad file or shard record
        first = next((ln.split("}}")[-1].strip() for ln in (e.message or "").splitlines()
                      if ln.strip()), type(e).__name__)
        raise DataError(f"reading images failed: {first}") from None


def _check_files(files: Sequence[str], image_size: int) -> None:
    for p in files:
        check_image(p, image_size)  # raises DataError naming the bad file


def _check_shards(index: Path, shards: Sequence[dict], keys: Sequence[str],
                  image_size: int) -> None:
    """Find a damaged shard (missing, wrong size or sha256) or, in intact shards, a
    record that is unparsable or holds an unusable JPEG; raise ``DataError`` naming it."""
    for e in shards:
        p = index.parent / e["file"]
        if not p.is_file():
            raise DataError(f"{p}: shard is missing (listed in {index})")
        if p.stat().st_size != e["bytes"] or file_sha256(p) != e.get("sha256"):
            raise DataError(f"{p}: shard is damaged (size or sha256 differs from "
                            f"{index}); rerun `python -m data.shard` to rewrite it")
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ("id",) + tuple(keys)}
    for e in shards:
        p = index.parent / e["file"]
        for k, r in enumerate(tf.data.TFRecordDataset(str(p))):
            try:
                ex = tf.io.parse_single_example(r, spec)
            except tf.errors.InvalidArgumentError:
                raise DataError(f"{p}: record {k} lacks one of "
                                f"{', '.join(spec)}") from None
            gid = ex["id"].numpy().decode()
            for key in keys:
                check_image(f"{p} (id {gid}, {key.split('/')[-1]})", image_size,
                            data=ex[key].numpy())


def iterate_checked(dataset: tf.data.Dataset) -> Iterator:
    """Iterate ``dataset`` like ``for batch in dataset``, raising ``DataError`` (naming
    the file) instead of a TensorFlow error trace when an image cannot be used."""
    with data_errors(dataset):
        yield from dataset
