"""Train the noise-reconstructed GAN of Lin et al. (2021), one of its ablations or one of
its benchmarks:
``python -m noise_gan.train --step both --run-dir runs/noise_gan``.

``--variant ours`` (default) trains in two steps (§III-A): ``--step 1`` (autoencoders,
noise emulators, discriminators), ``--step 2`` (generators, with step one's noise
emulators frozen; refuses to start without a finished step 1) or ``--step both``.
Variants a-h train in one step: ``--step 1`` or ``both`` (the same thing); ``--step 2``
is an error. Benchmarks g (CycleGAN) and h (Augmented CycleGAN) translate between SDSS and
CFHT regridded to the SDSS grid (``noise_gan.cyclegan``).

Writes to ``--run-dir RUN_DIR``::

    config.json                 the run's configuration (a resumed run, or step 2 of an
                                existing run, takes its architecture from here)
    step1/checkpoints/          networks + optimizers + seed state + iteration
    step1/history.csv           losses and lr per checkpoint
    step1/finished.json         step 1 ran all its iterations
    step2/...                   (variant ours)
    logs/step1, logs/step2      TensorBoard (``tensorboard --logdir RUN_DIR/logs``)
    samples/stepN_<iter>.png    input | output | target grids of fixed test pairs

``--resume`` continues a killed run from its last checkpoint (networks, optimizers, the
learning-rate schedule's place, the seed state); a finished step is skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.choices import PRECISIONS
from common.cli import (Parser, add_config_args, add_run_dir, add_verbose,
                        config_from_args, quiet_tensorflow)
from noise_gan.config import (ADV_REDUCTIONS, NOISE_INITS, STEPS, VARIANTS,
                              NoiseGANConfig)

#: The issue-13 training recipe's fields, a flag group of their own (defaults: the paper's).
RECIPE = ("lr_auto", "lr_pretrain", "lr_disc", "lr_noise", "lr_gen", "noise_init",
          "auto_pretrain", "step2_weight_sdss", "step2_weight_cfht", "step2_lr_drop",
          "step2_lr_drop_every")
#: Help text of each flag, by config field.
HELP = {
    "variant": "our model, ablation a-f, or benchmark g / h (listed below)",
    "data": "FITS root (default: the simulated set of `python -m data.simulate --setup "
            "lin`, generated on first use)",
    "sdss_size": "SDSS cutout, pixels a side",
    "cfht_size": "CFHT cutout, pixels a side: 2 x (sdss size + 4)",
    "band_set": "bands of the ugriz cubes to train on, in ugriz order, e.g. r (the paper: "
                "all five)",
    "width": "first-layer filters",
    "noise_hidden": "filters of the noise emulators",
    "content_weight": "baselines a-e: weight of the content losses (g, h: fixed CycleGAN "
                      "weights)",
    "adv_reduction": "per-band cross-entropies: sum (Lin eqs. 2-3) or mean (released "
                     "code)",
    "iterations": "iterations per step (§IV-B)",
    "step2_iterations": "iterations of step two when it differs (default: --iterations)",
    "batch_unpaired": "unpaired SDSS and unpaired CFHT images per iteration (each)",
    "batch_paired": "SDSS-CFHT pairs per iteration",
    "lr": "initial learning rate",
    "lr_drop": "divide the learning rate by this ...",
    "lr_drop_every": "... every this many iterations",
    "clip_norm": "gradient norm clipping",
    **{f"lr_{role}": f"initial rate of the {what} (default: {fallback})"
       for role, what, fallback in (
           ("auto", "autoencoders in step 1", "--lr"),
           ("pretrain", "autoencoders in --auto-pretrain", "--lr-auto"),
           ("disc", "discriminators", "--lr"), ("noise", "noise emulators", "--lr"),
           ("gen", "generators", "--lr"))},
    "noise_init": "noise emulator amplitude: paper (as built) or data (output rms = robust "
                  "noise estimate of the training images)",
    "auto_pretrain": "autoencoder-only iterations before step 1 (paper: 0)",
    "step2_weight_sdss": "step 2 weight of the SDSS-domain cycle + identity terms",
    "step2_weight_cfht": "step 2 weight of the CFHT-domain cycle + identity terms",
    "step2_lr_drop": "step 2: divide the generators' rate by this ... (default: --lr-drop)",
    "step2_lr_drop_every": "... every this many step-2 iterations (default: "
                           "--lr-drop-every)",
    "seed": "weights, data order, noise",
    "precision": "float32, fp16 (mixed_float16) or bf16 (mixed_bfloat16)",
    "jit_compile": "compile the step with XLA",
    "eager": "run eagerly (no graph trace; for debugging and tiny tests)",
    "checkpoint_every": "iterations per checkpoint / progress-bar epoch",
    "sample_every": "iterations per sample grid",
    "n_samples": "test pairs in each sample grid",
}
#: The choices of the flags that have them, by config field.
CHOICES = {"variant": list(VARIANTS), "noise_init": NOISE_INITS,
           "adv_reduction": ADV_REDUCTIONS, "precision": list(PRECISIONS)}


def build_parser() -> argparse.ArgumentParser:
    """The training flags: ``--step``, the fields of :class:`NoiseGANConfig` with its
    defaults (the recipe's in a group of their own), the run folder."""
    p = Parser(
        prog="python -m noise_gan.train",
        description="Train the semi-supervised noise-reconstructed GAN of Lin, Fouchez & "
                    "Pasquet (2021) (SDSS <-> CFHT, ugriz FITS), ablation a-f, or "
                    "benchmark g (CycleGAN) / h (Augmented CycleGAN).",
        epilog="variants:\n" + "\n".join(f"  {k:5s} {v}" for k, v in VARIANTS.items()))
    p.add_argument("--step", choices=STEPS, default="both",
                   help="which step of variant ours to train; one-step variants accept "
                        "1 or both")
    add_run_dir(p, "runs/noise_gan")
    add_config_args(p, NoiseGANConfig, skip=("bands", *RECIPE), help=HELP, choices=CHOICES)
    # the networks' channels: one per band of --band-set (parse_args), settable for tests
    p.add_argument("--bands", type=int, default=None, help=argparse.SUPPRESS)
    add_config_args(p.add_argument_group("training recipe (issue 13; the defaults are "
                                         "the paper's)"),
                    NoiseGANConfig, only=RECIPE, help=HELP, choices=CHOICES)
    p.add_argument("--mixed-precision", action="store_const", const="fp16",
                   dest="precision", help="same as --precision fp16")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    return p


def parse_args(argv=None):
    """CLI arguments -> ``(validated NoiseGANConfig, namespace)``; a bad value exits with
    a one-line argparse error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bands is None:  # the networks get one channel per band read
        args.bands = len(args.band_set)
    cfg = config_from_args(NoiseGANConfig, args)
    try:
        cfg.validate()
        if not cfg.two_step and args.step == "2":
            raise ValueError(f"variant {cfg.variant} trains in one step: use --step 1 or "
                             f"both, not 2")
    except ValueError as err:
        parser.error(str(err))
    quiet_tensorflow(args.verbose)
    return cfg, args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    from common.errors import run_cli
    from noise_gan.trainer import train
    return run_cli(lambda: train(cfg, Path(args.run_dir), step=args.step,
                                 resume=args.resume, progress=not args.no_progress))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
