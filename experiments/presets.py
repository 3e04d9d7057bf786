"""The presets of every experiment script, in one place.

* :data:`LUO_PRESETS` (Luo et al.: Table 1, Figs 1-9, physics.py, run_all.py): ``cpu``,
  ``paper`` and ``tiny``; ``table1.py`` offers :data:`TABLE1_PRESETS` (run_all.py
  spells the tiny one as table1.py flags, :func:`table1_tiny_flags`);
* :data:`LIN_PRESETS` (Lin et al.: lin_fig3..6, the case scheduler): ``tiny``, ``cpu``,
  ``paper``, over the cases :data:`LIN_CASES`.

Plain data only: importing this module imports nothing of the project, nor TensorFlow.
"""
from __future__ import annotations

#: ``cpu``: a reduced run that finishes in <= 15 min on 2 CPU cores, simulation included.
#: It keeps the paper's losses, networks (narrower: width 8) and critic ratio, but has
#: ~500 generator updates instead of ~78,000, so it starts at 5x the paper's learning
#: rate and anneals it by 1.1 per epoch (to ~2.4e-5 by the last epoch) to end on a
#: stable model. Why 1.1: at /1.05 (final lr ~1.5e-4) the WGAN models still oscillated
#: at the end: Pix2WGAN's validation L1 swung 0.09-0.17 over the last 8 epochs and one
#: run's test RMSE moved from 26.8 to 30.5 between epochs 39 and 40, so the seed spread
#: of the table was the last epoch's luck; at /1.1 the last 5 epochs' validation L1 of
#: each of three seeds stayed within 0.099-0.111 (Pix2WGAN, measured; the selection
#: criterion was this stability, read on the 64 monitoring galaxies, not the table).
#: Every Table 1 model trains with this one schedule, as in the paper (§4.3: the cascade
#: "share[s] the same structures and parameter settings" as Pix2WGAN): an earlier preset
#: gave the cascade 9 epochs at a /1.26 decay to save time, which left G1 with a +41
#: grey-level sky offset and the cascade worse than raw SDSS.
#: ``precision``: float32, so the README's numbers repeat on any CPU; ``--precision
#: auto`` picks mixed_bfloat16 on a CPU with bf16 units (AVX512_BF16 here: 1.08-1.10x
#: faster at width 8, batch 8; three seeds' cells within one float32 seed std at the
#: earlier /1.05 schedule, see docs/performance.md).
#: ``paper``: Luo et al. §2.4 / §4.2 (15,000 + 2,000 galaxies, width 64, 500 epochs).
LUO_PRESETS = {
    # ``sim``: SimConfig fields of the preset's simulated set ({} = the embedded default,
    # datasets/sim-default); ``folder``: its name under the data root.
    "cpu": dict(folder=None, sim=dict(),
                train=dict(width=8, epochs=40, batch_size=8, lr=1e-3, lr_decay=1.1,
                           precision="float32")),
    "paper": dict(folder="sim-paper", sim=dict(n_train=15000, n_test=2000), train=dict()),
    #: ``tiny``: 8 + 6 simulated galaxies with high defect rates (so that every artifact
    #: rule of Figs 5-6 finds a galaxy), width-4 networks, one epoch, batch 2. A smoke
    #: test of the code paths, not a result.
    "tiny": dict(folder="sim-tiny",
                 sim=dict(n_train=8, n_test=6, rate_companion=0.3, rate_streak=0.4,
                          rate_saturated=0.3, rate_noisy=0.3, rate_blurred=0.3),
                 train=dict(width=4, epochs=1, batch_size=2, lr=1e-3, lr_decay=1.05)),
}

#: The Luo presets table1.py takes (``--preset``): the tiny one runs through run_all.py
#: with flags (:func:`table1_tiny_flags`).
TABLE1_PRESETS = ("cpu", "paper")


def table1_tiny_flags() -> list[str]:
    """The table1.py flags that give the ``tiny`` preset's sizes on top of ``--preset
    cpu`` (its other settings, e.g. lr_decay, stay the cpu preset's)."""
    train = LUO_PRESETS["tiny"]["train"]
    return ["--epochs", str(train["epochs"]), "--width", str(train["width"]),
            "--batch-size", str(train["batch_size"])]


#: Cases in the paper's order (Figs. 4-6). (g) CycleGAN and (h) Augmented CycleGAN
#: translate CFHT regridded to the SDSS grid (§IV-B; ``noise_gan.cyclegan``): their CFHT
#: reconstructions are compared with the regridded originals.
LIN_CASES = ("ours", "a", "b", "c", "d", "e", "f", "g", "h")

#: Lin et al. presets. ``sim``: ``LinSimConfig`` fields of the preset's simulated set,
#: ``folder``: its name under the data root (None = the default set ``sim-lin``), or
#: ``real``: the preset's default data is the downloaded FITS set
#: (``python -m data.download pairs``); ``train``: ``NoiseGANConfig`` changes from the
#: paper's settings (§IV-B; recipe fields a case has no networks for are left out of its
#: config, ``experiments.lin_common.RECIPE_NEEDS``); ``cases``: the cases the figure
#: scripts train and plot by default (``--cases all``: every one); ``n_noise``:
#: Noise-Emulator draws behind σ of Fig. 5.
#:
#: ``cpu``: issue 13's recipe, meant to show Figs. 5-6's claims from scratch within 30
#: min on an idle 2-core CPU (docs/noise_gan.md has the measured times and the
#: measurements behind each value). r band only (Figs. 5-6 are r; ~2.5x cheaper per
#: step), width 8, batches 4 + 4 + 4; the emulators start at the robust noise estimate of
#: the training images; the autoencoders are pre-trained 5,000 iterations so the critic
#: compares noise with noise, not with blur (at 1,000 the CFHT critic wins on the
#: autoencoder's residuals within 400 iterations and pushes the emulator down); critics
#: and emulators at the paper's 1e-4 (at 3e-3 the critic wins within ~200 iterations),
#: autoencoders and generators at 1e-3; 1,500 iterations for step one and the ablations,
#: with no rate drops; step two 3,000, its rate divided by 10 after 2,000 (at a constant
#: 1e-3 the generators end wherever their swing is: 4,000 iterations gave one seed a
#: sky offset above the CFHT noise and 0 % in the band, from 44 % at 2,000). Step two's
#: CFHT-domain terms weigh 25x: the ratio of the two domains' noise variances in r
#: (robust estimates 0.0112² / 0.00224²), so each domain's errors count in units of its
#: own noise (measured at 2,000: 50 % of the CFHT reconstructions in the noise band,
#: against 31 % at 8x and 4 % at 1:1; SDSS 80-81 % in all three).
#: ``paper``: §IV-B unchanged (width 64, 60,000 iterations per step, 24 + 24 + 24,
#: lr 1e-4 / 5 every 20,000, ugriz) on the downloaded paired sets (a GPU job).
#: ``tiny``: for tests, seconds per case (plus tracing).
LIN_PRESETS = {
    "tiny": dict(folder="sim-lin-tiny", real=False,
                 sim=dict(n_paired_train=4, n_paired_test=6, n_unpaired_sdss=4,
                          n_unpaired_cfht=4),
                 train=dict(width=2, noise_hidden=2, iterations=2, batch_unpaired=2,
                            batch_paired=2, checkpoint_every=2, sample_every=2,
                            n_samples=1, lr=1e-3, lr_drop_every=1),
                 cases=LIN_CASES, n_noise=8),
    "cpu": dict(folder=None, real=False, sim=dict(),
                train=dict(band_set="r", width=8, noise_hidden=16, batch_unpaired=4,
                           batch_paired=4, iterations=1500, step2_iterations=3000,
                           step2_lr_drop=10.0, step2_lr_drop_every=2000,
                           noise_init="data", auto_pretrain=5000, lr=1e-3, lr_disc=1e-4,
                           lr_noise=1e-4, lr_drop=1.0, step2_weight_cfht=25.0,
                           checkpoint_every=100, sample_every=500, n_samples=4),
                cases=("ours", "a"), n_noise=500),
    "paper": dict(folder=None, real=True, sim=dict(), train=dict(), cases=LIN_CASES,
                  n_noise=2500),
}
