"""ugriz FITS cubes on disk -> ``tf.data.Dataset`` for the Lin et al. (2021) noise GAN.

Reads the layout of :mod:`data.layout` (written alike by the real downloader,
``data.download`` + ``data.lin_pairs``, and by ``python -m data.simulate --setup
lin``)::

    ROOT/paired_train/{sdss,cfht}/<id>.fits   pairs: both members under one id
    ROOT/paired_test/{sdss,cfht}/<id>.fits    test pairs (+ truth_{sdss,cfht}/ if simulated)
    ROOT/unpaired/{sdss,cfht}/<id>.fits       unpaired training galaxies

Each file is a float32 ``[5, H, W]`` u,g,r,i,z cube in nanomaggies per pixel; here every
image becomes ``[H, W, 5]`` (NHWC once batched) and is stretched with :func:`stretch`
(notes/lin2021.md, "Data handling"). Images are streamed: the datasets hold file
*paths*, and each FITS file is read by a ``tf.numpy_function`` in a parallel ``map``
when its batch is needed, so a survey never has to fit in memory.

Bad input is reported as a one-line :class:`common.errors.DataError` naming the folder or
file: up front (missing or empty folders, a pair member without its partner, unknown
ids; optionally ``validate=True`` reads every file once), and while iterating (a file
that cannot be read, has the wrong shape, or NaN / inf pixels). TensorFlow wraps errors
raised inside a ``map``; iterate through :func:`iterate_checked`, or wrap ``model.fit``
in ``with lin_data_errors():``, to get the ``DataError`` back.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from common.errors import DataError
from data.cube import BANDS, read_cube
from data.layout import PAIRED_TEST, PAIRED_TRAIN, TRUTH_PREFIX, UNPAIRED, check_id
from data.surveys import LIN_CFHT_SIZE, LIN_SDSS_SIZE, LIN_SURVEYS

#: Bands along the last axis, in order (``data.cube.BANDS``).
N_BANDS = len(BANDS)
#: Default batch composition of §IV-B: 24 unpaired SDSS + 24 unpaired CFHT + 24 pairs.
BATCH_UNPAIRED = 24
BATCH_PAIRED = 24
#: Errors raised inside the tf.data reader carry their DataError text between these.
_TAG, _END = "<<LinDataError>>", "<</LinDataError>>"
_TAG_RE = re.compile(re.escape(_TAG) + r"(.*?)" + re.escape(_END), re.S)


# ---------------------------------------------------------------------------- stretch
def stretch(x):
    """Lin et al.'s pre-processing, ``I = sign(I0) (sqrt(|I0| + 1) - 1)``.

    ``x``: nanomaggies per pixel (any shape, any real value: background-subtracted
    images have negative sky pixels). Returns the same shape, float32 for a TensorFlow
    input (a ``tf.Tensor``), float64 numpy for anything else. Odd and monotonic; about
    ``x / 2`` for ``|x| << 1`` (the sky noise, ~0.002-0.1 nMgy), ``sqrt(|x|)`` for large
    ``|x|`` (a 14th-mag galaxy's peak ~1e3 nMgy/px -> ~31). Inverse: :func:`unstretch`.
    """
    if tf.is_tensor(x):
        x = tf.cast(x, tf.float32)
        return tf.sign(x) * (tf.sqrt(tf.abs(x) + 1.0) - 1.0)
    x = np.asarray(x, np.float64)
    return np.sign(x) * (np.sqrt(np.abs(x) + 1.0) - 1.0)


def unstretch(y):
    """Exact inverse of :func:`stretch`: ``I0 = sign(I) ((|I| + 1)^2 - 1)`` in nanomaggies.

    ``y``: stretched values (any shape and real value, e.g. a generator's output);
    tensors give float32 tensors, anything else float64 numpy.
    """
    if tf.is_tensor(y):
        y = tf.cast(y, tf.float32)
        a = tf.abs(y)
        return tf.sign(y) * (a * (a + 2.0))
    y = np.asarray(y, np.float64)
    a = np.abs(y)
    return np.sign(y) * (a * (a + 2.0))  # (a + 1)^2 - 1 without the cancellation


# ---------------------------------------------------------------------------- reading
def read_cube_hwc(path: str | Path, size: int | None = None) -> np.ndarray:
    """One ugriz cube as ``[H, W, 5]`` float32 nanomaggies (bands u, g, r, i, z last).

    Reads with ``data.cube.read_cube`` (its checks, no WCS), then checks the size and
    the pixels. ``size``: the expected ``H = W`` (``None``: any square).

    Raises:
        DataError naming ``path``: missing or unreadable file, not a ``[5, H, W]`` cube,
        not ``size x size``, or NaN / inf pixels.
    """
    data, _, _ = read_cube(path, wcs=False)
    _, h, w = data.shape
    if h != w or (size is not None and h != size):
        want = f"{size}x{size}" if size is not None else "square"
        raise DataError(f"{path}: expected {want} pixels, got {h}x{w}")
    bad = ~np.isfinite(data)
    if bad.any():
        band = "ugriz"[int(np.argmax(bad.any(axis=(1, 2))))]
        raise DataError(f"{path}: {int(bad.sum())} NaN/inf pixel(s) (first in band {band})")
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def _reader(size: int):
    """numpy function ``path bytes -> [size, size, 5] float32`` for ``tf.numpy_function``;
    a ``DataError`` is re-raised tagged, so :func:`lin_data_errors` can recover it."""
    def read(path) -> np.ndarray:
        p = path.decode() if isinstance(path, bytes) else str(path)
        try:
            return read_cube_hwc(p, size)
        except DataError as err:
            raise ValueError(f"{_TAG}{err}{_END}") from None
    return read


def _load(path: tf.Tensor, size: int, stretched: bool = True) -> tf.Tensor:
    """Read one cube in the graph (only the file read holds the GIL; the stretch is a
    TF op, so parallel calls overlap)."""
    x = tf.numpy_function(_reader(size), [path], tf.float32, stateful=False)
    x.set_shape([size, size, N_BANDS])
    return stretch(x) if stretched else x


@contextlib.contextmanager
def lin_data_errors() -> Iterator[None]:
    """Turn TensorFlow errors raised while reading FITS cubes into a one-line
    ``DataError`` naming the file: ``with lin_data_errors(): model.fit(ds)``."""
    try:
        yield
    except tf.errors.OpError as e:
        found = _TAG_RE.search(e.message or "")
        if found:
            raise DataError(found.group(1)) from None
        raise


def iterate_checked(dataset: tf.data.Dataset) -> Iterator:
    """Iterate ``dataset``, raising ``DataError`` (naming the file) for a bad cube."""
    with lin_data_errors():
        yield from dataset


# ---------------------------------------------------------------------------- files
def _folder(root: Path, subset: str, survey: str) -> Path:
    return Path(root) / subset / survey


def list_cubes(root: str | Path, subset: str, survey: str) -> list[str]:
    """Sorted ``*.fits`` paths of ``ROOT/<subset>/<survey>/``.

    Raises ``DataError`` naming the folder if it is missing or holds no cube.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (simulate it with `python -m "
                        f"data.simulate --setup lin --out {root}` or download it)")
    folder = _folder(root, subset, survey)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder is missing (not a Lin et al. FITS set?)")
    with os.scandir(folder) as it:
        files = sorted(e.path for e in it if e.name.endswith(".fits")
                       and not e.name.startswith(".") and e.is_file())
    if not files:
        raise DataError(f"{folder}: folder holds no .fits cube")
    return files


def pair_files(root: str | Path, subset: str = PAIRED_TRAIN,
               ids: Iterable[str] | None = None,
               surveys: Sequence[str] = LIN_SURVEYS) -> tuple[list[str], list[list[str]]]:
    """Ids and per-survey paths of the pairs in ``ROOT/<subset>/``, sorted by id.

    ``ids``: a subset of the pairs, in the order wanted. ``surveys``: the folders each id
    must have a cube in (e.g. ``("sdss", "cfht", "truth_sdss", "truth_cfht")``).
    Returns ``(ids, [paths of surveys[0], paths of surveys[1], ...])``.

    Raises ``DataError``: missing/empty folders, a cube without its partner (named), an
    unknown or unsafe id.
    """
    lists = {s: list_cubes(root, subset, s) for s in surveys}
    stems = {s: {Path(p).stem: p for p in ps} for s, ps in lists.items()}
    first = surveys[0]
    for s in surveys[1:]:
        for a, b in ((first, s), (s, first)):
            lonely = sorted(set(stems[a]) - set(stems[b]))
            if lonely:
                raise DataError(
                    f"{stems[a][lonely[0]]}: no partner "
                    f"{_folder(Path(root), subset, b) / (lonely[0] + '.fits')} "
                    f"({len(lonely)} unpaired cube(s) in {_folder(Path(root), subset, a)})")
    known = sorted(stems[first])
    if ids is None:
        ids = known
    else:
        ids = [check_id(str(i)) for i in ids]
        unknown = [i for i in ids if i not in stems[first]]
        if unknown:
            raise DataError(f"{len(unknown)} requested id(s) are not in "
                            f"{_folder(Path(root), subset, first)}; first: {unknown[0]!r}")
        if not ids:
            raise DataError(f"no ids requested from {Path(root) / subset}")
    return ids, [[stems[s][i] for i in ids] for s in surveys]


def validate_files(paths: Iterable[str], size: int) -> int:
    """Read every cube once (:func:`read_cube_hwc`); ``DataError`` at the first bad one.
    Returns the number of files checked."""
    n = 0
    for p in paths:
        read_cube_hwc(p, size)
        n += 1
    return n


# ---------------------------------------------------------------------------- augment
def d4(x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Element ``g`` (int32 in 0..7) of the dihedral group D4 applied to ``x``
    (``[H, W, C]``, square): a left-right flip if ``g >= 4``, then ``g % 4`` counter-
    clockwise 90-degree rotations. The stamps' centres are at pixel ``(size + 1) / 2``,
    so every element maps the galaxy centre onto itself, in either survey."""
    x = tf.cond(g >= 4, lambda: tf.reverse(x, axis=[1]), lambda: x)
    return tf.image.rot90(x, k=g % 4)


def _group_element(seed: int, stream: int, index: tf.Tensor) -> tf.Tensor:
    """D4 element for element ``index`` of stream ``stream``: stateless, so the same for
    any parallelism, and independent between streams."""
    s = tf.stack([tf.constant(seed * 8 + stream, tf.int64), tf.cast(index, tf.int64)])
    return tf.random.stateless_uniform([], s, minval=0, maxval=8, dtype=tf.int32)


def _stream(paths: Sequence[Sequence[str]], sizes: Sequence[int], batch: int, seed: int,
            stream: int, augment: bool, start: int, num_parallel_calls) -> tf.data.Dataset:
    """Infinite, shuffled, batched stream of tuples of images: ``paths[j][i]`` are the
    members of item ``i`` (one member for unpaired images, two for a pair); all members
    of one item get the same D4 element. Starts at batch ``start``."""
    ds = tf.data.Dataset.from_tensor_slices(tuple(list(p) for p in paths))
    n = len(paths[0])
    # Shuffle the paths (never the images): a full permutation per pass, seeded.
    ds = ds.shuffle(n, seed=seed * 8 + stream, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate().skip(start * batch)  # paths only: skipping reads no file

    def load(i, files):
        images = [_load(f, s) for f, s in zip(files, sizes)]
        if augment:  # §IV-B: random flips and rotations by 90 deg steps
            g = _group_element(seed, stream, i)
            images = [d4(x, g) for x in images]
        return tuple(images)

    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.batch(batch, drop_remainder=True)


def lin_dataset(root: str | Path, *, batch_unpaired: int = BATCH_UNPAIRED,
                batch_paired: int = BATCH_PAIRED, seed: int = 0,
                ids: Iterable[str] | None = None, sdss_size: int = LIN_SDSS_SIZE,
                cfht_size: int = LIN_CFHT_SIZE, augment: bool = True,
                paired_subset: str = PAIRED_TRAIN, unpaired_subset: str = UNPAIRED,
                validate: bool = False, start: int = 0,
                num_parallel_calls: int | None = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Infinite training batches of Lin et al. §IV-B: unpaired SDSS, unpaired CFHT, pairs.

    Each element is a dict of stretched (:func:`stretch`) float32 NHWC tensors, bands
    u, g, r, i, z last::

        {"sdss":      [batch_unpaired, sdss_size, sdss_size, 5],   # unpaired/sdss
         "cfht":      [batch_unpaired, cfht_size, cfht_size, 5],   # unpaired/cfht
         "pair_sdss": [batch_paired,   sdss_size, sdss_size, 5],   # paired_train/sdss
         "pair_cfht": [batch_paired,   cfht_size, cfht_size, 5]}   # the same galaxies

    (the paper: 24 + 24 + 24 pairs, 64 and 136 px). Every image gets a random D4 element
    (rot90 x k and a flip, :func:`d4`); the two members of a pair get the same one,
    unpaired images independent ones. Each of the three streams is a seeded shuffle of
    its file list, reshuffled on every pass; with the same ``seed`` the batches are the
    same whatever ``num_parallel_calls``.

    Args:
        root: the set's folder. ``ids``: restrict the pairs to these ids (e.g. fewer
            pairs for an ablation). ``sdss_size`` / ``cfht_size``: expected stamp sides
            (tiny test sets use smaller ones). ``augment=False``: no D4.
        validate: read every file once up front (slow for real survey sizes).
        start: begin at this batch of the stream (a resumed run: the batches are those
            an uninterrupted stream gives from there; skipped batches read no file).
    Raises:
        DataError (up front): a missing or empty folder, a pair member without partner,
        an unknown id; with ``validate``, any bad file. (A set smaller than its batch
        is allowed: the stream repeats, so a batch may hold an image twice.)
        While iterating, bad files surface as TF errors: use :func:`iterate_checked` or
        :func:`lin_data_errors`.
    """
    for name, b in (("batch_unpaired", batch_unpaired), ("batch_paired", batch_paired)):
        if not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {b!r}")
    root = Path(root)
    un_sdss = list_cubes(root, unpaired_subset, "sdss")
    un_cfht = list_cubes(root, unpaired_subset, "cfht")
    _, (p_sdss, p_cfht) = pair_files(root, paired_subset, ids)
    if validate:
        validate_files(un_sdss + p_sdss, sdss_size)
        validate_files(un_cfht + p_cfht, cfht_size)
    kw = dict(seed=seed, augment=augment, start=start,
              num_parallel_calls=num_parallel_calls)
    sdss = _stream([un_sdss], [sdss_size], batch_unpaired, stream=0, **kw)
    cfht = _stream([un_cfht], [cfht_size], batch_unpaired, stream=1, **kw)
    pairs = _stream([p_sdss, p_cfht], [sdss_size, cfht_size], batch_paired, stream=2, **kw)
    ds = tf.data.Dataset.zip((sdss, cfht, pairs)).map(
        lambda s, c, p: {"sdss": s[0], "cfht": c[0], "pair_sdss": p[0], "pair_cfht": p[1]})
    return ds.prefetch(tf.data.AUTOTUNE)


def paired_test_dataset(root: str | Path, batch: int, subset: str = PAIRED_TEST, *,
                        ids: Iterable[str] | None = None, truth: bool | None = None,
                        stretched: bool = True, sdss_size: int = LIN_SDSS_SIZE,
                        cfht_size: int = LIN_CFHT_SIZE,
                        num_parallel_calls: int | None = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Finite, ordered batches of the test pairs, for evaluation and figures.

    Elements: ``{"id": [B] string, "sdss": [B, sdss_size, sdss_size, 5],
    "cfht": [B, cfht_size, cfht_size, 5]}`` float32, plus ``"truth_sdss"`` /
    ``"truth_cfht"`` (the simulator's noise-free cubes) when ``truth`` -- ``None``: when
    the set has ``truth_sdss/`` and ``truth_cfht/`` folders. Sorted id order (or
    ``ids``' order), no augmentation, the last batch may be smaller. ``stretched=True``:
    :func:`stretch` units, as the networks see them; ``False``: nanomaggies (e.g. for
    the flux differences of Fig. 5).

    Raises ``DataError`` up front for missing folders or partners, unknown ids.
    """
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    root = Path(root)
    if truth is None:
        truth = all((root / subset / f"{TRUTH_PREFIX}{s}").is_dir() for s in LIN_SURVEYS)
    keys = list(LIN_SURVEYS) + ([f"{TRUTH_PREFIX}{s}" for s in LIN_SURVEYS] if truth else [])
    got, paths = pair_files(root, subset, ids, surveys=keys)
    sizes = [sdss_size, cfht_size] * (2 if truth else 1)
    ds = tf.data.Dataset.from_tensor_slices((got, tuple(paths)))

    def load(gid, files):
        out = {"id": gid}
        for k, f, s in zip(keys, files, sizes):
            out[k] = _load(f, s, stretched)
        return out

    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)
