"""Convert cutouts with a trained generator:
``python -m pix2wgan.predict --model RUN_DIR_or_generator.keras --input DIR_or_FILE --out DIR``.

Streams the inputs in batches (memory stays flat whatever their number), writes one
output per input with the same stem, atomically, and skips outputs that already exist,
so an interrupted conversion resumes where it stopped.

Survey scale (millions of cutouts), one shard of a catalogue per job::

    python -m pix2wgan.predict --model RUN --manifest cat.csv --shard 3/16 --out OUT
    python -m pix2wgan.predict --merge OUT          # after all shards: index + check

``cat.csv`` has an ``id`` and a ``path`` column (relative paths are taken from the CSV's
folder). Row -> shard assignment is a hash of the id (:func:`shard_of`), the same on
every machine and independent of row order, so any batch scheduler (SLURM array,
Dask, Spark) can run shard ``i`` of ``N`` anywhere. Shard ``i`` writes::

    OUT/shard-00003-of-00016/<id>.png     the outputs (atomic writes)
    OUT/shard-00003-of-00016.csv          id, source, output, status (ok|failed), reason
    OUT/shard-00003-of-00016.done         JSON counts, written when the shard finished

The catalogue is streamed (``csv`` reader, ``--chunk-rows`` rows at a time), never held
in memory. The shard CSV is appended in catalogue order and fsynced per chunk, so a
killed shard resumes after its last recorded row (a cut last line is dropped and that
row redone). A bad row (missing file, unreadable or non-JPEG data, wrong size, blank
cutout, unsafe id) is recorded as ``failed`` with a one-line reason naming the file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("png", "jpg")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pix2wgan.predict",
        description="Turn input-survey JPEG cutouts into pseudo-target (e.g. pseudo-HSC) "
                    "images with a trained generator.")
    p.add_argument("--model",
                   help="generator .keras file, or a run folder holding generator.keras")
    p.add_argument("--input", help="a JPEG file or a folder of JPEGs")
    p.add_argument("--out", help="output folder")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (lossless, default) or jpg (quality 90, like the viewer)")
    p.add_argument("--survey", default=None,
                   help="input survey name: also reject its blank (grey) cutouts")
    p.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    add_manifest_args(p)
    return p


def add_manifest_args(p: argparse.ArgumentParser) -> None:
    """The survey-scale flags (``--manifest``, ``--shard``, ``--merge``, ...), shared by
    ``pix2wgan.predict`` and ``cascade.predict``."""
    g = p.add_argument_group("survey-scale sharded inference")
    g.add_argument("--manifest", help="CSV catalogue with an id and a path column "
                                      "(instead of --input)")
    g.add_argument("--shard", default="0/1", help="run shard I of N, as I/N (0-based; "
                                                  "default 0/1 = the whole catalogue)")
    g.add_argument("--id-column", default="id")
    g.add_argument("--path-column", default="path")
    g.add_argument("--chunk-rows", type=int, default=256,
                   help="catalogue rows read, decoded and recorded at a time")
    g.add_argument("--workers", type=int, default=4,
                   help="threads decoding and encoding images")
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


def image_size_of(path: str) -> int:
    """Side of the first input; every input must share it (checked when decoding)."""
    from PIL import Image

    from data.layout import DataError
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    if w != h:
        raise DataError(f"{path}: cutouts must be square, got {w}x{h}")
    return w


def predict(model_path, inputs, out_dir, *, batch_size=32, fmt="png", survey=None,
            overwrite=False, progress=True) -> list[Path]:
    """Convert every JPEG in ``inputs`` with the generator at ``model_path`` (a
    ``.keras`` file or a run folder) and return the output paths (new and existing)."""
    from common.layers import unet_depth
    from pix2wgan.trainer import load_generator

    def load():
        generator = load_generator(model_path)
        return (lambda x: generator(x, training=False)), 2 ** unet_depth(generator)
    return convert(load, inputs, out_dir, batch_size=batch_size, fmt=fmt, survey=survey,
                   overwrite=overwrite, progress=progress)


def convert(load, inputs, out_dir, *, batch_size=32, fmt="png", survey=None,
            overwrite=False, progress=True) -> list[Path]:
    """The machinery behind every ``predict`` CLI (Pix2WGAN, Cascade Pix2WGAN).

    Args:
        load: called once, only if something is left to convert; returns
            ``(fn, multiple)``: ``fn`` maps ``[B, S, S, 3]`` float32 in [-1, 1] to the
            same (any generator-like callable, e.g. G2∘G1), and ``multiple`` is the
            number the input side must be divisible by.
        inputs: a JPEG, a folder of JPEGs or a list of files.
        out_dir: one ``<stem>.<fmt>`` per input, written atomically; existing ones are
            skipped unless ``overwrite``.
    Returns:
        The output paths, in input order (new and existing).
    """
    import tensorflow as tf
    from PIL import Image
    from tqdm import tqdm

    from common.io import atomic_path
    from data import pipeline
    from data.layout import DataError
    from data.surveys import JPEG_QUALITY

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    files = pipeline.list_images(inputs)
    outputs = {f: out_dir / f"{Path(f).stem}.{fmt}" for f in files}
    todo = [f for f in files if overwrite or not outputs[f].exists()]
    if todo:
        size = image_size_of(todo[0])
        fn, multiple = load()
        if size % multiple:
            raise DataError(f"{todo[0]}: size {size} is not divisible by {multiple}, "
                            f"which this model needs")
        ds = pipeline.image_dataset(todo, batch_size, survey=survey, image_size=size,
                                    progress=progress)
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="predict")
        with pipeline.data_errors(ds):
            for images, paths in ds:
                fake = pipeline.denormalize(fn(images), dtype=tf.uint8).numpy()
                for img, src in zip(fake, paths.numpy()):
                    dst = outputs[src.decode()]
                    with atomic_path(dst) as tmp:
                        Image.fromarray(img).save(
                            tmp, format="PNG" if fmt == "png" else "JPEG",
                            **({} if fmt == "png" else {"quality": JPEG_QUALITY}))
                bar.update(len(fake))
        bar.close()
    print(f"{len(todo)} converted, {len(files) - len(todo)} already done -> {out_dir}")
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

    from data.layout import DataError
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

    import numpy as np
    from PIL import Image

    from data.render import is_blank
    if not re.fullmatch(_SAFE_ID, gid):
        return None, f"{src or '(no path)'}: unsafe or empty id {gid[:60]!r} (ids name " \
                     f"output files: letters, digits, ._+- only)"
    if not src:
        return None, f"(row {gid}): empty path"
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


def predict_manifest(load, manifest, out_dir, *, shard=(0, 1), batch_size=32, fmt="png",
                     survey=None, overwrite=False, chunk_rows=256, workers=4,
                     id_column="id", path_column="path", progress=True) -> dict:
    """Convert shard ``shard = (i, n)`` of a catalogue; returns its counts.

    Args:
        load: as in :func:`convert`: called once, only if a row is left to convert;
            returns ``(fn, multiple)``, ``fn`` mapping ``[B, S, S, 3]`` float32 in
            [-1, 1] to the same.
        manifest: CSV with ``id_column`` and ``path_column`` (see :func:`iter_manifest`).
        out_dir: receives ``shard-IIIII-of-NNNNN/``, ``.csv`` and ``.done`` (module
            docstring).
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
    from PIL import Image
    from tqdm import tqdm

    from common.io import atomic_path, atomic_write_text
    from data.layout import DataError
    from data.pipeline import survey_blank
    from data.surveys import JPEG_QUALITY

    i, n = shard
    name = shard_name(i, n)
    out_dir = Path(out_dir)
    img_dir, rec_path, done_path = (out_dir / name, out_dir / f"{name}.csv",
                                    out_dir / f"{name}.done")
    blank = survey_blank(survey) if survey is not None else None
    if overwrite:
        for pth in (rec_path, done_path):
            pth.unlink(missing_ok=True)
    if done_path.is_file():
        counts = json.loads(done_path.read_text())
        print(f"{name}: already complete ({counts['ok']} ok, {counts['failed']} failed) "
              f"-> {rec_path}")
        return dict(counts, resumed=counts["rows"], converted=0)
    img_dir.mkdir(parents=True, exist_ok=True)
    resumed, last_id = _recorded(rec_path) if rec_path.is_file() else (0, None)
    counts = {"shard": name, "rows": resumed, "ok": 0, "failed": 0}
    if resumed:  # re-count what is recorded (streamed)
        with open(rec_path, newline="") as f:
            for rec in csv.DictReader(f):
                counts["ok" if rec["status"] == "ok" else "failed"] += 1

    state = {"fn": None, "multiple": 1, "size": None}
    pool = ThreadPoolExecutor(max_workers=workers)
    bar = tqdm(unit="row", disable=not progress, desc=name)

    def save(img, dst):
        with atomic_path(dst) as tmp:
            Image.fromarray(img).save(tmp, format="PNG" if fmt == "png" else "JPEG",
                                      **({} if fmt == "png" else {"quality": JPEG_QUALITY}))

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
                state["fn"], state["multiple"] = load()
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
            list(pool.map(save, y, [o for _, o in part]))
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
          f"recorded; {counts['ok']} ok, {counts['failed']} failed -> {rec_path}")
    return dict(counts, resumed=resumed, converted=counts["rows"] - resumed)


def merge(out_dir) -> dict:
    """Index the shards of ``out_dir``: write ``OUT/index.csv`` (one line per shard:
    name, manifest CSV, rows, ok, failed, complete) and return ``{"shards", "rows",
    "ok", "failed", "missing", "incomplete"}``. ``DataError`` when shards of different
    ``N`` are mixed, or none is found."""
    import csv
    import io
    import json
    import re

    from common.io import atomic_write_text
    from data.layout import DataError
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
    n = sizes.pop()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["shard", "manifest", "rows", "ok", "failed", "complete"])
    total = {"shards": n, "rows": 0, "ok": 0, "failed": 0, "missing": [],
             "incomplete": []}
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
    from data.layout import DataError
    t = merge(out_dir)
    print(f"{out_dir}/index.csv: {t['shards']} shards, {t['rows']} rows, {t['ok']} ok, "
          f"{t['failed']} failed")
    bad = t["missing"] + t["incomplete"]
    if bad:
        raise DataError(f"{len(t['missing'])} shard(s) missing, {len(t['incomplete'])} "
                        f"unfinished; first: {bad[0]}")


def run_main(args, load) -> int:
    """Dispatch a parsed predict command line (``check_args`` already applied):
    ``--merge``, ``--manifest`` (``load`` as in :func:`predict_manifest`) or ``--input``
    (handled by the caller, returns ``None``)."""
    from common.errors import run_cli
    if args.merge:
        return run_cli(lambda: _merge_cli(args.merge))
    if args.manifest:
        return run_cli(lambda: predict_manifest(
            load, args.manifest, args.out, shard=args.shard_index,
            batch_size=args.batch_size, fmt=args.format, survey=args.survey,
            overwrite=args.overwrite, chunk_rows=args.chunk_rows, workers=args.workers,
            id_column=args.id_column, path_column=args.path_column))
    return None


def generator_loader(model_path):
    """``load`` for :func:`convert` / :func:`predict_manifest`: the generator at
    ``model_path`` (a ``.keras`` file or a run folder), compiled once as a
    ``tf.function`` for inference (``training=False``)."""
    def load():
        import tensorflow as tf

        from common.layers import unet_depth
        from pix2wgan.trainer import load_generator
        generator = load_generator(model_path)
        fn = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
        return fn, 2 ** unet_depth(generator)
    return load


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    code = run_main(args, generator_loader(args.model))
    if code is not None:
        return code
    from common.errors import run_cli
    return run_cli(lambda: predict(args.model, args.input, args.out,
                                   batch_size=args.batch_size, fmt=args.format,
                                   survey=args.survey, overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
