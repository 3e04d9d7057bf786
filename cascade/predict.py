"""Convert SDSS cutouts to pseudo-HSC through G2∘G1 alone (no DECaLS needed, §4.3):
``python -m cascade.predict --model RUN_DIR --input DIR_or_FILE --out DIR``.

Streams, batches, checks the inputs, writes atomically, tags every output with the
model's sha256 (here of g1.keras + g2.keras and the ``--stage``), refuses to mix two
models' outputs and skips existing outputs exactly like ``pix2wgan.predict`` (it is the
same machinery, :func:`pix2wgan.convert.convert`, and the same command line,
:mod:`pix2wgan.predict`). ``--stage 1`` writes the pseudo-DECaLS (G1 alone) instead. A
run killed before its end (no g1.keras/g2.keras) is used through its newest checkpoint,
with a warning naming its epoch. Survey-scale sharded runs (``--manifest cat.csv --shard
I/N``, then ``--merge OUT``) work as in ``pix2wgan.predict`` (same flags, same output
layout, same exit codes), and so do the uncertainty flags: several ``--model`` runs (a
deep ensemble), ``--samples K`` MC-dropout draws per run (dropout on in G1 and G2), and
``--format fits``.

The cascade's networks (``cascade.trainer``, TensorFlow) are imported inside
:func:`cascade_model` and :func:`chain` only, so that ``--help`` does not load
TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

from common.errors import exit_process
from pix2wgan.convert import Model, convert, ensemble_model, saved_model
from pix2wgan.predict import check_args, make_parser, model_list, run_main


def build_parser():
    p = make_parser(
        "python -m cascade.predict",
        "Turn SDSS JPEG cutouts into pseudo-HSC images with a trained Cascade\n"
        "Pix2WGAN (G2∘G1).",
        "cascade run folder (holding g1.keras and g2.keras, or the config.json and "
        "checkpoints of an unfinished run)")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2,
                   help="2: pseudo-HSC, G2∘G1; 1: pseudo-DECaLS, G1 only")
    return p


def chain(g1, g2, stage: int = 2):
    """``(fn, multiple)`` for :func:`pix2wgan.convert.convert`: G2∘G1 (or G1)."""
    from pix2wgan.layers import unet_depth

    def fn(x):
        mid = g1(x, training=False)
        return mid if stage == 1 else g2(mid, training=False)
    return fn, 2 ** max(unet_depth(g1), unet_depth(g2))


def cascade_model(model_path, stage: int = 2, samples: int = 1) -> Model:
    """A :class:`pix2wgan.convert.Model`: G2∘G1 (or G1) of a cascade run folder
    (finished or not), compiled once as a ``tf.function``; its hash covers both
    generators and ``stage``.

    Several run folders (a list) and/or ``samples > 1``: an ensemble of the cascades with
    ``samples`` MC-dropout draws each (dropout on in every generator of the chain;
    :func:`pix2wgan.convert.ensemble_model`)."""
    from cascade.trainer import find_cascade
    paths = model_list(model_path)
    if len(paths) > 1 or samples > 1:
        found = [find_cascade(m) for m in paths]

        def chains():
            from cascade.trainer import load_cascade
            return [tuple(load_cascade(s))[:stage] for s in found]
        return ensemble_model(found, chains, samples, {"stage": stage})
    saved = find_cascade(paths[0])

    def load():
        import tensorflow as tf

        from cascade.trainer import load_cascade
        fn, multiple = chain(*load_cascade(saved), stage)
        return tf.function(fn, reduce_retracing=True), multiple
    return saved_model(saved, load, {"stage": stage})


def predict(model_path, inputs, out_dir, *, stage=2, samples=1, **kw) -> list[Path]:
    """Convert every JPEG in ``inputs`` (``model_path``: a run folder or a list of them);
    returns the output paths (see :func:`pix2wgan.convert.convert`)."""
    return convert(cascade_model(model_path, stage, samples), inputs, out_dir, **kw)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run_main(args, lambda: cascade_model(args.model, args.stage, args.samples))


if __name__ == "__main__":
    exit_process(main())
