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
import dataclasses
from pathlib import Path

from common.choices import PRECISIONS
from common.cli import Parser, add_verbose, quiet_tensorflow
from noise_gan.config import (ADV_REDUCTIONS, NOISE_INITS, STEPS, VARIANTS,
                              NoiseGANConfig)


def build_parser() -> argparse.ArgumentParser:
    d = NoiseGANConfig()
    p = Parser(
        prog="python -m noise_gan.train",
        description="Train the semi-supervised noise-reconstructed GAN of Lin, Fouchez & "
                    "Pasquet (2021) (SDSS <-> CFHT, ugriz FITS), ablation a-f, or "
                    "benchmark g (CycleGAN) / h (Augmented CycleGAN).",
        epilog="variants:\n" + "\n".join(f"  {k:5s} {v}" for k, v in VARIANTS.items()))
    p.add_argument("--step", choices=STEPS, default="both",
                   help="which step of variant ours to train; one-step variants accept "
                        "1 or both")
    p.add_argument("--variant", choices=list(VARIANTS), default=d.variant,
                   help="our model, ablation a-f, or benchmark g / h (listed below)")
    p.add_argument("--run-dir", default="runs/noise_gan", help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--data", default=d.data,
                   help="FITS root (default: the simulated set of `python -m data.simulate "
                        "--setup lin`, generated on first use)")
    p.add_argument("--iterations", type=int, default=d.iterations,
                   help="iterations per step (§IV-B)")
    p.add_argument("--step2-iterations", type=int, default=d.step2_iterations,
                   help="iterations of step two when it differs (default: --iterations)")
    p.add_argument("--batch-unpaired", type=int, default=d.batch_unpaired,
                   help="unpaired SDSS and unpaired CFHT images per iteration (each)")
    p.add_argument("--batch-paired", type=int, default=d.batch_paired,
                   help="SDSS-CFHT pairs per iteration")
    p.add_argument("--width", type=int, default=d.width, help="first-layer filters")
    p.add_argument("--noise-hidden", type=int, default=d.noise_hidden,
                   help="filters of the noise emulators")
    p.add_argument("--bands", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--band-set", default=d.band_set,
                   help="bands of the ugriz cubes to train on, in ugriz order, e.g. r "
                        "(the paper: all five)")
    p.add_argument("--sdss-size", type=int, default=d.sdss_size,
                   help="SDSS cutout, pixels a side")
    p.add_argument("--cfht-size", type=int, default=d.cfht_size,
                   help="CFHT cutout, pixels a side: 2 x (sdss size + 4)")
    p.add_argument("--lr", type=float, default=d.lr, help="initial learning rate")
    p.add_argument("--lr-drop", type=float, default=d.lr_drop,
                   help="divide the learning rate by this ...")
    p.add_argument("--lr-drop-every", type=int, default=d.lr_drop_every,
                   help="... every this many iterations")
    p.add_argument("--clip-norm", type=float, default=d.clip_norm,
                   help="gradient norm clipping")
    recipe = p.add_argument_group(
        "training recipe (issue 13; the defaults are the paper's)")
    for role, what, fallback in (
            ("auto", "autoencoders in step 1", "--lr"),
            ("pretrain", "autoencoders in --auto-pretrain", "--lr-auto"),
            ("disc", "discriminators", "--lr"), ("noise", "noise emulators", "--lr"),
            ("gen", "generators", "--lr")):
        recipe.add_argument(f"--lr-{role}", type=float, default=getattr(d, f"lr_{role}"),
                            help=f"initial rate of the {what} (default: {fallback})")
    recipe.add_argument("--noise-init", choices=NOISE_INITS, default=d.noise_init,
                        help="noise emulator amplitude: paper (as built) or data (output "
                             "rms = robust noise estimate of the training images)")
    recipe.add_argument("--auto-pretrain", type=int, default=d.auto_pretrain,
                        help="autoencoder-only iterations before step 1 (paper: 0)")
    recipe.add_argument("--step2-weight-sdss", type=float, default=d.step2_weight_sdss,
                        help="step 2 weight of the SDSS-domain cycle + identity terms")
    recipe.add_argument("--step2-weight-cfht", type=float, default=d.step2_weight_cfht,
                        help="step 2 weight of the CFHT-domain cycle + identity terms")
    recipe.add_argument("--step2-lr-drop", type=float, default=d.step2_lr_drop,
                        help="step 2: divide the generators' rate by this ... (default: "
                             "--lr-drop)")
    recipe.add_argument("--step2-lr-drop-every", type=int, default=d.step2_lr_drop_every,
                        help="... every this many step-2 iterations (default: "
                             "--lr-drop-every)")
    p.add_argument("--content-weight", type=float, default=d.content_weight,
                   help="baselines a-e: weight of the content losses (g, h: fixed "
                        "CycleGAN weights)")
    p.add_argument("--adv-reduction", choices=ADV_REDUCTIONS, default=d.adv_reduction,
                   help="per-band cross-entropies: sum (paper eqs. 2-3) or mean "
                        "(released code)")
    p.add_argument("--seed", type=int, default=d.seed, help="weights, data order, noise")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="iterations per checkpoint / progress-bar epoch")
    p.add_argument("--sample-every", type=int, default=d.sample_every,
                   help="iterations per sample grid")
    p.add_argument("--n-samples", type=int, default=d.n_samples,
                   help="test pairs in each sample grid")
    p.add_argument("--precision", choices=list(PRECISIONS), default=d.precision,
                   help="float32, fp16 (mixed_float16) or bf16 (mixed_bfloat16)")
    p.add_argument("--mixed-precision", action="store_const", const="fp16",
                   dest="precision", help="same as --precision fp16")
    p.add_argument("--jit-compile", action="store_true", help="compile the step with XLA")
    p.add_argument("--eager", action="store_true",
                   help="run eagerly (no graph trace; for debugging and tiny tests)")
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
    fields = {f.name for f in dataclasses.fields(NoiseGANConfig)}
    cfg = NoiseGANConfig(**{k: v for k, v in vars(args).items() if k in fields})
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
