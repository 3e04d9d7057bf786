"""Convert cutouts with a trained generator:
``python -m pix2wgan.predict --model RUN_DIR_or_generator.keras --input DIR_or_FILE --out DIR``.

The command line shared with ``cascade.predict`` (parse, check, call): ``--input``
converts a file or folder (:func:`pix2wgan.convert.convert`: streamed, checked, atomic,
resumable, every output tagged with the model's sha256), ``--manifest cat.csv --shard
I/N`` one shard of a survey catalogue and ``--merge OUT`` indexes the shards
(:mod:`pix2wgan.survey`). A rerun into the same ``--out`` with another model refuses
(exit 2) unless ``--overwrite``. ``--model RUN`` of a run killed before its end (no
generator.keras, but config.json and checkpoints/) uses the generator of its newest
checkpoint, with a warning naming its epoch.

Uncertainty: ``--model`` takes several runs (a deep ensemble, e.g. the training seeds of
``experiments/table1.py --seeds 3``) and ``--samples K`` draws per model with the
generator's dropout kept on (MC dropout, :mod:`pix2wgan.uncertainty`). With more than one
draw in all, the image is the draws' mean and a per-pixel standard deviation is written
beside it. ``--format fits`` writes nanomaggies with that spread, a hallucination mask
and a WCS (:mod:`data.pseudo_fits`).

Exit codes: 0 done; 2 bad input (an ``error:`` report; nothing converted), or a shard
finished with failed rows (unless ``--allow-failures``; the summary line gives the
counts and the shard CSV the reasons), or ``--merge`` found missing or unfinished
shards; 130 interrupted.

The trained networks (``pix2wgan.trainer``, TensorFlow) are imported inside
:func:`generator_model` only, so that ``--help`` does not load TensorFlow.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from common.cli import Parser, add_verbose, positive_int, quiet_tensorflow
from common.errors import DataError, exit_process, run_cli
from pix2wgan.convert import (FORMATS, Model, check_survey, convert, ensemble_model,
                              jpeg_surveys, saved_model)
from pix2wgan.survey import merge, parse_shard, predict_manifest, read_positions

EXIT_CODES = ("exit status: 0 done; 2 bad input or flags (nothing converted), another "
              "model's\noutputs in --out, or a shard with failed rows (unless "
              "--allow-failures);\n130 interrupted (rerun to resume)")


# --- flags ------------------------------------------------------------------------------

def _survey_arg(text: str) -> str:
    try:
        return check_survey(text)
    except ValueError as err:  # argparse shows this message, not a generic one
        raise argparse.ArgumentTypeError(str(err)) from None


UNCERTAINTY = (
    "The standard deviation is the spread of the ensemble/dropout draws: model "
    "uncertainty on this input. It does not cover the shift between the training "
    "surveys and real data, nor the noise of a real HSC observation.")


def make_parser(prog: str, description: str, model_help: str) -> argparse.ArgumentParser:
    """The flags shared by ``pix2wgan.predict`` and ``cascade.predict``."""
    p = Parser(prog=prog, description=description, epilog=EXIT_CODES)
    p.add_argument("--model", nargs="+", metavar="MODEL",
                   help=model_help + "; several: a deep ensemble (e.g. the training "
                        "seeds of table1.py --seeds 3), one draw each per --samples")
    p.add_argument("--samples", type=positive_int, default=1, metavar="K",
                   help="draws per model: 1 = dropout off (ordinary prediction); K > 1 "
                        "keeps the generator's dropout on (MC dropout). With more than "
                        "one draw in all, the image is their mean, and their per-pixel "
                        "standard deviation goes to <stem>_std.png (png/jpg: 8-bit, in "
                        "the same 0-255 pixel units, rounded and clipped at 255) or the "
                        "FITS SIGMA extension (nanomaggies). " + UNCERTAINTY)
    p.add_argument("--input", help="a JPEG file or a folder of JPEGs")
    p.add_argument("--out", help="output folder")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (lossless, default), jpg (quality 90, like the viewer), or "
                        "fits: <stem>.fits, the (mean) pseudo-HSC g, r, i in nanomaggies "
                        "per 0.168\" pixel through the inverse viewer stretch (its limits "
                        "in the header), a SIGMA extension (several draws), a HALLUC "
                        "mask (with --survey) and a TAN WCS (with ra, dec in --manifest "
                        "or --positions)")
    p.add_argument("--positions", metavar="CSV",
                   help="--input with --format fits: a CSV with the --id-column (the "
                        "input's file stem), ra and dec (degrees) of every input, to "
                        "centre each file's WCS")
    p.add_argument("--survey", type=_survey_arg, default=None,
                   metavar="{" + ",".join(jpeg_surveys()) + "}",
                   help="input survey: also reject its blank (grey) cutouts; with "
                        "--format fits, read the input's flux through its stretch for "
                        "the HALLUC mask")
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
    if args.positions and not (args.input and args.format == "fits"):
        p.error("--positions goes with --input and --format fits (--manifest gives "
                "positions in its ra, dec columns)")
    try:
        args.shard_index = parse_shard(args.shard)
    except ValueError as err:
        p.error(str(err))


# --- runs -------------------------------------------------------------------------------

def run_main(args, make_model: Callable[[], Model]) -> int:
    """Run a parsed predict command line (``check_args`` applied): ``--merge``,
    ``--manifest`` or ``--input``. ``make_model()`` is called only to convert."""
    if args.merge:
        return run_cli(lambda: _merge_cli(args.merge))
    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow
    if args.manifest:
        return run_cli(lambda: _manifest_cli(args, make_model))
    return run_cli(lambda: convert(
        make_model(), args.input, args.out, batch_size=args.batch_size,
        fmt=args.format, survey=args.survey, overwrite=args.overwrite,
        workers=args.workers, positions=_positions(args)))


def _positions(args) -> dict | None:
    """``--positions``: ``{stem: (ra, dec)}``; ``DataError`` if it lacks ra or dec."""
    if not args.positions:
        return None
    pos = read_positions(args.positions, args.id_column)
    if pos is None:
        raise DataError(f"{args.positions}: no ra and dec columns (--positions)")
    return pos


def _manifest_cli(args, make_model) -> None:
    """``--manifest``: convert the shard; a ``DataError`` (exit 2) if rows failed,
    unless ``--allow-failures``."""
    c = predict_manifest(
        make_model(), args.manifest, args.out, shard=args.shard_index,
        batch_size=args.batch_size, fmt=args.format, survey=args.survey,
        overwrite=args.overwrite, chunk_rows=args.chunk_rows, workers=args.workers,
        id_column=args.id_column, path_column=args.path_column)
    if c["failed"] and not args.allow_failures:
        raise DataError(f"{c['failed']} of {c['rows']} rows of {c['shard']} failed "
                        f"(reasons in {Path(args.out) / (c['shard'] + '.csv')}); pass "
                        f"--allow-failures to accept a shard with failed rows")


def _merge_cli(out_dir) -> None:
    """``--merge``: index the shards; a ``DataError`` (exit 2) if any is missing or
    unfinished."""
    t = merge(out_dir)
    model = f" (model sha256 {t['model'][:16]})" if t["model"] else ""
    print(f"wrote {Path(out_dir) / 'index.csv'}: {t['shards']} shards, {t['rows']} rows, "
          f"{t['ok']} ok, {t['failed']} failed{model}")
    bad = t["missing"] + t["incomplete"]
    if bad:
        raise DataError(f"{len(t['missing'])} shard(s) missing, {len(t['incomplete'])} "
                        f"unfinished; first: {bad[0]}")


# --- the Pix2WGAN generator -------------------------------------------------------------

def model_list(model_path) -> list:
    """``--model``: one path or a list of them -> a list."""
    return [model_path] if isinstance(model_path, (str, Path)) else list(model_path)


def generator_model(model_path, samples: int = 1) -> Model:
    """The Pix2WGAN generator at ``model_path`` (a ``.keras`` file or a run folder,
    finished or not), compiled once as a ``tf.function`` for inference
    (``training=False``). Missing or non-Keras files are one-line errors here, before
    anything is converted.

    Several paths (a list) and/or ``samples > 1``: an ensemble of the generators with
    ``samples`` MC-dropout draws each (:func:`pix2wgan.convert.ensemble_model`)."""
    from pix2wgan.trainer import find_generator  # TensorFlow: see the module docstring
    paths = model_list(model_path)
    if len(paths) > 1 or samples > 1:
        found = [find_generator(m) for m in paths]

        def chains():
            from pix2wgan.trainer import load_generator
            return [(load_generator(s),) for s in found]
        return ensemble_model(found, chains, samples)
    saved = find_generator(paths[0])

    def load():
        import tensorflow as tf

        from pix2wgan.layers import unet_depth
        from pix2wgan.trainer import load_generator
        generator = load_generator(saved)
        fn = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
        return fn, 2 ** unet_depth(generator)
    return saved_model(saved, load)


def predict(model_path, inputs, out_dir, *, samples=1, **kw) -> list[Path]:
    """Convert every JPEG in ``inputs`` with the generator(s) at ``model_path`` (a
    ``.keras`` file or a run folder, or a list of them); returns the output paths (see
    :func:`pix2wgan.convert.convert`)."""
    return convert(generator_model(model_path, samples), inputs, out_dir, **kw)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run_main(args, lambda: generator_model(args.model, args.samples))


if __name__ == "__main__":
    exit_process(main())
