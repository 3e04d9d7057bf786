"""Convert cutouts with a trained generator:
``python -m pix2wgan.predict --model RUN_DIR_or_generator.keras --input DIR_or_FILE --out DIR``.

Streams the inputs in batches (memory stays flat whatever their number), writes one
output per input, ``OUT/<stem>.png``, atomically, and skips outputs that already exist,
so an interrupted conversion resumes where it stopped. Before anything is converted,
every input is decoded and checked: one error lists every unusable file (missing, not a
square RGB JPEG, blank, sizes mixed), and two inputs whose outputs would share a name
(``a.jpg`` and ``a.jpeg``) are refused.

Every output carries the sha256 of the model that made it (``model-sha256``: a PNG text
chunk, or the JPEG comment ``model-sha256=<hex>``); it covers the ``.keras`` file(s),
or the config.json and checkpoint of an unfinished run, and for the cascade its
``--stage``. A rerun into the same ``--out`` with another model refuses (exit 2) unless
``--overwrite``. ``--model RUN`` of a run killed before its end (no generator.keras, but
config.json and checkpoints/) uses the generator of its newest checkpoint, with a
warning naming its epoch.

Survey scale (millions of cutouts), one shard of a catalogue per job::

    python -m pix2wgan.predict --model RUN --manifest cat.csv --shard 3/16 --out OUT
    python -m pix2wgan.predict --merge OUT          # after all shards: index + check

``cat.csv`` has an ``id`` and a ``path`` column (relative paths are taken from the CSV's
folder); ids must be unique. Row -> shard assignment is a hash of the id
(:func:`shard_of`), the same on every machine and independent of row order, so any
batch scheduler (SLURM array, Dask, Spark) can run shard ``i`` of ``N`` anywhere. Shard
``i`` writes::

    OUT/shard-00003-of-00016/<id>.png     the outputs (atomic writes)
    OUT/shard-00003-of-00016.csv          id, source, output, status (ok|failed), reason
    OUT/shard-00003-of-00016.model.json   the model (sha256 and its files' hashes)
    OUT/shard-00003-of-00016.done         JSON counts, written when the shard finished

The catalogue is streamed (``csv`` reader, ``--chunk-rows`` rows at a time), never held
in memory (a duplicate-id check first keeps one set of the shard's ids). The shard CSV
is appended in catalogue order and fsynced per chunk, so a killed shard resumes after
its last recorded row (a cut last line is dropped and that row redone). A bad row
(missing file, unreadable or non-JPEG data, wrong size, blank cutout, unsafe id) is
recorded as ``failed`` with a one-line reason naming the file.

Exit codes: 0 done; 2 bad input (an ``error:`` report; nothing converted), or a shard
finished with failed rows (unless ``--allow-failures``; the summary line gives the
counts and the shard CSV the reasons), or ``--merge`` found missing or unfinished
shards; 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

from common.cli import Parser, add_verbose, quiet_tensorflow

FORMATS = ("png", "jpg")
#: Metadata key of the model hash in every output (PNG text chunk; JPEG comment
#: ``model-sha256=<hex>``).
TAG = "model-sha256"
#: Files checked or tagged per batch of thread work (bounds the queue of futures).
CHUNK = 256
EXIT_CODES = ("exit status: 0 done; 2 bad input or flags (nothing converted), another "
              "model's\noutputs in --out, or a shard with failed rows (unless "
              "--allow-failures);\n130 interrupted (rerun to resume)")


# --- command line -----------------------------------------------------------------------

def jpeg_surveys() -> tuple[str, ...]:
    """Surveys whose cutouts are RGB JPEGs (those with viewer RGB bands): the inputs a
    Pix2WGAN converts."""
    from data.surveys import SURVEYS
    return tuple(name for name, s in SURVEYS.items() if s.rgb_bands)


def check_survey(name: str | None) -> str | None:
    """``name`` (lower-cased) if its cutouts are RGB JPEGs, ``None`` for ``None``;
    ``ValueError`` with a one-line message otherwise."""
    from data.surveys import SURVEYS
    if name is None:
        return None
    s, jpeg = SURVEYS.get(name.lower()), jpeg_surveys()
    if s is not None and s.name in jpeg:
        return s.name
    if s is not None:  # cfht: the Lin et al. data
        raise ValueError(f"{s.name} cutouts are {''.join(s.bands)} FITS cubes for the Lin "
                         f"et al. model (python -m noise_gan.predict), not JPEG input for "
                         f"Pix2WGAN; --survey takes {', '.join(jpeg)}")
    raise ValueError(f"unknown survey {name!r}; --survey takes {', '.join(jpeg)}")


def _survey_arg(text: str) -> str:
    try:
        return check_survey(text)
    except ValueError as err:  # argparse shows this message, not a generic one
        raise argparse.ArgumentTypeError(str(err)) from None


def make_parser(prog: str, description: str, model_help: str) -> argparse.ArgumentParser:
    """The flags shared by ``pix2wgan.predict`` and ``cascade.predict``."""
    p = Parser(prog=prog, description=description, epilog=EXIT_CODES)
    p.add_argument("--model", help=model_help)
    p.add_argument("--input", help="a JPEG file or a folder of JPEGs")
    p.add_argument("--out", help="output folder")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (lossless, default) or jpg (quality 90, like the viewer)")
    p.add_argument("--survey", type=_survey_arg, default=None,
                   metavar="{" + ",".join(jpeg_surveys()) + "}",
                   help="input survey: also reject its blank (grey) cutouts")
    p.add_argument("--overwrite", action="store_true",
                   help="redo existing outputs (needed to replace another model's)")
    p.add_argument("--workers", type=int, default=4,
                   help="threads decoding, checking and encoding images")
    add_verbose(p)
    add_manifest_args(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    return make_parser(
        "python -m pix2wgan.predict",
        "Turn input-survey JPEG cutouts into pseudo-target (e.g. pseudo-HSC) images\n"
        "with a trained Pix2WGAN generator.",
        "generator .keras file, or a run folder (holding generator.keras, or the "
        "config.json and checkpoints of an unfinished run)")


def add_manifest_args(p: argparse.ArgumentParser) -> None:
    """The survey-scale flags (``--manifest``, ``--shard``, ``--merge``, ...)."""
    g = p.add_argument_group("survey-scale sharded inference")
    g.add_argument("--manifest", help="CSV catalogue with an id and a path column "
                                      "(instead of --input)")
    g.add_argument("--shard", default="0/1", help="run shard I of N, as I/N (0-based; "
                                                  "default 0/1 = the whole catalogue)")
    g.add_argument("--id-column", default="id", help="catalogue column of the ids")
    g.add_argument("--path-column", default="path",
                   help="catalogue column of the JPEG paths")
    g.add_argument("--chunk-rows", type=int, default=256,
                   help="catalogue rows read, decoded and recorded at a time")
    g.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even if rows failed (they are recorded as failed)")
    g.add_argument("--merge", metavar="OUT",
                   help="write OUT/index.csv listing every shard manifest and check "
                        "that all shards finished (needs no model)")


def check_args(p: argparse.ArgumentParser, args) -> None:
    """Exactly one of --input / --manifest / --merge; --model and --out when converting;
    a well-formed --shard. Errors exit with a one-line message (code 2)."""
    modes = [m for m in ("input", "manifest", "merge") if getattr(args, m)]
    if len(modes) != 1:
        p.error("give exactly one of --input, --manifest or --merge")
    if args.merge:
        return
    for flag in ("model", "out"):
        if not getattr(args, flag):
            p.error(f"--{flag} is required")
    if args.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.chunk_rows < 1 or args.workers < 1:
        p.error("--chunk-rows and --workers must be >= 1")
    try:
        args.shard_index = parse_shard(args.shard)
    except ValueError as err:
        p.error(str(err))


def run_main(args, make_model: Callable[[], "Model"]) -> int:
    """Run a parsed predict command line (``check_args`` applied): ``--merge``,
    ``--manifest`` or ``--input``. ``make_model()`` is called only to convert."""
    from common.errors import run_cli
    if args.merge:
        return run_cli(lambda: _merge_cli(args.merge))
    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow
    if args.manifest:
        return run_cli(lambda: _manifest_cli(args, make_model))
    return run_cli(lambda: convert(
        make_model(), args.input, args.out, batch_size=args.batch_size,
        fmt=args.format, survey=args.survey, overwrite=args.overwrite,
        workers=args.workers))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run_main(args, lambda: generator_model(args.model))


# --- models -----------------------------------------------------------------------------

@dataclass
class Model:
    """What converts, and what identifies it.

    Attributes:
        load: called once, only if something is left to convert; returns
            ``(fn, multiple)``: ``fn`` maps ``[B, S, S, 3]`` float32 in [-1, 1] to the
            same (any generator-like callable, e.g. G2∘G1), and ``multiple`` is the
            number ``S`` must be divisible by.
        files: every file it is read from, in a fixed order.
        params: whatever else sets its outputs (e.g. the cascade stage).
        train_size: side of its training cutouts (``None``: unknown).
        warning: one line printed (stderr) before converting, e.g. an unfinished run.
    """
    load: Callable
    files: Sequence[Path] = ()
    params: dict = field(default_factory=dict)
    train_size: int | None = None
    warning: str = ""

    @cached_property
    def hashes(self) -> dict[str, str]:
        """``{file: sha256}`` of :attr:`files`."""
        from common.io import file_sha256
        return {str(f): file_sha256(f) for f in self.files}

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the files' contents (not their names) and ``params``."""
        import hashlib
        import json
        h = hashlib.sha256("".join(self.hashes.values()).encode())
        h.update(json.dumps(self.params, sort_keys=True).encode())
        return h.hexdigest()

    def record(self) -> dict:
        return {"sha256": self.sha256, "files": self.hashes, "params": self.params}


def as_model(model) -> Model:
    """A :class:`Model`, or a bare ``load`` callable (no files: its hash is a constant)."""
    return model if isinstance(model, Model) else Model(model)


def saved_model(saved, load, params=None) -> Model:
    """A :class:`Model` of a ``pix2wgan.trainer.Saved`` (files, training size, warning)."""
    return Model(load, saved.files, params or {}, saved.config.get("image_size"),
                 saved.warning)


def generator_model(model_path) -> Model:
    """The Pix2WGAN generator at ``model_path`` (a ``.keras`` file or a run folder,
    finished or not), compiled once as a ``tf.function`` for inference
    (``training=False``). Missing or non-Keras files are one-line errors here, before
    anything is converted."""
    from pix2wgan.trainer import find_generator
    saved = find_generator(model_path)

    def load():
        import tensorflow as tf

        from common.layers import unet_depth
        from pix2wgan.trainer import load_generator
        generator = load_generator(saved)
        fn = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
        return fn, 2 ** unet_depth(generator)
    return saved_model(saved, load)


def predict(model_path, inputs, out_dir, **kw) -> list[Path]:
    """Convert every JPEG in ``inputs`` with the generator at ``model_path`` (a
    ``.keras`` file or a run folder); returns the output paths (see :func:`convert`)."""
    return convert(generator_model(model_path), inputs, out_dir, **kw)


# --- outputs ----------------------------------------------------------------------------

def save_image(img, dst: Path, fmt: str, sha: str) -> None:
    """Write uint8 ``[S, S, 3]`` to ``dst`` atomically, PNG (lossless) or JPEG (the
    viewer's quality), tagged with the model hash ``sha`` (:data:`TAG`)."""
    from PIL import Image, PngImagePlugin

    from common.io import atomic_path
    from data.surveys import JPEG_QUALITY
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(TAG, sha)
        kw = {"format": "PNG", "pnginfo": info}
    else:
        kw = {"format": "JPEG", "quality": JPEG_QUALITY,
              "comment": f"{TAG}={sha}".encode()}
    with atomic_path(dst) as tmp:
        Image.fromarray(img).save(tmp, **kw)


def read_tag(path: Path) -> str | None:
    """The model hash an output carries (:data:`TAG`); ``None`` if none or unreadable.
    Reads the header only (PIL reads chunks lazily, up to the pixel data)."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            info = dict(img.info)
    except (OSError, SyntaxError, ValueError):
        return None
    if TAG in info:
        return str(info[TAG])
    comment = info.get("comment", b"")
    if isinstance(comment, bytes):
        comment = comment.decode("ascii", "replace")
    return comment[len(TAG) + 1:] if comment.startswith(f"{TAG}=") else None


def not_ours(what: str, theirs: str | None, ours: str) -> str:
    """The one-line refusal to mix two models' outputs: ``"<what> made by <theirs>, not
    by this model ..."`` (``theirs``: a sha256, ``None`` for untagged outputs)."""
    made = (f"model sha256 {theirs[:12]}" if theirs else
            "an unrecorded model (written before predict recorded its model)")
    return (f"{what} made by {made}, not by this model (sha256 {ours[:12]}): pass "
            f"--overwrite to redo them with this model, or choose another --out")


def output_paths(files: Sequence, out_dir: Path, suffix: str) -> dict:
    """``{input: out_dir/<stem>.<suffix>}``; a one-line ``DataError`` naming two inputs
    that would share an output (same stem, e.g. ``a.jpg`` and ``a.jpeg``, or stems that
    differ only in case, which collide on case-insensitive file systems)."""
    from common.errors import DataError
    seen, out = {}, {}
    for f in files:
        stem = Path(f).stem
        first = seen.setdefault(stem.casefold(), f)
        if first != f:
            raise DataError(f"{first} and {f} would both be written to "
                            f"{out_dir / (stem + '.' + suffix)}; outputs are named after "
                            f"the input's stem: rename or move one")
        out[f] = out_dir / f"{stem}.{suffix}"
    return out


def _chunked_map(fn, items: Sequence, workers: int, desc: str = "", progress=False):
    """``fn`` over ``items`` on ``workers`` threads, ``CHUNK`` at a time (memory and
    queued futures stay bounded); yields ``(item, result)`` in order. The bar shows on
    a terminal only (``progress``), and vanishes when done."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(items), desc=desc, unit="file", leave=False,
                 disable=None if progress else True) as bar:
        for k in range(0, len(items), CHUNK):
            part = items[k:k + CHUNK]
            yield from zip(part, pool.map(fn, part))
            bar.update(len(part))


def check_made_by(model: Model, existing: Sequence[Path], workers: int = 4) -> None:
    """One-line ``DataError`` unless every output in ``existing`` carries ``model``'s
    hash: a rerun with another model must not keep the old model's images."""
    from common.errors import DataError
    other = [(p, tag) for p, tag in _chunked_map(read_tag, existing, workers)
             if tag != model.sha256]
    if other:
        (path, tag), n = other[0], len(other)
        raise DataError(not_ours(f"{path.parent}: {n} of the {len(existing)} existing "
                                 f"outputs (e.g. {path.name}) were", tag, model.sha256))


def _start(model: Model, *folders: Path) -> None:
    """Before a run: the model's warning, and the temporaries that killed writers left
    in ``folders`` removed (a rerun never leaves them behind)."""
    from common.io import clean_stale_tmp
    if model.warning:
        print(model.warning, file=sys.stderr)
    for folder in folders:
        clean_stale_tmp(folder)


# --- inputs -----------------------------------------------------------------------------

def _blank(survey: str | None) -> int | None:
    from data.pipeline import survey_blank
    survey = check_survey(survey)
    return None if survey is None else survey_blank(survey)


def _read_image(src: str, size: int | None, blank: int | None):
    """Decode one JPEG -> ``(uint8 [S, S, 3] or None, one-line reason naming it or "")``;
    ``size``: the side required (``None``: any square)."""
    import numpy as np
    from PIL import Image

    from data.render import is_blank
    try:
        with Image.open(src) as img:
            img.load()
            fmt, mode = img.format, img.mode
            arr = np.asarray(img)
    except FileNotFoundError:
        return None, f"{src}: file is missing"
    except (OSError, SyntaxError, ValueError) as err:
        return None, f"{src}: not a readable image ({str(err).splitlines()[0][:120]})"
    if fmt != "JPEG":
        return None, f"{src}: not a JPEG file (PIL reads it as {fmt})"
    if mode != "RGB" or arr.shape[0] != arr.shape[1] or (size and arr.shape[0] != size):
        want = f"{size}x{size}" if size else "square"
        return None, f"{src}: expected a {want} RGB image, got " \
                     f"{arr.shape[1]}x{arr.shape[0]} {mode}"
    if blank is not None and is_blank(arr, blank):
        return None, f"{src}: blank cutout (survey blank level {blank})"
    return arr, ""


def check_inputs(files: Sequence[str], blank: int | None, workers: int = 4,
                 progress: bool = False) -> int:
    """Decode every input (on ``workers`` threads) and return their common side.

    Raises one ``DataError`` listing every unusable file (missing, unreadable, not a
    square RGB JPEG, blank) and, when the inputs mix sizes, naming one file of each
    size: all problems in one report, before anything is converted.
    """
    from common.errors import DataError

    def side(f):
        arr, reason = _read_image(f, None, blank)
        return (None if arr is None else arr.shape[0]), reason  # drop the pixels
    bad, first_of = [], {}
    for f, (s, reason) in _chunked_map(side, files, workers, "checking inputs", progress):
        if s is None:
            bad.append(reason)
        else:
            first_of.setdefault(s, f)
    if len(first_of) > 1:
        bad.append("the inputs mix sizes: " + ", ".join(
            f"{f} is {s}x{s}" for s, f in sorted(first_of.items())) +
            " (one size per run)")
    if len(bad) == 1:
        raise DataError(bad[0])
    if bad:
        raise DataError(f"{len(bad)} problems with the {len(files)} inputs, nothing "
                        f"converted:\n  " + "\n  ".join(bad))
    return next(iter(first_of))


def size_note(size: int, model: Model) -> None:
    """One line when the inputs' side differs from the model's training cutouts."""
    t = model.train_size
    if t and size != t:
        print(f"note: inputs are {size}x{size} px but the model was trained on {t}x{t} px "
              f"cutouts: for the same field of view their pixel scale differs from "
              f"training")


# --- one folder -------------------------------------------------------------------------

def convert(model, inputs, out_dir, *, batch_size=32, fmt="png", survey=None,
            overwrite=False, workers=4, progress=True) -> list[Path]:
    """The machinery behind every ``predict`` CLI (Pix2WGAN, Cascade Pix2WGAN).

    Args:
        model: a :class:`Model` (or a bare ``load`` callable, see :class:`Model`).
        inputs: a JPEG, a folder of JPEGs or a list of files.
        out_dir: one ``<stem>.<fmt>`` per input, written atomically and tagged with the
            model's hash; existing ones are skipped unless ``overwrite``, and must be
            this model's.
        survey: reject that survey's blank cutouts.
    Returns:
        The output paths, in input order (new and existing).
    """
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf
    from tqdm import tqdm

    from common.errors import DataError
    from common.images import denormalize
    from data import pipeline

    model = as_model(model)
    blank = _blank(survey)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    files = pipeline.list_images(inputs)
    outputs = output_paths(files, out_dir, fmt)
    _start(model, out_dir)
    done = set() if overwrite else {f for f in files if outputs[f].exists()}
    check_made_by(model, [outputs[f] for f in files if f in done], workers)
    todo = [f for f in files if f not in done]
    if todo:
        size = check_inputs(todo, blank, workers, progress)
        fn, multiple = model.load()
        if size % multiple:
            raise DataError(f"{todo[0]}: size {size} is not divisible by {multiple}, "
                            f"which this model needs")
        size_note(size, model)
        ds = pipeline.image_dataset(todo, batch_size, survey=survey, image_size=size,
                                    validate=False, progress=progress)
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="predict")
        save = lambda img, src: save_image(  # noqa: E731
            img, outputs[src.decode()], fmt, model.sha256)
        with ThreadPoolExecutor(max_workers=workers) as pool, pipeline.data_errors(ds):
            for images, paths in ds:
                fake = denormalize(fn(images), dtype=tf.uint8).numpy()
                list(pool.map(save, fake, paths.numpy()))
                bar.update(len(fake))
        bar.close()
    print(f"{len(todo)} converted, {len(files) - len(todo)} already done: wrote "
          f"{len(todo)} {fmt.upper()}s to {out_dir}/ (model sha256 {model.sha256[:16]})")
    return [outputs[f] for f in files]


# --- survey-scale sharded inference ----------------------------------------------------

#: Ids become file names: letters, digits and ``._+-``, not starting with a dot, no
#: separators (no path traversal), at most 200 characters.
_SAFE_ID = r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}"
RECORD_FIELDS = ("id", "source", "output", "status", "reason")


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/16"`` -> ``(3, 16)``; ``ValueError`` with a one-line message otherwise."""
    parts = str(text).split("/")
    try:
        i, n = (int(x) for x in parts)
        if len(parts) != 2:
            raise ValueError
    except ValueError:
        raise ValueError(f"--shard must be I/N with integers 0 <= I < N, got "
                         f"{text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N and N >= 1")
    return i, n


def shard_of(galaxy_id: str, n: int) -> int:
    """The shard (``0..n-1``) of a catalogue row: a keyed-free stable hash of its id
    (blake2b, not Python's per-process ``hash``), so every machine agrees, rows may be in
    any order, and appending rows to the catalogue never moves existing ones."""
    import hashlib
    digest = hashlib.blake2b(str(galaxy_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def shard_name(i: int, n: int) -> str:
    return f"shard-{i:05d}-of-{n:05d}"


def iter_manifest(path, id_column="id", path_column="path"):
    """Stream a catalogue CSV: yields ``(id, source path)`` one row at a time (memory
    independent of its length); relative paths are resolved against the CSV's folder.
    ``DataError`` if the file or a column is missing."""
    import csv

    from common.errors import DataError
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} not found")
    base = path.resolve().parent
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for col, flag in ((id_column, "--id-column"), (path_column, "--path-column")):
            if col not in cols:
                raise DataError(f"{path}: no {col!r} column ({flag}); columns are "
                                f"{', '.join(cols) or 'none'}")
        for row in reader:
            src = (row.get(path_column) or "").strip()
            yield (row.get(id_column) or "").strip(), str(base / src) if src else ""


def check_ids(manifest, shard=(0, 1), id_column="id", path_column="path") -> None:
    """One-line ``DataError`` naming the first id that two rows of shard ``shard`` share,
    before anything is converted (ids name the outputs). Ids that differ only in case
    count as one: their outputs collide on case-insensitive file systems. Unsafe ids
    are skipped (recorded as failed, no output). Memory: one set of the shard's ids."""
    import re

    from common.errors import DataError
    i, n = shard

    def rows():
        for row, (gid, src) in enumerate(iter_manifest(manifest, id_column, path_column),
                                         1):
            if shard_of(gid, n) == i and re.fullmatch(_SAFE_ID, gid):
                yield row, gid, src
    seen = set()
    for row, gid, src in rows():
        key = gid.casefold()
        if key in seen:  # rare: find the first row again rather than keep every path
            first, fid, fsrc = next(r for r in rows() if r[1].casefold() == key)
            same = "the same id" if fid == gid else "ids that differ only in case"
            raise DataError(f"{manifest}: data rows {first} and {row} have {same} "
                            f"({fid!r}: {fsrc or '(no path)'}; {gid!r}: "
                            f"{src or '(no path)'}); ids name the output files, so each "
                            f"must be unique")
        seen.add(key)


def _recorded(csv_path: Path) -> tuple[int, str | None]:
    """``(rows recorded, last recorded id)`` of a shard CSV, streaming it; a cut last
    line (a kill mid-write) is removed first, so its row is redone."""
    import csv
    import os
    size = csv_path.stat().st_size
    with open(csv_path, "rb+") as f:  # drop an unterminated last line
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                keep = 0
                for line in f:
                    if line.endswith(b"\n"):
                        keep += len(line)
                f.truncate(keep)
                os.fsync(f.fileno())
    rows, last = 0, None
    with open(csv_path, newline="") as f:
        for rec in csv.DictReader(f):
            rows, last = rows + 1, rec["id"]
    return rows, last


def _read_row(gid: str, src: str, size: int | None, blank: int | None):
    """Decode one catalogue row -> ``(uint8 [S, S, 3] or None, reason or "")``."""
    import re
    if not re.fullmatch(_SAFE_ID, gid):
        return None, f"{src or '(no path)'}: unsafe or empty id {gid[:60]!r} (ids name " \
                     f"output files: letters, digits, ._+- only)"
    if not src:
        return None, f"(row {gid}): empty path"
    return _read_image(src, size, blank)


def _shard_model(path: Path) -> str | None:
    """The model sha256 a shard's ``.model.json`` records (``None``: no record)."""
    import json
    return json.loads(path.read_text()).get("sha256") if path.is_file() else None


def predict_manifest(model, manifest, out_dir, *, shard=(0, 1), batch_size=32, fmt="png",
                     survey=None, overwrite=False, chunk_rows=256, workers=4,
                     id_column="id", path_column="path", progress=True) -> dict:
    """Convert shard ``shard = (i, n)`` of a catalogue; returns its counts.

    Args:
        model: as in :func:`convert`. A shard already started by another model (its
            ``.model.json``) is refused unless ``overwrite``.
        manifest: CSV with ``id_column`` and ``path_column`` (see :func:`iter_manifest`);
            duplicate ids are refused (:func:`check_ids`) before anything is converted.
        out_dir: receives ``shard-IIIII-of-NNNNN/``, ``.csv``, ``.model.json`` and
            ``.done`` (module docstring).
        overwrite: restart the shard from scratch.
        chunk_rows: rows decoded, converted and recorded together (memory ~ chunk_rows
            decoded cutouts, independent of the catalogue's length).
        workers: threads for JPEG decoding and output encoding (PIL releases the GIL).
    Returns:
        ``{"shard", "rows", "ok", "failed", "resumed", "converted"}`` (``resumed``: rows
        already recorded by an earlier run of this shard).
    """
    import csv
    import json
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from tqdm import tqdm

    from common.io import atomic_write_text
    from common.errors import DataError

    model = as_model(model)
    i, n = shard
    name = shard_name(i, n)
    out_dir = Path(out_dir)
    img_dir, rec_path, done_path, model_path = (
        out_dir / name, out_dir / f"{name}.csv", out_dir / f"{name}.done",
        out_dir / f"{name}.model.json")
    blank = _blank(survey)
    _start(model, out_dir, img_dir)
    theirs = _shard_model(model_path)
    started = rec_path.is_file() or done_path.is_file()
    if not overwrite and (theirs or started) and theirs != model.sha256:
        raise DataError(not_ours(f"{name}: its rows in {out_dir} were", theirs,
                                 model.sha256))
    tail = f"(model sha256 {model.sha256[:16]})"
    if done_path.is_file() and not overwrite:
        counts = json.loads(done_path.read_text())
        print(f"{name}: already complete ({counts['ok']} ok, {counts['failed']} failed): "
              f"wrote nothing; outputs in {img_dir}/, rows in {rec_path} {tail}")
        return dict(counts, resumed=counts["rows"], converted=0)
    check_ids(manifest, shard, id_column, path_column)
    if overwrite:
        for pth in (rec_path, done_path):
            pth.unlink(missing_ok=True)
    atomic_write_text(model_path, json.dumps(model.record(), indent=1) + "\n")
    img_dir.mkdir(parents=True, exist_ok=True)
    resumed, last_id = _recorded(rec_path) if rec_path.is_file() else (0, None)
    counts = {"shard": name, "rows": resumed, "ok": 0, "failed": 0}
    if resumed:  # re-count what is recorded (streamed)
        with open(rec_path, newline="") as f:
            for rec in csv.DictReader(f):
                counts["ok" if rec["status"] == "ok" else "failed"] += 1
    ok_before = counts["ok"]

    state = {"fn": None, "multiple": 1, "size": None}
    pool = ThreadPoolExecutor(max_workers=workers)
    bar = tqdm(unit="row", disable=not progress, desc=name)

    def run_chunk(rows, writer, f):
        decoded = list(pool.map(lambda r: _read_row(r[0], r[1], state["size"], blank),
                                rows))
        records = []
        good = []
        for (gid, src), (arr, reason) in zip(rows, decoded):
            if arr is not None and state["size"] is None:
                state["size"] = arr.shape[0]
            if arr is not None and arr.shape[0] != state["size"]:
                arr, reason = None, (f"{src}: expected a {state['size']}x{state['size']} "
                                     f"RGB image, got {arr.shape[1]}x{arr.shape[0]}")
            if arr is not None and state["fn"] is None:
                state["fn"], state["multiple"] = model.load()
                size_note(state["size"], model)
            if arr is not None and arr.shape[0] % state["multiple"]:
                arr, reason = None, (f"{src}: size {arr.shape[0]} is not divisible by "
                                     f"{state['multiple']}, which this model needs")
            out = img_dir / f"{gid}.{fmt}"
            records.append({"id": gid, "source": src, "output": str(out) if arr is not
                            None else "", "status": "ok" if arr is not None else "failed",
                            "reason": reason})
            if arr is not None:
                good.append((arr, out))
        for k in range(0, len(good), batch_size):
            part = good[k:k + batch_size]
            x = np.stack([a for a, _ in part]).astype(np.float32) / 127.5 - 1.0  # eq. 8
            if len(part) < batch_size:  # pad: one input shape, one trace of fn
                x = np.concatenate([x, np.zeros((batch_size - len(part),) + x.shape[1:],
                                                np.float32)])
            y = np.asarray(state["fn"](x))[:len(part)]
            y = np.clip(np.rint(y * 127.5 + 127.5), 0, 255).astype(np.uint8)
            list(pool.map(lambda img, dst: save_image(img, dst, fmt, model.sha256),
                          y, [o for _, o in part]))
        for rec in records:  # recorded only once its output is on disk
            writer.writerow(rec)
            counts["ok" if rec["status"] == "ok" else "failed"] += 1
        counts["rows"] += len(records)
        f.flush()
        os.fsync(f.fileno())
        bar.update(len(records))

    position, chunk = 0, []
    new_file = not rec_path.is_file() or rec_path.stat().st_size == 0
    try:
        with open(rec_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
            if new_file:
                writer.writeheader()
            for gid, src in iter_manifest(manifest, id_column, path_column):
                if shard_of(gid, n) != i:
                    continue
                position += 1
                if position <= resumed:
                    if position == resumed and gid != last_id:
                        raise DataError(
                            f"{rec_path}: row {resumed} is {last_id!r} but the manifest "
                            f"now has {gid!r} there: the catalogue changed since this "
                            f"shard started; rerun with --overwrite")
                    continue
                chunk.append((gid, src))
                if len(chunk) >= chunk_rows:
                    run_chunk(chunk, writer, f)
                    chunk = []
            if chunk:
                run_chunk(chunk, writer, f)
    finally:
        pool.shutdown()
        bar.close()
    if position < resumed:
        raise DataError(f"{rec_path}: {resumed} rows recorded but the manifest now "
                        f"assigns only {position} to this shard; rerun with --overwrite")
    atomic_write_text(done_path, json.dumps(counts) + "\n")
    print(f"{name}: {counts['rows'] - resumed} rows this run, {resumed} already "
          f"recorded; {counts['ok']} ok, {counts['failed']} failed: wrote "
          f"{counts['ok'] - ok_before} {fmt.upper()}s to {img_dir}/ and their rows to "
          f"{rec_path} {tail}")
    return dict(counts, resumed=resumed, converted=counts["rows"] - resumed)


def _manifest_cli(args, make_model) -> None:
    """``--manifest``: convert the shard; a ``DataError`` (exit 2) if rows failed,
    unless ``--allow-failures``."""
    from common.errors import DataError
    c = predict_manifest(
        make_model(), args.manifest, args.out, shard=args.shard_index,
        batch_size=args.batch_size, fmt=args.format, survey=args.survey,
        overwrite=args.overwrite, chunk_rows=args.chunk_rows, workers=args.workers,
        id_column=args.id_column, path_column=args.path_column)
    if c["failed"] and not args.allow_failures:
        raise DataError(f"{c['failed']} of {c['rows']} rows of {c['shard']} failed "
                        f"(reasons in {Path(args.out) / (c['shard'] + '.csv')}); pass "
                        f"--allow-failures to accept a shard with failed rows")


def merge(out_dir) -> dict:
    """Index the shards of ``out_dir``: write ``OUT/index.csv`` (one line per shard:
    name, manifest CSV, rows, ok, failed, complete) and return ``{"shards", "rows",
    "ok", "failed", "missing", "incomplete", "model"}`` (``model``: the shards' model
    sha256, ``None`` if unrecorded). ``DataError`` when shards of different ``N`` or of
    different models are mixed, or none is found."""
    import csv
    import io
    import json
    import re

    from common.io import atomic_write_text
    from common.errors import DataError
    out_dir = Path(out_dir)
    found = {}
    for pth in sorted(out_dir.glob("shard-*-of-*.csv")):
        m = re.fullmatch(r"shard-(\d{5})-of-(\d{5})\.csv", pth.name)
        if m:
            found[int(m.group(1)), int(m.group(2))] = pth
    if not found:
        raise DataError(f"{out_dir}: no shard-IIIII-of-NNNNN.csv manifests found")
    sizes = {n for _, n in found}
    if len(sizes) != 1:
        raise DataError(f"{out_dir}: shards of different totals {sorted(sizes)} are "
                        f"mixed; keep one --shard I/N layout per output folder")
    models = {}
    for i, n in found:
        sha = _shard_model(out_dir / f"{shard_name(i, n)}.model.json")
        models.setdefault(sha, shard_name(i, n))
    models.pop(None, None)
    if len(models) > 1:
        (a, na), (b, nb) = list(models.items())[:2]
        raise DataError(f"{out_dir}: shards were made by different models ({na}: sha256 "
                        f"{a[:12]}, {nb}: sha256 {b[:12]}); redo the odd ones with the "
                        f"same --model and --overwrite")
    n = sizes.pop()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["shard", "manifest", "rows", "ok", "failed", "complete"])
    total = {"shards": n, "rows": 0, "ok": 0, "failed": 0, "missing": [],
             "incomplete": [], "model": next(iter(models), None)}
    for i in range(n):
        name = shard_name(i, n)
        if (i, n) not in found:
            total["missing"].append(name)
            continue
        done = out_dir / f"{name}.done"
        if done.is_file():
            c = json.loads(done.read_text())
        else:
            total["incomplete"].append(name)
            c = {"rows": 0, "ok": 0, "failed": 0}
            with open(found[i, n], newline="") as f:
                for rec in csv.DictReader(f):
                    c["rows"] += 1
                    c["ok" if rec["status"] == "ok" else "failed"] += 1
        for k in ("rows", "ok", "failed"):
            total[k] += c[k]
        w.writerow([name, found[i, n].name, c["rows"], c["ok"], c["failed"],
                    int(done.is_file())])
    atomic_write_text(out_dir / "index.csv", buf.getvalue())
    return total


def _merge_cli(out_dir) -> None:
    from common.errors import DataError
    t = merge(out_dir)
    model = f" (model sha256 {t['model'][:16]})" if t["model"] else ""
    print(f"wrote {Path(out_dir) / 'index.csv'}: {t['shards']} shards, {t['rows']} rows, "
          f"{t['ok']} ok, {t['failed']} failed{model}")
    bad = t["missing"] + t["incomplete"]
    if bad:
        raise DataError(f"{len(t['missing'])} shard(s) missing, {len(t['incomplete'])} "
                        f"unfinished; first: {bad[0]}")


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
