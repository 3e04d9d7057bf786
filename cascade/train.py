"""Train Cascade Pix2WGAN (Luo et al. §4.3): ``python -m cascade.train --epochs 500``.

Same flags as ``python -m pix2wgan.train`` (defaults: SDSS -> HSC, the paper's §4.2
settings for both stages), plus ``--bridge decals|degraded-hsc`` and ``--stage2-grad``.
Writes to ``--run-dir RUN_DIR`` (``--out RUN_DIR`` also works)::

    config.json          the run's configuration (a resumed run takes its architecture here)
    checkpoints/         G1, D1, G2, D2 + their four optimizers + epoch, every epoch
    logs/                TensorBoard scalars (``tensorboard --logdir RUN_DIR/logs``)
    history.csv          one row of losses per epoch (g1_*, d1_*, g2_*, d2_*, val_*)
    samples/epoch_NNNN.png   SDSS | pseudo-DECaLS | pseudo-HSC | HSC, fixed test galaxies
    g1.keras, g2.keras   the final generators, for ``cascade.predict`` (G2∘G1)
"""
from __future__ import annotations

from pathlib import Path

from cascade.config import BRIDGES, CascadeConfig
from pix2wgan import train as pix2wgan_cli

#: Pix2WGAN's help texts, and those of the cascade's own fields.
HELP = {
    **pix2wgan_cli.HELP,
    "bridge": "intermediate images: real DECaLS (the paper's choice, default) or HSC "
              "degraded to ~half resolution with noise",
    "stage2_grad": "also back-propagate G2's loss through the pseudo-DECaLS into G1 "
                   "(default off: G1 learns from its own loss only)",
}


def build_parser():
    return pix2wgan_cli.build_parser(
        CascadeConfig, prog="python -m cascade.train", run_dir="runs/cascade",
        description="Train Cascade Pix2WGAN (Luo et al. §4.3): SDSS -> pseudo-DECaLS -> "
                    "pseudo-HSC.",
        help=HELP, choices={**pix2wgan_cli.CHOICES, "bridge": BRIDGES})


def parse_args(argv=None):
    return pix2wgan_cli.parse_args(argv, build_parser(), CascadeConfig)


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    from cascade.trainer import train
    from common.errors import run_cli
    return run_cli(lambda: train(cfg, Path(args.run_dir), resume=args.resume,
                                 strategy=args.strategy, gpus=args.gpus))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
