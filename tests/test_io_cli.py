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


# --- shared argument types and flags made from a config dataclass (issue 15) ------------

@pytest.mark.parametrize("kind, good, bad", [
    ("positive_int", [("1", 1), ("7", 7)], ["0", "-2", "1.5", "x"]),
    ("non_negative_int", [("0", 0), ("3", 3)], ["-1", "2.0", "x"]),
    ("positive_float", [("1e-4", 1e-4), ("2", 2.0)], ["0", "-1", "nan", "inf", "x"]),
    ("non_negative_float", [("0", 0.0), ("0.5", 0.5)], ["-0.1", "nan", "inf", "x"]),
])
def test_argument_types_accept_and_refuse(kind, good, bad):
    import argparse
    import re

    from common import cli
    check = getattr(cli, kind)
    for text, value in good:
        assert check(text) == value and type(check(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
            check(text)


def test_config_flags_round_trip(capsys):
    from dataclasses import dataclass, field

    from common.cli import add_config_args, bound, config_from_args

    @dataclass
    class Toy:
        batch_size: int = 4
        lr: float = 1e-3
        lr_gen: float | None = None
        mode: str = field(default="a", metadata={"help": "which mode"})
        fast: bool = False
        checks: bool = True
        hidden: int = 9

    p = Parser(prog="toy")
    add_config_args(p, Toy, skip=("hidden",), help={"lr": "rate"}, choices={"mode": "ab"})
    assert config_from_args(Toy, p.parse_args([])) == Toy()
    args = p.parse_args(["--batch-size", "8", "--lr-gen", "0.5", "--mode", "b", "--fast",
                         "--no-checks"])
    assert config_from_args(Toy, args, hidden=1) == Toy(8, 1e-3, 0.5, "b", True, False, 1)
    text = p.format_help()
    assert "rate (default: 0.001)" in text and "which mode (default: a)" in text
    assert "--hidden" not in text
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err
    assert bound(Toy(batch_size=0), "batch_size", ">=", 1) == (
        False, "--batch-size must be >= 1, got 0")
    assert bound(Toy(), "lr_gen", ">", 0)[0]  # None: the fallback, not checked


@pytest.mark.parametrize("module, old", [("pix2wgan.train", "--out"),
                                         ("cascade.train", "--out"),
                                         ("noise_gan.train", None)])
def test_train_clis_take_run_dir_and_their_old_spelling(module, old):
    parser = __import__(module, fromlist=["build_parser"]).build_parser()
    for flag in ("--run-dir", old):
        if flag:
            assert parser.parse_args([flag, "runs/x"]).run_dir == "runs/x"
