"""Convert cutouts with a trained generator:
``python -m pix2wgan.predict --model RUN_DIR_or_generator.keras --input DIR_or_FILE --out DIR``.

Streams the inputs in batches (memory stays flat whatever their number), writes one
output per input with the same stem, atomically, and skips outputs that already exist,
so an interrupted conversion resumes where it stopped.
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
    p.add_argument("--model", required=True,
                   help="generator .keras file, or a run folder holding generator.keras")
    p.add_argument("--input", required=True, help="a JPEG file or a folder of JPEGs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (lossless, default) or jpg (quality 90, like the viewer)")
    p.add_argument("--survey", default=None,
                   help="input survey name: also reject its blank (grey) cutouts")
    p.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    return p


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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from common.errors import run_cli
    return run_cli(lambda: predict(args.model, args.input, args.out,
                                   batch_size=args.batch_size, fmt=args.format,
                                   survey=args.survey, overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
