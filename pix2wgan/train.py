"""Train Pix2WGAN: ``python -m pix2wgan.train --epochs 500``.

Writes to ``--out RUN_DIR``::

    config.json          the run's configuration (a resumed run takes its architecture here)
    checkpoints/         networks + optimizers + epoch, saved every epoch
    logs/                TensorBoard scalars (``tensorboard --logdir RUN_DIR/logs``)
    history.csv          one row of losses per epoch
    samples/epoch_NNNN.png   input | output | target for fixed test galaxies
    generator.keras      the final generator, for ``pix2wgan.predict``
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from common.choices import AUTO, NORMS, PRECISIONS, STRATEGIES
from common.cli import Parser, add_verbose, quiet_tensorflow
from data.surveys import LUO_SURVEYS
from pix2wgan.config import LOSSES, Pix2WGANConfig


def build_parser(d: Pix2WGANConfig | None = None, prog="python -m pix2wgan.train",
                 description="Train Pix2WGAN (Luo et al.) on a dataset of JPEG triplets.",
                 out="runs/pix2wgan") -> argparse.ArgumentParser:
    """The training flags, with defaults from ``d`` (also used by ``cascade.train``)."""
    d = d or Pix2WGANConfig()
    p = Parser(prog=prog, description=description)
    p.add_argument("--data", default=d.data,
                   help="dataset root (default: the simulated set in datasets/sim-default, "
                        "generated on first use)")
    p.add_argument("--source", choices=LUO_SURVEYS, default=d.source, help="input survey")
    p.add_argument("--target", choices=LUO_SURVEYS, default=d.target, help="target survey")
    p.add_argument("--out", default=out, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="images per critic/generator update (per GPU)")
    p.add_argument("--lr", type=float, default=d.lr,
                   help="initial learning rate of both optimizers")
    p.add_argument("--loss", choices=LOSSES, default=d.loss,
                   help="wgan-gp (Pix2WGAN) or bce (classic pix2pix baseline)")
    p.add_argument("--n-critic", type=int, default=d.n_critic,
                   help="critic iterations per generator update (wgan-gp only)")
    p.add_argument("--width", type=int, default=d.width, help="first-layer filters")
    p.add_argument("--critic-norm", choices=NORMS, default=d.critic_norm,
                   help="normalisation layers of the critic")
    p.add_argument("--image-size", type=int, default=d.image_size,
                   help="training crop, pixels a side")
    p.add_argument("--n-train", type=int, default=d.n_train,
                   help="use only the first N training galaxies (0 = all)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="weights, shuffling and augmentation (same seed, same run on CPU)")
    p.add_argument("--mixed-precision", action="store_const", const="fp16",
                   dest="precision", default=d.precision,
                   help="same as --precision fp16: mixed_float16 with loss scaling")
    p.add_argument("--precision", choices=[AUTO, *PRECISIONS], default=d.precision,
                   help="float32, fp16 (mixed_float16 + loss scaling), bf16 "
                        "(mixed_bfloat16), or auto: fp16 on a GPU, bf16 on a CPU with "
                        "bfloat16 units, else float32 (the choice is saved in config.json)")
    p.add_argument("--jit-compile", action="store_true", help="compile the step with XLA")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="default: one device (the first GPU if any); mirrored: "
                        "MirroredStrategy over --gpus GPUs of this machine; multiworker: "
                        "MultiWorkerMirroredStrategy over the TF_CONFIG cluster")
    p.add_argument("--gpus", type=int, default=0,
                   help="GPUs to use with --strategy mirrored/multiworker (0 = all "
                        "visible); --batch-size is per GPU, the global batch is "
                        "batch size x GPUs")
    add_verbose(p)
    return p


def parse_args(argv=None, parser=None, cls=Pix2WGANConfig):
    """Parse CLI arguments into a validated ``cls`` config (errors exit with a one-line
    message); returns ``(config, namespace)``. TensorFlow is imported here, quietly
    unless ``--verbose`` (``--help`` exits before)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    from common.training import resolve_precision
    fields = {f.name for f in dataclasses.fields(cls)}
    cfg = cls(**{k: v for k, v in vars(args).items() if k in fields})
    cfg.precision = resolve_precision(cfg.precision)
    try:
        cfg.validate()
    except ValueError as err:
        parser.error(str(err))
    if getattr(args, "gpus", 0) < 0:
        parser.error(f"--gpus must be >= 0, got {args.gpus}")
    if getattr(args, "gpus", 0) > 1 and getattr(args, "strategy", "default") == "default":
        parser.error(f"--gpus {args.gpus} needs --strategy mirrored (or multiworker)")
    return cfg, args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    from common.errors import run_cli
    from pix2wgan.trainer import train
    return run_cli(lambda: train(cfg, Path(args.out), resume=args.resume,
                                 strategy=args.strategy, gpus=args.gpus))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
