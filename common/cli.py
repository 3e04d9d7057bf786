"""What every command-line entry point shares: the parser, argument types, the help
formatter, flags made from a config dataclass, the run folder and a quiet TensorFlow.
Nothing here imports TensorFlow, so ``--help`` stays fast."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
import typing
from collections.abc import Mapping

# --- argument types: argparse ``type=``; a bad value becomes argparse's one-line usage
# error (``argument --n: must be ...``), exit code 2 ---------------------------------------


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``text`` as an integer >= 1, else ``argparse.ArgumentTypeError``."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """``text`` as an integer >= 0, else ``argparse.ArgumentTypeError``."""
    return _int_at_least(text, 0, "an integer >= 0")


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """``text`` as a finite float > 0, else ``argparse.ArgumentTypeError``."""
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """``text`` as a finite float >= 0, else ``argparse.ArgumentTypeError``."""
    value = _finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (unless its help already says ``default``) and
    keeps the description's own line breaks (file layouts, examples)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text.lower() or action.default is None
                or action.default is False or action.default is argparse.SUPPRESS):
            # identity checks: ``in (None, False, ...)`` would also hide 0 and 0.0 (0 == False)
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter` by default, whose usage
    errors are one line, ``PROG: error: MESSAGE (see --help)``, exit code 2 (argparse
    prints the whole usage block first, which buries the message). Subcommands made
    with ``add_subparsers`` are ``Parser`` too."""

    def __init__(self, *args, formatter_class=None, **kwargs):
        super().__init__(*args, formatter_class=formatter_class or HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# --- flags from a config dataclass ------------------------------------------------------

def flag(field: str) -> str:
    """The flag of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--" + field.replace("_", "-")


def _field_type(hint):
    """The argparse ``type`` of a field annotation: ``int``, ``float``, ``str``, and the
    same for ``X | None`` (the flag then defaults to ``None``: "use the fallback")."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_config_args(parser, cls, *, only=None, skip=(), help: Mapping | None = None,
                    choices: Mapping | None = None):
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (or an argument
    group): the fields named in ``only``, in that order, else every field in class order
    but those in ``skip``.

    ``--field-name`` stores into ``field_name``; the default is ``cls()``'s value; the
    type comes from the annotation (``X | None`` as ``X``); a ``bool`` field is
    ``store_true`` (default ``False``) or ``--flag/--no-flag`` (default ``True``). Help
    text and choices come from the ``help`` / ``choices`` mappings, else from the field's
    ``metadata["help"]`` / ``metadata["choices"]``. Values are not range-checked here:
    the config's ``validate()`` names a bad one (it also guards configs built in code).
    """
    help, choices = help or {}, choices or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    defaults = cls()
    names = list(only) if only is not None else [n for n in fields if n not in skip]
    for name in names:
        f = fields[name]
        kw = {"default": getattr(defaults, name), "dest": name,
              "help": help.get(name, f.metadata.get("help"))}
        kind = _field_type(hints[name])
        if kind is bool:
            kw["action"] = ("store_true" if kw["default"] is False
                            else argparse.BooleanOptionalAction)
        else:
            kw["type"] = kind
            if name in choices or "choices" in f.metadata:
                kw["choices"] = list(choices.get(name, f.metadata.get("choices")))
        parser.add_argument(flag(name), **kw)


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """A ``cls`` from the parsed ``args`` (every field with a same-named attribute; the
    others keep their defaults), with ``overrides`` on top. Not validated."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def bound(cfg, name: str, op: str, low) -> tuple[bool, str]:
    """``(ok, message)``: whether field ``name`` of ``cfg`` is ``>= low`` or ``> low``
    (``op``), the message naming its flag, e.g. ``"--epochs must be >= 1, got 0"``. A
    field set to ``None`` (use the fallback) passes. For a config's ``validate()``."""
    if op not in (">=", ">"):
        raise ValueError(f"op must be '>=' or '>', got {op!r}")
    v = getattr(cfg, name)
    ok = v is None or (v >= low if op == ">=" else v > low)
    return ok, f"{flag(name)} must be {op} {low}, got {v}"


def add_run_dir(p: argparse.ArgumentParser, default: str, *aliases: str) -> None:
    """``--run-dir RUN_DIR`` (``args.run_dir``; ``aliases``: older spellings such as
    ``--out``, still accepted) and ``--resume``."""
    p.add_argument("--run-dir", *aliases, dest="run_dir", metavar="RUN_DIR",
                   default=default, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last checkpoint")


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``--verbose``: let TensorFlow's C++ log lines through (see :func:`quiet_tensorflow`)."""
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's own log lines (hidden by default)")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow with its start-up chatter hidden: the absl pre-init notice, the
    oneDNN and CUDA-probing lines (printed from C++ at import and at the first device
    query, whatever ``TF_CPP_MIN_LOG_LEVEL`` says) and later warnings such as grappler's
    ``remapper failed``. Call it in ``main`` before importing anything that imports
    TensorFlow. ``verbose=True`` imports it untouched, with every log line."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # C++ errors that matter become exceptions
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import tensorflow as tf
        tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, once


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (C++ writes bypass
    ``sys.stderr``); a Python exception raised inside still reaches the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
