"""What every writer and every command line shares (common/io.py, common/errors.py,
common/cli.py, common/training.py): file modes, leftovers of killed writers, one-line
errors after a progress bar, unwritable outputs, the progress style (issue 14)."""
import os
import socket
import stat
import sys
import time

import pytest

from common import io
from common.cli import Parser, positive_int
from common.errors import run_cli
from common.errors import DataError
from tests.fakes import make_fake


def test_files_get_the_users_umask(tmp_path):
    # mkstemp's 0600 made every output unreadable to collaborators (item 9).
    path = io.atomic_write_text(tmp_path / "a.txt", "x\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~io._UMASK  # 0644 under 022


def _tmp_name(name, host, pid):
    return f".{name}.tmp~{host}~{pid}~abcd1234.png"


def test_clean_stale_tmp_removes_dead_writers_leftovers_only(tmp_path):
    host = socket.gethostname().replace("~", "-")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that surely ran and is gone
    files = {
        "dead": _tmp_name("a", host, dead),
        "live": _tmp_name("b", host, os.getpid()),
        "foreign_old": _tmp_name("c", "other-host", 1),
        "foreign_new": _tmp_name("d", "other-host", 1),
        "output": "a.png",
        "hidden": ".a.png",
    }
    for f in files.values():
        (tmp_path / f).write_bytes(b"")
    old = time.time() - io.FOREIGN_TMP_AGE_S - 60
    os.utime(tmp_path / files["foreign_old"], (old, old))
    assert io.clean_stale_tmp(tmp_path) == 2
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {files[k] for k in ("live", "foreign_new", "output", "hidden")}
    assert io.clean_stale_tmp(tmp_path / "absent") == 0


def test_error_after_a_progress_bar_starts_its_own_line(capsys):
    def job():
        sys.stdout.write("epoch 1/4  37%\r")  # a progress bar mid-line
        raise DataError("/data/x.jpg: not a readable JPEG")
    assert run_cli(job) == 2
    got = capsys.readouterr()
    assert got.err == "\nerror: /data/x.jpg: not a readable JPEG\n"
    assert run_cli(lambda: None) == 0


@pytest.mark.parametrize("argv", [
    ["pix2wgan.train", "--data", "{data}", "--out", "{blocker}/run", "--epochs", "1",
     "--width", "2", "--image-size", "64", "--batch-size", "1", "--n-critic", "1"],
    ["data.simulate", "--out", "{blocker}/sim", "--n-train", "1", "--n-test", "0"],
    ["pix2wgan.predict", "--model", "{blocker}", "--input", "{blocker}",
     "--out", "{blocker}/out"],
])
def test_an_unwritable_out_is_one_line(argv, tmp_path, capsys):
    # A file where a folder must go: the OSError a read-only --out also raises (chmod
    # cannot make a folder read-only for root, who runs CI), item 14.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    data = make_fake(tmp_path / "ds", size=64, n_train=2, n_test=1)  # never the default set
    module = __import__(argv[0], fromlist=["main"])
    args = [a.format(blocker=blocker, data=data) for a in argv[1:]]
    assert module.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(blocker) in err[0], err
    assert blocker.read_text() == "not a folder\n"


def test_parser_errors_are_one_line(capsys):
    p = Parser(prog="tool")
    p.add_argument("--n", type=positive_int, default=1)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--n", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "tool: error: argument --n: must be a positive integer, got '0' (see --help)\n")


def test_keras_progress_is_one_line_per_epoch_off_a_terminal(monkeypatch):
    from common.training import fit_verbose
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert fit_verbose() == 2 and fit_verbose(0) == 0
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert fit_verbose() == 1
