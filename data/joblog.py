"""Resumable job logs: one CSV row per finished item, appended as items finish.

The one state-log mechanism of the long-running jobs: the Legacy Survey JPEG download
(``data.legacy``: ``download_state.csv``), the FITS downloads (``data.pool``:
``<survey>_state.csv``) and survey-scale sharded prediction (``shard-*.csv``). Each keeps
its own columns and line ending; :class:`JobLog` gives them the same life cycle:

* **append** (:meth:`JobLog.append`): rows go to the end of the file under a lock
  (worker threads may append together), then flushed and fsynced, so a kill loses at
  most the line being written;
* **repair** (:func:`repair_tail`, run before the first append): a last line a kill cut
  short has no newline; it is dropped, so the next row does not join it;
* **read back** on rerun (:func:`read_rows`, streamed): the caller keys the rows (the
  last row of an item wins) and skips items already done;
* **compact** at the end (:meth:`JobLog.compact`): an atomic rewrite with one row per
  item, in the order the caller gives;
* **summarize** (:func:`summarize`, :func:`markdown_table`): the outcome table.
"""
from __future__ import annotations

import csv
import io
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from common.io import atomic_write_text

Row = Sequence | dict


def repair_tail(path: Path | str) -> None:
    """Drop an unterminated last line of ``path`` (a kill mid-write), in place and
    fsynced; nothing happens to a missing or whole file."""
    path = Path(path)
    if not path.is_file():
        return
    size = path.stat().st_size
    with open(path, "rb+") as f:
        if not size:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        keep = 0
        for line in f:
            if line.endswith(b"\n"):
                keep += len(line)
        f.truncate(keep)
        os.fsync(f.fileno())


def read_rows(path: Path | str, *, whole: bool = True) -> Iterator[dict]:
    """The rows of a log as dicts keyed by its header, streamed (nothing if the file
    is missing). An unterminated last line (a kill mid-write) is never read.
    ``whole``: also skip rows whose field count differs from the header's."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        for rec in csv.DictReader(ln for ln in f if ln.endswith("\n")):
            if whole and (None in rec or None in rec.values()):
                continue
            yield rec


class JobLog:
    """Append-only CSV log at ``path`` with header ``columns``.

    The file is opened on the first :meth:`append` (a reader never creates it), after
    :func:`repair_tail`; the header is written if the file is new or empty. Rows are
    sequences in ``columns`` order or dicts keyed by them. ``lineterminator`` is the
    log's on-disk line ending (``csv``'s default ``"\\r\\n"``, or ``"\\n"``).
    """

    def __init__(self, path: Path | str, columns: Sequence[str], *,
                 lineterminator: str = "\r\n"):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.lineterminator = lineterminator
        self._fh = None
        self._lock = threading.Lock()

    def _writer(self, f):
        return csv.writer(f, lineterminator=self.lineterminator)

    def _row(self, row: Row) -> list:
        return [row.get(c, "") for c in self.columns] if isinstance(row, dict) else list(row)

    def open(self) -> "JobLog":
        """Open for appending now (repairing the tail, writing the header if new)."""
        with self._lock:
            self._open()
        return self

    def _open(self) -> None:
        if self._fh is not None:
            return
        repair_tail(self.path)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", newline="")
        if new:
            self._writer(self._fh).writerow(self.columns)
            self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, *rows: Row) -> None:
        """Append ``rows`` and fsync once; thread-safe."""
        with self._lock:
            self._open()
            w = self._writer(self._fh)
            for row in rows:
                w.writerow(self._row(row))
            self._sync()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def compact(self, rows: Iterable[Row]) -> None:
        """Close, then rewrite the log atomically as the header plus ``rows`` (one per
        item, in the order given)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            buf = io.StringIO()
            w = self._writer(buf)
            w.writerow(self.columns)
            for row in rows:
                w.writerow(self._row(row))
            atomic_write_text(self.path, buf.getvalue())

    def __enter__(self) -> "JobLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    """Lines of a Markdown table (header, rule, one line per row)."""
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def summarize(statuses: Iterable[str | None], title: str, path: Path | str, *,
              unit: str = "galaxies") -> dict:
    """Write the outcome table of a job log to ``path`` (Markdown: ``ok / failed /
    pending`` and the 50 commonest failure reasons) and return the counts.

    ``statuses``: one per item, ``"ok"``, ``"failed: <reason>"`` or ``None`` (pending:
    not tried yet)."""
    statuses = list(statuses)
    ok = sum(s == "ok" for s in statuses)
    failed = Counter(s[len("failed: "):] for s in statuses
                     if s is not None and s.startswith("failed"))
    pending = sum(s is None for s in statuses)
    lines = [f"# {title}", "", *markdown_table(
        ("status", unit),
        [("ok", ok), ("failed", sum(failed.values())), ("pending", pending)]), ""]
    if failed:
        lines += markdown_table(("failure reason", unit),
                                [(r.replace("|", "/"), n) for r, n in failed.most_common(50)])
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
    return {"ok": ok, "failed": sum(failed.values()), "pending": pending}
