"""Convert SDSS cutouts to pseudo-HSC through G2∘G1 alone (no DECaLS needed, §4.3):
``python -m cascade.predict --model RUN_DIR --input DIR_or_FILE --out DIR``.

Streams, batches, writes atomically and skips existing outputs exactly like
``pix2wgan.predict`` (it is the same machinery, :func:`pix2wgan.predict.convert`).
``--stage 1`` writes the pseudo-DECaLS (G1 alone) instead. Survey-scale sharded runs
(``--manifest cat.csv --shard I/N``, then ``--merge OUT``) work as in
``pix2wgan.predict`` (same flags, same output layout).
"""
from __future__ import annotations

import sys
from pathlib import Path

from pix2wgan.predict import FORMATS, add_manifest_args, check_args, convert, run_main


def build_parser():
    import argparse
    p = argparse.ArgumentParser(
        prog="python -m cascade.predict",
        description="Turn SDSS JPEG cutouts into pseudo-HSC images with a trained "
                    "Cascade Pix2WGAN (G2∘G1).")
    p.add_argument("--model", help="cascade run folder holding g1.keras and g2.keras")
    p.add_argument("--input", help="a JPEG file or a folder of JPEGs")
    p.add_argument("--out", help="output folder")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2,
                   help="2: pseudo-HSC, G2∘G1 (default); 1: pseudo-DECaLS, G1 only")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--format", choices=FORMATS, default="png")
    p.add_argument("--survey", default=None,
                   help="input survey name: also reject its blank (grey) cutouts")
    p.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    add_manifest_args(p)
    return p


def chain(g1, g2, stage: int = 2):
    """``(fn, multiple)`` for :func:`pix2wgan.predict.convert`: G2∘G1 (or G1)."""
    from common.layers import unet_depth

    def fn(x):
        mid = g1(x, training=False)
        return mid if stage == 1 else g2(mid, training=False)
    return fn, 2 ** max(unet_depth(g1), unet_depth(g2))


def cascade_loader(model_path, stage: int = 2):
    """``load`` for ``convert`` / ``predict_manifest``: G2∘G1 (or G1) from a cascade run
    folder, compiled once as a ``tf.function``."""
    def load():
        import tensorflow as tf

        from cascade.trainer import load_cascade
        fn, multiple = chain(*load_cascade(model_path), stage)
        return tf.function(fn, reduce_retracing=True), multiple
    return load


def predict(model_path, inputs, out_dir, *, stage=2, **kw) -> list[Path]:
    """Convert every JPEG in ``inputs``; returns the output paths (see ``convert``)."""
    from cascade.trainer import load_cascade
    return convert(lambda: chain(*load_cascade(model_path), stage), inputs, out_dir, **kw)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    code = run_main(args, cascade_loader(args.model, args.stage))
    if code is not None:
        return code
    from common.errors import run_cli
    return run_cli(lambda: predict(args.model, args.input, args.out, stage=args.stage,
                                   batch_size=args.batch_size, fmt=args.format,
                                   survey=args.survey, overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
