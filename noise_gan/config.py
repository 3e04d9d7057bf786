"""Configuration of the semi-supervised noise-reconstructed GAN of Lin, Fouchez & Pasquet
(2021), of its ablations (a)-(f) and of the benchmarks (g) CycleGAN and (h) AugCGAN: one
dataclass whose defaults are the paper's settings.

Section numbers refer to the paper (§III: model, §IV-B: experiment details); "notes" is
``shared/notes/lin2021.md`` (facts read from the authors' released TF1 code).
"""
from __future__ import annotations

from dataclasses import dataclass

from common.cli import bound, flag

#: Variant -> one-line description (§IV-B). Cases (g) and (h) use other architectures
#: (``noise_gan.cyclegan``) and CFHT regridded to the SDSS grid.
VARIANTS = {
    "ours": "our model: step 1 autoencoders + noise emulators + per-band discriminators "
            "(Lin eqs. 1-3), step 2 generators with the frozen noise emulators (Lin eqs. 4-5)",
    "a": "(a) Ad.pix2pix: generators on the identity loss (Lin eq. 4, pairs) x1000 + "
         "adversarial, no autoencoders, no noise emulators",
    "b": "(b) Ad.CycleGAN: cycle loss (Lin eq. 5, unpaired, no noise) x1000 + adversarial",
    "c": "(c) Ad.CycleGAN+PID: (b) + pseudo-identity loss (Lin eq. 6) x1000",
    "d": "(d) Ad.CycleGAN+ID: (b) + identity loss (Lin eq. 4) x1000",
    "e": "(e) Ad.CycleGAN+ID+PS: (d) with PixelShuffle upsampling in the generators",
    "f": "(f) Ours-Auto: generators + noise emulators + discriminators in one step, no "
         "autoencoders; generators on cycle + identity only, noise emulators on the "
         "adversarial loss",
    "g": "(g) CycleGAN: Zhu et al.'s 6-residual-block generators and 70x70 PatchGANs on "
         "CFHT regridded to 64 px; LSGAN + 10 x L1 cycle, unpaired only",
    "h": "(h) AugCGAN: (g) with 16-d latent codes injected by conditional instance norm, "
         "latent encoders and critics (Almahairi et al.), + the supervised identity loss "
         "on pairs",
}

#: Variants trained in two steps (§III-A); every other variant has one step.
TWO_STEP = ("ours",)
#: Variants with noise emulators (F = G + NE).
NOISY = ("ours", "f")
#: Benchmark variants on CFHT bilinearly regridded to the SDSS grid (§IV-B: "The regridded
#: 64x64 CFHT images are used in Cases (g) and (h)"); their CFHT side is ``sdss_size`` px.
REGRIDDED = ("g", "h")
#: Smallest SDSS size of (g)/(h): the 70x70 PatchGAN's score map is empty below 24 px.
REGRIDDED_MIN_SIZE = 24
#: How Lin eqs. 2-3 reduce the per-band sigmoid cross-entropies ``[B, bands]``: "sum" over
#: bands, mean over the batch (the paper's eqs. 2-3); "mean" over both (the released
#: code's ``reduce_mean``: the adversarial terms are 1/bands of the paper's).
ADV_REDUCTIONS = ("sum", "mean")
STEPS = ("1", "2", "both")
#: Noise-emulator initialisation (issue 13): "paper" = Fig. 2(e) as built (Glorot, bias
#: 0.1; the released code); "data" = the amplitude set so the output rms matches a robust
#: noise estimate of the training images (``noise_gan.networks.init_emulator_amplitude``).
NOISE_INITS = ("paper", "data")
#: The survey bands of the FITS cubes, in their order (§IV-A: ugriz).
ALL_BANDS = "ugriz"
#: Optimizer roles and the ``lr_<role>`` field that overrides ``lr`` for each
#: ("pretrain" falls back to "auto"'s rate).
LR_ROLES = ("auto", "pretrain", "disc", "noise", "gen")


@dataclass
class NoiseGANConfig:
    # model
    variant: str = "ours"       # §IV-B: "ours", an ablation case a..f or a benchmark g, h
                                # (see VARIANTS)
    # data (§IV-A)
    data: str = ""              # FITS root (data.layout); "" = the simulated default set
    sdss_size: int = 64         # §IV-A: SDSS cutouts 64x64 px (0.396"/px)
    cfht_size: int = 136        # §IV-A: CFHT cutouts 136x136 px (0.187"/px), same sky;
                                # Fig. 2(b) fixes it to 2 (sdss_size + 4)
    bands: int = 5              # §IV-A: ugriz (the networks' channels; the CLI derives it
                                # from band_set)
    band_set: str = ALL_BANDS   # §IV-A: ugriz. Issue 13: a subset (e.g. "r", ~2.5x cheaper
                                # a step on a CPU) trains on those bands of the cubes only
    # networks (§III-B..E, Fig. 2)
    width: int = 64             # Fig. 2: first-layer filters (64) of every network
    noise_hidden: int = 64      # Fig. 2(e): FC64 -> FC64 -> FC1 amplitude branch of NE
    # losses
    content_weight: float = 1000.0  # §IV-B: baselines (a)-(e): 1000 x content + adversarial
                                    # ((g)/(h) weigh their terms as Zhu et al. do)
    adv_reduction: str = "sum"  # Lin eqs. 2-3 sum over bands (released code: mean)
    # optimisation (§IV-B)
    iterations: int = 60000     # §IV-B: 60,000 iterations per step (and per ablation)
    step2_iterations: int = 0   # step two's count when it differs (0: ``iterations``,
                                # the paper's 60,000 for both)
    batch_unpaired: int = 24    # §IV-B: 24 unpaired SDSS + 24 unpaired CFHT per iteration
    batch_paired: int = 24      # §IV-B: + 24 pairs (96 images in total)
    lr: float = 1e-4            # §IV-B: starts at 1e-4 ...
    lr_drop: float = 5.0        # ... divided by 5 ...
    lr_drop_every: int = 20000  # ... every 20,000 iterations (notes: the code says 5)
    clip_norm: float = 5.0      # §IV-B: gradient clipping at global norm 5; Adam defaults
    # training recipe (issue 13); the defaults are the paper's, bit for bit
    lr_auto: float | None = None   # autoencoders' rate in step one (None: lr, §IV-B)
    lr_pretrain: float | None = None  # auto_pretrain's rate, in an Adam of its own
                                   # (None: step one's autoencoder optimizer makes those
                                   # updates at lr_auto)
    lr_disc: float | None = None   # discriminators' rate (None: lr). Issue 13: 1e-4; at
                                   # 3e-3 the critic wins within ~200 iterations
    lr_noise: float | None = None  # noise emulators' rate (None: lr). Issue 13: 1e-4
                                   # (at 3e-4 the CFHT critic wins outright)
    lr_gen: float | None = None    # generators' rate (None: lr). Issue 13: 1e-3 in step 2
    noise_init: str = "paper"   # paper: Fig. 2(e) as built, ~0.3-0.45 rms, 22x (SDSS) and
                                # 252x (CFHT) the data's r-band noise; data: amplitude set
                                # to a truth-free robust estimate of the training images
    auto_pretrain: int = 0      # autoencoder-only iterations before step 1 (paper: 0;
                                # issue 13: 5,000, so the critic judges noise, not blur)
    step2_lr_drop: float | None = None  # step two's drop factor (None: lr_drop). The cpu
    step2_lr_drop_every: int | None = None  # preset: ÷10 after 2,000 of 3,000 iterations;
                                    # at a constant 1e-3 the generators end wherever
                                    # their swing is (a sky offset above the CFHT noise
                                    # at one seed's last checkpoint)
    step2_weight_sdss: float = 1.0  # step 2 weight of the SDSS-domain terms (cycle x,
                                    # identity G^{Y->X}); paper/released code: 1
    step2_weight_cfht: float = 1.0  # ... of the CFHT-domain terms (cycle y, identity
                                    # G^{X->Y}); CFHT pixel variance is ~8x smaller, so
                                    # at 1:1 the SDSS terms dominate (issue 13)
    seed: int = 0
    precision: str = "float32"  # float32 | fp16 (mixed_float16 + loss scaling) | bf16
    jit_compile: bool = False
    eager: bool = False         # run train_step eagerly (no tf.function trace: tests, debug)
    # bookkeeping (ours, not the paper's)
    checkpoint_every: int = 1000  # iterations per Keras "epoch": checkpoint + CSV row
    sample_every: int = 5000    # a PNG sample grid at the first checkpoint past each
                                # multiple of this, and at the end of each step
    n_samples: int = 4          # fixed test pairs in each sample grid

    # --- derived ------------------------------------------------------------------------
    @property
    def two_step(self) -> bool:
        return self.variant in TWO_STEP

    @property
    def has_noise(self) -> bool:
        return self.variant in NOISY

    @property
    def upsample(self) -> str:
        """Generator upsampling: nearest-neighbour (§III-B), PixelShuffle for case (e)."""
        return "pixelshuffle" if self.variant == "e" else "nearest"

    @property
    def regridded(self) -> bool:
        """Whether the variant sees CFHT regridded to the SDSS grid ((g), (h))."""
        return self.variant in REGRIDDED

    @property
    def cfht_out_size(self) -> int:
        """Side of the variant's CFHT-domain images: ``cfht_size`` (136), or ``sdss_size``
        (64) for the regridded benchmarks (g), (h)."""
        return self.sdss_size if self.regridded else self.cfht_size

    def lr_of(self, role: str) -> float:
        """Initial rate of the optimizer of ``role`` (one of ``LR_ROLES``): its own
        ``lr_<role>`` if set, else ``lr`` ("pretrain": else the autoencoders' rate)."""
        own = getattr(self, f"lr_{role}")
        if own is None:
            return self.lr_of("auto") if role == "pretrain" else self.lr
        return own

    @property
    def band_indices(self) -> list[int]:
        """Channels of ``band_set`` in the ugriz cubes, e.g. ``[2]`` for "r"."""
        return [ALL_BANDS.index(b) for b in self.band_set]

    def lr_drop_of(self, step: str) -> tuple[float, int]:
        """``(factor, every)`` of the §IV-B staircase in training step "1" or "2"."""
        if step == "2":
            return (self.lr_drop if self.step2_lr_drop is None else self.step2_lr_drop,
                    self.lr_drop_every if self.step2_lr_drop_every is None
                    else self.step2_lr_drop_every)
        return self.lr_drop, self.lr_drop_every

    def iterations_of(self, step: str) -> int:
        """Iterations of training step "1" or "2"."""
        return self.step2_iterations if step == "2" and self.step2_iterations else self.iterations

    def steps_per_epoch_of(self, step: str) -> int:
        """Iterations per Keras epoch (one checkpoint each) of ``step``."""
        return min(self.checkpoint_every, self.iterations_of(step))

    def validate(self) -> "NoiseGANConfig":
        """Raise ``ValueError`` naming the first bad value."""
        for ok, message in self._checks():
            if not ok:
                raise ValueError(message)
        return self

    def _recipe_checks(self):
        """Checks of the issue-13 options (each names its flag)."""
        bs = self.band_set
        yield (isinstance(bs, str) and bs != "" and all(b in ALL_BANDS for b in bs)
               and bs == "".join(b for b in ALL_BANDS if b in bs),
               f"--band-set must be bands of {ALL_BANDS}, each once, in that order "
               f"(e.g. r or gri), got {bs!r}")
        yield (bs == ALL_BANDS or self.bands == len(bs),
               f"--band-set {bs} has {len(bs)} band(s) but bands is {self.bands}")
        for role in LR_ROLES:
            yield bound(self, f"lr_{role}", ">", 0)
        for role in ("auto", "pretrain"):
            yield (getattr(self, f"lr_{role}") is None or self.two_step,
                   f"--lr-{role}: variant {self.variant} has no autoencoders")
        yield (self.lr_noise is None or self.has_noise,
               f"--lr-noise: variant {self.variant} has no noise emulators")
        yield (self.noise_init in NOISE_INITS,
               f"--noise-init must be one of {', '.join(NOISE_INITS)}, "
               f"got {self.noise_init!r}")
        yield (self.noise_init == "paper" or self.has_noise,
               f"--noise-init {self.noise_init}: variant {self.variant} has no noise "
               f"emulators")
        yield bound(self, "auto_pretrain", ">=", 0)
        yield (self.auto_pretrain == 0 or self.two_step,
               f"--auto-pretrain: variant {self.variant} has no autoencoders")
        for name in ("lr_drop", "lr_drop_every"):
            yield bound(self, f"step2_{name}", ">", 0)
            yield (getattr(self, f"step2_{name}") is None or self.two_step,
                   f"{flag(f'step2_{name}')}: variant {self.variant} has no step 2")
        for dom in ("sdss", "cfht"):
            w = getattr(self, f"step2_weight_{dom}")
            yield bound(self, f"step2_weight_{dom}", ">", 0)
            yield (w == 1.0 or self.two_step,
                   f"--step2-weight-{dom}: variant {self.variant} has no step 2")
        v = self.variant
        yield (self.content_weight == NoiseGANConfig.content_weight or not self.regridded,
               f"--content-weight: variant {v} weighs its terms as CycleGAN does (cycle "
               f"x10), not by the content weight of (a)-(e)")
        yield (self.adv_reduction == NoiseGANConfig.adv_reduction or not self.regridded,
               f"--adv-reduction: variant {v} has no per-band discriminators (its "
               f"PatchGAN takes a least-squares loss)")
        yield (self.sdss_size >= REGRIDDED_MIN_SIZE or not self.regridded,
               f"--sdss-size must be >= {REGRIDDED_MIN_SIZE} for variant {v} (the 70x70 "
               f"PatchGAN leaves no patch below), got {self.sdss_size}")

    def _checks(self):
        """``(ok, message)`` pairs, lazily: a later check may divide by a value an
        earlier one has checked (``--iterations 0`` is named, not a ZeroDivisionError)."""
        from common.choices import PRECISIONS
        yield from [
            (self.variant in VARIANTS,
             f"--variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"),
            *(bound(self, name, ">=", 1) for name in (
                "iterations", "batch_unpaired", "batch_paired", "width", "noise_hidden",
                "bands")),
            (self.sdss_size >= 8 and self.sdss_size % 8 == 0,
             f"--sdss-size must be a positive multiple of 8, got {self.sdss_size}"),
            (self.cfht_size == 2 * (self.sdss_size + 4),
             f"--cfht-size must be 2 x (sdss size + 4) = {2 * (self.sdss_size + 4)} "
             f"(Fig. 2(b): pad 2, then x2), got {self.cfht_size}"),
            bound(self, "lr", ">", 0),
            bound(self, "lr_drop", ">=", 1),
            bound(self, "lr_drop_every", ">=", 1),
            bound(self, "clip_norm", ">", 0),
            bound(self, "content_weight", ">", 0),
            (self.adv_reduction in ADV_REDUCTIONS,
             f"--adv-reduction must be one of {', '.join(ADV_REDUCTIONS)}, "
             f"got {self.adv_reduction!r}"),
            (self.precision in PRECISIONS,
             f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            bound(self, "checkpoint_every", ">=", 1),
            bound(self, "step2_iterations", ">=", 0),
            bound(self, "sample_every", ">=", 1),
            bound(self, "n_samples", ">=", 1),
            *self._recipe_checks(),
        ]
        yield from [  # evaluated only once the counts above are known to be positive
            (self.iterations % self.steps_per_epoch_of("1") == 0,
             f"--iterations {self.iterations} must be a multiple of --checkpoint-every "
             f"{self.checkpoint_every}"),
            (self.iterations_of("2") % self.steps_per_epoch_of("2") == 0,
             f"--step2-iterations {self.step2_iterations} must be a multiple of "
             f"--checkpoint-every {self.checkpoint_every}"),
        ]
