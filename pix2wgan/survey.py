"""Survey-scale prediction: one shard of a catalogue per job, then one index of them all.

::

    python -m pix2wgan.predict --model RUN --manifest cat.csv --shard 3/16 --out OUT
    python -m pix2wgan.predict --merge OUT          # after all shards: index + check

``cat.csv`` has an ``id`` and a ``path`` column (relative paths are taken from the CSV's
folder); ids must be unique. Row -> shard assignment is a hash of the id
(:func:`shard_of`), the same on every machine and independent of row order, so any
batch scheduler (SLURM array, Dask, Spark) can run shard ``i`` of ``N`` anywhere. Shard
``i`` writes (:class:`ShardFiles`)::

    OUT/shard-00003-of-00016/<id>.png     the outputs (atomic writes; with several
                                          draws also <id>_std.png; or <id>.fits)
    OUT/shard-00003-of-00016.csv          id, source, output, status (ok|failed), reason
    OUT/shard-00003-of-00016.model.json   the model (sha256 and its files' hashes)
    OUT/shard-00003-of-00016.done         JSON counts, written when the shard finished

The catalogue is streamed (``csv`` reader, ``chunk_rows`` rows at a time), never held
in memory (a duplicate-id check first keeps one set of the shard's ids). The shard CSV
is a ``data.joblog.JobLog``: appended in catalogue order and fsynced per chunk, so a
killed shard resumes after its last recorded row (a cut last line is dropped and that
row redone). A bad row
(missing file, unreadable or non-JPEG data, wrong size, blank cutout, unsafe id) is
recorded as ``failed`` with a one-line reason naming the file. With ``--format fits``
the catalogue's ``ra`` and ``dec`` columns (degrees), when present, centre each file's
WCS (:func:`read_positions`).

TensorFlow (through ``common.images``) is imported inside :meth:`ShardConverter.write`
only, so that the CLIs, which import this module, answer ``--help`` without loading it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.errors import DataError
from common.io import atomic_write_text
from data.joblog import JobLog, read_rows
from pix2wgan.convert import (STD, Model, Writer, as_model, blank_of, fits_notes,
                              not_ours, read_image, size_note, stamp_wcs_of, start_run)

#: Ids become file names: letters, digits and ``._+-``, not starting with a dot, no
#: separators (no path traversal), at most 200 characters.
SAFE_ID = r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}"
RECORD_FIELDS = ("id", "source", "output", "status", "reason")


# --- shards -----------------------------------------------------------------------------

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
    digest = hashlib.blake2b(str(galaxy_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def shard_name(i: int, n: int) -> str:
    return f"shard-{i:05d}-of-{n:05d}"


@dataclass(frozen=True)
class ShardFiles:
    """Where shard ``i`` of ``n`` writes in ``out_dir`` (module docstring)."""
    out_dir: Path
    i: int
    n: int

    @property
    def name(self) -> str:
        return shard_name(self.i, self.n)

    @property
    def images(self) -> Path:
        return self.out_dir / self.name

    @property
    def rows(self) -> Path:
        return self.out_dir / f"{self.name}.csv"

    @property
    def done(self) -> Path:
        return self.out_dir / f"{self.name}.done"

    @property
    def model(self) -> Path:
        return self.out_dir / f"{self.name}.model.json"


def recorded_model(path: Path) -> str | None:
    """The model sha256 a shard's ``.model.json`` records (``None``: no record)."""
    return json.loads(path.read_text()).get("sha256") if path.is_file() else None


# --- the catalogue ----------------------------------------------------------------------

def iter_manifest(path, id_column="id", path_column="path"):
    """Stream a catalogue CSV: yields ``(id, source path)`` one row at a time (memory
    independent of its length); relative paths are resolved against the CSV's folder.
    ``DataError`` if the file or a column is missing."""
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


def read_positions(path, id_column="id", shard=(0, 1), ra="ra", dec="dec"):
    """``{id: (ra, dec)}`` degrees of the rows of shard ``shard`` of a CSV, or ``None``
    when it has no ``ra`` or no ``dec`` column. One-line ``DataError`` naming the file
    and row of a value that is not a finite number, or of a missing file or id column.
    Memory: one entry per row of the shard (as :func:`check_ids`)."""
    path, (i, n) = Path(path), shard
    if not path.is_file():
        raise DataError(f"positions file {path} not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if id_column not in cols:
            raise DataError(f"{path}: no {id_column!r} column (--id-column); columns are "
                            f"{', '.join(cols) or 'none'}")
        if ra not in cols or dec not in cols:
            return None
        out = {}
        for row, rec in enumerate(reader, 1):
            gid = (rec.get(id_column) or "").strip()
            if shard_of(gid, n) != i:
                continue
            try:
                pos = float(rec[ra]), float(rec[dec])
            except (TypeError, ValueError):
                pos = (float("nan"),) * 2
            if not (np.isfinite(pos).all() and -90 <= pos[1] <= 90):
                raise DataError(f"{path}: data row {row} ({gid!r}): ra, dec = "
                                f"{rec[ra]!r}, {rec[dec]!r} is not a sky position in "
                                f"degrees")
            out[gid] = pos
    return out


def check_ids(manifest, shard=(0, 1), id_column="id", path_column="path",
              std=False) -> None:
    """One-line ``DataError`` naming the first id that two rows of shard ``shard`` share,
    before anything is converted (ids name the outputs). Ids that differ only in case
    count as one: their outputs collide on case-insensitive file systems. Unsafe ids
    are skipped (recorded as failed, no output). ``std``: outputs get a
    ``<id>_std.png``, so ids ``a`` and ``a_std`` are refused too. Memory: one set of the
    shard's ids."""
    i, n = shard

    def rows():
        for row, (gid, src) in enumerate(iter_manifest(manifest, id_column, path_column),
                                         1):
            if shard_of(gid, n) == i and re.fullmatch(SAFE_ID, gid):
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
    clash = next((k for k in seen if k + STD.casefold() in seen), None) if std else None
    if clash:
        raise DataError(f"{manifest}: ids {clash!r} and {clash + STD!r} (as spelled in "
                        f"lower case) would both write {clash + STD}.png, the standard "
                        f"deviation of {clash!r}; rename one")


def pending_rows(manifest, files: ShardFiles, resumed: int, last_id: str | None,
                 id_column="id", path_column="path"):
    """Yield the ``(id, path)`` rows of the shard after the ``resumed`` already recorded
    (the last of them ``last_id``); ``DataError`` when the catalogue no longer agrees
    with the record (another row there, or fewer rows in the shard)."""
    position = 0
    for gid, src in iter_manifest(manifest, id_column, path_column):
        if shard_of(gid, files.n) != files.i:
            continue
        position += 1
        if position <= resumed:
            if position == resumed and gid != last_id:
                raise DataError(
                    f"{files.rows}: row {resumed} is {last_id!r} but the manifest "
                    f"now has {gid!r} there: the catalogue changed since this "
                    f"shard started; rerun with --overwrite")
            continue
        yield gid, src
    if position < resumed:
        raise DataError(f"{files.rows}: {resumed} rows recorded but the manifest now "
                        f"assigns only {position} to this shard; rerun with --overwrite")


def chunks(items, size: int):
    """Lists of ``size`` consecutive items (the last one shorter), streamed."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- the shard CSV ---------------------------------------------------------------------

def tally(csv_path: Path) -> tuple[dict, str | None]:
    """``({"rows", "ok", "failed"}, last recorded id)`` of a shard CSV, streamed (zeros
    and ``None`` if it does not exist; a last line cut by a kill is not read)."""
    c, last = {"rows": 0, "ok": 0, "failed": 0}, None
    for rec in read_rows(csv_path, whole=False):
        c["rows"] += 1
        c["ok" if rec["status"] == "ok" else "failed"] += 1
        last = rec["id"]
    return c, last


# --- one shard --------------------------------------------------------------------------

class ShardConverter:
    """Catalogue rows -> checked images -> outputs, a chunk at a time. The model is loaded
    at the first good row; the first good row's side is the shard's size."""

    def __init__(self, model: Model, images: Path, fmt: str, batch_size: int,
                 blank: int | None, pool: ThreadPoolExecutor, survey: str | None = None,
                 positions: dict | None = None):
        self.model, self.images, self.fmt = model, images, fmt
        self.batch_size, self.blank, self.pool = batch_size, blank, pool
        self.fn, self.multiple, self.size = None, 1, None
        self.writer, self.positions = Writer(model, fmt, survey, pool), positions

    def check(self, rows) -> tuple[list[dict], list]:
        """Decode ``rows`` (``(id, path)``) -> ``(records, [(uint8 [S, S, 3], output
        path)])``: one shard-CSV record per row, the images of the good ones."""
        decoded = list(self.pool.map(
            lambda r: read_row(r[0], r[1], self.size, self.blank), rows))
        records, good = [], []
        for (gid, src), (arr, reason) in zip(rows, decoded):
            if arr is not None and self.size is None:
                self.size = arr.shape[0]
            if arr is not None and arr.shape[0] != self.size:
                arr, reason = None, (f"{src}: expected a {self.size}x{self.size} "
                                     f"RGB image, got {arr.shape[1]}x{arr.shape[0]}")
            if arr is not None and self.fn is None:
                self.fn, self.multiple = self.model.load()
                size_note(self.size, self.model)
            if arr is not None and arr.shape[0] % self.multiple:
                arr, reason = None, (f"{src}: size {arr.shape[0]} is not divisible by "
                                     f"{self.multiple}, which this model needs")
            out = self.images / f"{gid}.{self.fmt}"
            records.append({"id": gid, "source": src, "output": str(out) if arr is not
                            None else "", "status": "ok" if arr is not None else "failed",
                            "reason": reason})
            if arr is not None:
                good.append((arr, out))
        return records, good

    def write(self, good) -> None:
        """Run the model on ``good`` in batches and save its outputs (tagged; FITS with
        the WCS of the row's position when the catalogue has one)."""
        from common.images import normalize  # TensorFlow: see the module docstring
        n = self.batch_size
        for k in range(0, len(good), n):
            part = good[k:k + n]
            x = normalize(np.stack([a for a, _ in part])).numpy()  # Luo eq. 8
            if len(part) < n:  # pad: one input shape, one trace of fn
                x = np.concatenate([x, np.zeros((n - len(part),) + x.shape[1:],
                                                np.float32)])
            wcs = None if self.positions is None else [
                stamp_wcs_of(self.positions.get(o.stem), self.size) for _, o in part]
            self.writer.write(self.fn, x, [o for _, o in part], wcs)


def read_row(gid: str, src: str, size: int | None, blank: int | None):
    """Decode one catalogue row -> ``(uint8 [S, S, 3] or None, reason or "")``."""
    if not re.fullmatch(SAFE_ID, gid):
        return None, f"{src or '(no path)'}: unsafe or empty id {gid[:60]!r} (ids name " \
                     f"output files: letters, digits, ._+- only)"
    if not src:
        return None, f"(row {gid}): empty path"
    return read_image(src, size, blank)


def check_model(files: ShardFiles, model: Model, overwrite: bool) -> None:
    """``DataError`` if the shard was started by another model (unless ``overwrite``)."""
    theirs = recorded_model(files.model)
    started = files.rows.is_file() or files.done.is_file()
    if not overwrite and (theirs or started) and theirs != model.sha256:
        raise DataError(not_ours(f"{files.name}: its rows in {files.out_dir} were",
                                 theirs, model.sha256))


def predict_manifest(model, manifest, out_dir, *, shard=(0, 1), batch_size=32, fmt="png",
                     survey=None, overwrite=False, chunk_rows=256, workers=4,
                     id_column="id", path_column="path", progress=True) -> dict:
    """Convert shard ``shard = (i, n)`` of a catalogue; returns its counts.

    Args:
        model: as in :func:`pix2wgan.convert.convert`. A shard already started by
            another model (its ``.model.json``) is refused unless ``overwrite``.
        manifest: CSV with ``id_column`` and ``path_column`` (see :func:`iter_manifest`);
            duplicate ids are refused (:func:`check_ids`) before anything is converted.
        out_dir: receives ``shard-IIIII-of-NNNNN/``, ``.csv``, ``.model.json`` and
            ``.done`` (module docstring).
        overwrite: restart the shard from scratch.
        chunk_rows: rows decoded, converted and recorded together (memory ~ chunk_rows
            decoded cutouts, independent of the catalogue's length).
        workers: threads for JPEG decoding and output encoding (PIL releases the GIL).
        fmt: ``png``, ``jpg`` or ``fits`` (WCS from the ``ra``, ``dec`` columns when
            the catalogue has them, :func:`read_positions`).
    Returns:
        ``{"shard", "rows", "ok", "failed", "resumed", "converted"}`` (``resumed``: rows
        already recorded by an earlier run of this shard).
    """
    model = as_model(model)
    files = ShardFiles(Path(out_dir), *shard)
    blank = blank_of(survey)
    start_run(model, files.out_dir, files.images)
    check_model(files, model, overwrite)
    tail = f"(model sha256 {model.sha256[:16]})"
    if files.done.is_file() and not overwrite:
        counts = json.loads(files.done.read_text())
        print(f"{files.name}: already complete ({counts['ok']} ok, {counts['failed']} "
              f"failed): wrote nothing; outputs in {files.images}/, rows in {files.rows} "
              f"{tail}")
        return dict(counts, resumed=counts["rows"], converted=0)
    check_ids(manifest, shard, id_column, path_column,
              std=model.draws > 1 and fmt != "fits")
    positions = None
    if fmt == "fits":
        positions = read_positions(manifest, id_column, shard)
        fits_notes(survey, "" if positions is not None else
                   f"{manifest} has no ra and dec columns")
    if overwrite:
        for pth in (files.rows, files.done):
            pth.unlink(missing_ok=True)
    atomic_write_text(files.model, json.dumps(model.record(), indent=1) + "\n")
    files.images.mkdir(parents=True, exist_ok=True)
    with JobLog(files.rows, RECORD_FIELDS).open() as log:  # open drops a cut last line
        recorded, last_id = tally(files.rows)
        resumed, ok_before = recorded["rows"], recorded["ok"]
        counts = {"shard": files.name, **recorded}
        rows = pending_rows(manifest, files, resumed, last_id, id_column, path_column)
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                tqdm(unit="row", disable=not progress, desc=files.name) as bar:
            converter = ShardConverter(model, files.images, fmt, batch_size, blank, pool,
                                       survey, positions)
            for chunk in chunks(rows, chunk_rows):
                records, good = converter.check(chunk)
                converter.write(good)
                log.append(*records)  # recorded only once their outputs are on disk
                for rec in records:
                    counts["ok" if rec["status"] == "ok" else "failed"] += 1
                counts["rows"] += len(records)
                bar.update(len(records))
    atomic_write_text(files.done, json.dumps(counts) + "\n")
    print(f"{files.name}: {counts['rows'] - resumed} rows this run, {resumed} already "
          f"recorded; {counts['ok']} ok, {counts['failed']} failed: wrote "
          f"{counts['ok'] - ok_before} {fmt.upper()}s to {files.images}/ and their rows "
          f"to {files.rows} {tail}")
    return dict(counts, resumed=resumed, converted=counts["rows"] - resumed)


# --- all shards -------------------------------------------------------------------------

def find_shards(out_dir: Path) -> tuple[int, dict[int, ShardFiles]]:
    """``(N, {i: ShardFiles})`` of the shard CSVs in ``out_dir``; ``DataError`` if there
    are none, or shards of different ``N`` or of different models are mixed."""
    found = {}
    for pth in sorted(out_dir.glob("shard-*-of-*.csv")):
        m = re.fullmatch(r"shard-(\d{5})-of-(\d{5})\.csv", pth.name)
        if m:
            found[int(m.group(1)), int(m.group(2))] = ShardFiles(out_dir, int(m.group(1)),
                                                                 int(m.group(2)))
    if not found:
        raise DataError(f"{out_dir}: no shard-IIIII-of-NNNNN.csv manifests found")
    sizes = {n for _, n in found}
    if len(sizes) != 1:
        raise DataError(f"{out_dir}: shards of different totals {sorted(sizes)} are "
                        f"mixed; keep one --shard I/N layout per output folder")
    return sizes.pop(), {i: files for (i, _), files in found.items()}


def shards_model(out_dir: Path, shards) -> str | None:
    """The one model sha256 the ``shards`` (``ShardFiles``) of ``out_dir`` record
    (``None``: none recorded); ``DataError`` naming two shards made by different
    models."""
    models = {}
    for files in shards:
        models.setdefault(recorded_model(files.model), files.name)
    models.pop(None, None)
    if len(models) > 1:
        (a, na), (b, nb) = list(models.items())[:2]
        raise DataError(f"{out_dir}: shards were made by different models ({na}: "
                        f"sha256 {a[:12]}, {nb}: sha256 {b[:12]}); redo the odd ones "
                        f"with the same --model and --overwrite")
    return next(iter(models), None)


def merge(out_dir) -> dict:
    """Index the shards of ``out_dir``: write ``OUT/index.csv`` (one line per shard:
    name, manifest CSV, rows, ok, failed, complete) and return ``{"shards", "rows",
    "ok", "failed", "missing", "incomplete", "model"}`` (``model``: the shards' model
    sha256, ``None`` if unrecorded). ``DataError`` when shards of different ``N`` or of
    different models are mixed, or none is found."""
    out_dir = Path(out_dir)
    n, found = find_shards(out_dir)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["shard", "manifest", "rows", "ok", "failed", "complete"])
    total = {"shards": n, "rows": 0, "ok": 0, "failed": 0, "missing": [],
             "incomplete": [], "model": shards_model(out_dir, found.values())}
    for i in range(n):
        if i not in found:
            total["missing"].append(shard_name(i, n))
            continue
        files = found[i]
        complete = files.done.is_file()
        if complete:
            c = json.loads(files.done.read_text())
        else:
            total["incomplete"].append(files.name)
            c = tally(files.rows)[0]
        for k in ("rows", "ok", "failed"):
            total[k] += c[k]
        w.writerow([files.name, files.rows.name, c["rows"], c["ok"], c["failed"],
                    int(complete)])
    atomic_write_text(out_dir / "index.csv", buf.getvalue())
    return total
