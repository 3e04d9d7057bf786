"""Train Pix2WGAN: ``python -m pix2wgan.train --epochs 500``.

Writes to ``--run-dir RUN_DIR`` (``--out RUN_DIR`` also works)::

    config.json          the run's configuration (a resumed run takes its architecture here)
    checkpoints/         networks + optimizers + epoch, saved every epoch
    logs/                TensorBoard scalars (``tensorboard --logdir RUN_DIR/logs``)
    history.csv          one row of losses per epoch
    samples/epoch_NNNN.png   input | output | target for fixed test galaxies
    generator.keras      the final generator, for ``pix2wgan.predict``

The flags are the fields of :class:`pix2wgan.config.Pix2WGANConfig` (``--batch-size`` for
``batch_size``, ...), but for the paper's fixed settings (:data:`FIXED`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.choices import AUTO, NORMS, PRECISIONS, STRATEGIES
from common.cli import (Parser, add_config_args, add_run_dir, add_verbose,
                        config_from_args, quiet_tensorflow)
from data.surveys import LUO_SURVEYS
from pix2wgan.config import LOSSES, Pix2WGANConfig

#: Config fields without a flag: the paper's fixed settings (§3.1-3.2, §4.2).
FIXED = ("depth", "dropout", "l1_weight", "gp_weight", "beta_1", "beta_2", "lr_decay",
         "n_samples")
#: Help text of each flag, by config field.
HELP = {
    "data": "dataset root (default: the simulated set in datasets/sim-default, generated "
            "on first use)",
    "source": "input survey",
    "target": "target survey",
    "image_size": "training crop, pixels a side",
    "n_train": "use only the first N training galaxies (0 = all)",
    "width": "first-layer filters",
    "critic_norm": "normalisation layers of the critic",
    "loss": "wgan-gp (Pix2WGAN) or bce (classic pix2pix baseline)",
    "n_critic": "critic iterations per generator update (wgan-gp only)",
    "batch_size": "images per critic/generator update (per GPU)",
    "lr": "initial learning rate of both optimizers",
    "epochs": "training epochs",
    "seed": "weights, shuffling and augmentation (same seed, same run on CPU)",
    "precision": "float32, fp16 (mixed_float16 + loss scaling), bf16 (mixed_bfloat16), or "
                 "auto: fp16 on a GPU, bf16 on a CPU with bfloat16 units, else float32 "
                 "(the choice is saved in config.json)",
    "jit_compile": "compile the step with XLA",
}
#: The choices of the flags that have them, by config field.
CHOICES = {"source": LUO_SURVEYS, "target": LUO_SURVEYS, "loss": LOSSES,
           "critic_norm": NORMS, "precision": [AUTO, *PRECISIONS]}


def build_parser(cls=Pix2WGANConfig, prog="python -m pix2wgan.train",
                 description="Train Pix2WGAN (Luo et al.) on a dataset of JPEG triplets.",
                 run_dir="runs/pix2wgan", help=HELP,
                 choices=CHOICES) -> argparse.ArgumentParser:
    """The training flags: the fields of config class ``cls`` (but :data:`FIXED`) with its
    defaults, the run folder, the distribution strategy (also used by ``cascade.train``)."""
    p = Parser(prog=prog, description=description)
    add_config_args(p, cls, skip=FIXED, help=help, choices=choices)
    p.add_argument("--mixed-precision", action="store_const", const="fp16",
                   dest="precision",
                   help="same as --precision fp16: mixed_float16 with loss scaling")
    add_run_dir(p, run_dir, "--out")
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
    cfg = config_from_args(cls, args, precision=resolve_precision(args.precision))
    try:
        cfg.validate()
    except ValueError as err:
        parser.error(str(err))
    if args.gpus < 0:
        parser.error(f"--gpus must be >= 0, got {args.gpus}")
    if args.gpus > 1 and args.strategy == "default":
        parser.error(f"--gpus {args.gpus} needs --strategy mirrored (or multiworker)")
    return cfg, args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    from common.errors import run_cli
    from pix2wgan.trainer import train
    return run_cli(lambda: train(cfg, Path(args.run_dir), resume=args.resume,
                                 strategy=args.strategy, gpus=args.gpus))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
