"""Small file helpers shared by every writer in the project."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Callable, Sequence

from common.errors import DataError

#: Temporary files are named ``.<name>.tmp~<host>~<pid>~<random><suffix>`` so that a
#: later run can tell a leftover of a killed process from a live writer's file.
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp~(?P<host>[^~]+)~(?P<pid>\d+)~[0-9a-f]+(\.[^.]*)?$")
#: A leftover from another machine (shared file systems) is removed after this long.
FOREIGN_TMP_AGE_S = 24 * 3600


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _host() -> str:
    return socket.gethostname().replace("~", "-") or "localhost"


def _new_tmp(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, readable as the user's umask
    allows (``tempfile.mkstemp`` would make it 0600, and the rename keeps that mode)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.tmp~{_host()}~{os.getpid()}~"
                             f"{secrets.token_hex(4)}{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_tmp(folder: Path | str) -> int:
    """Remove the temporary files that killed writers left in ``folder`` (not in its
    subfolders): those of a process of this machine that no longer runs, and those
    from other machines older than :data:`FOREIGN_TMP_AGE_S`. A live writer's
    temporary is kept. Returns the number removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    host, removed = _host(), 0
    for entry in os.scandir(folder):
        m = _TMP.match(entry.name)
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        if m["host"] == host:
            stale = not _alive(int(m["pid"]))
        else:
            stale = time.time() - entry.stat().st_mtime > FOREIGN_TMP_AGE_S
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    A kill at any moment leaves either the old file or the new one, never half a file:
    the rename is atomic on POSIX file systems. On an exception the temporary is removed;
    after a kill, :func:`clean_stale_tmp` removes it on the next run. The new file gets
    the user's umask (0644 under umask 022), as ``open`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_tmp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto
    ``path`` (see :func:`atomic_path`). Returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def output_paths(files: Sequence, out_dir: Path, suffix: str) -> dict:
    """``{input: out_dir/<stem>.<suffix>}``; a one-line ``DataError`` naming two inputs
    that would share an output (same stem, e.g. ``a.jpg`` and ``a.jpeg``, or stems that
    differ only in case, which collide on case-insensitive file systems)."""
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
