"""Pix2WGAN configuration: one dataclass whose defaults are the paper's settings."""
from __future__ import annotations

from dataclasses import dataclass

from common.choices import NORMS

LOSSES = ("wgan-gp", "bce")


@dataclass
class Pix2WGANConfig:
    # data (§2.4)
    data: str = ""              # dataset root; "" = the embedded simulated default
    source: str = "decals"      # §4.2: DECaLS -> HSC
    target: str = "hsc"
    image_size: int = 128       # §2.4: 128x128 at 0.168"/px
    n_train: int = 0            # use only the first N training galaxies (0 = all)
    # networks (§3.1)
    width: int = 64             # first-layer filters (pix2pix default)
    depth: int = 6              # "six modules" in encoder and decoder
    dropout: float = 0.5        # on the first three decoder modules
    critic_norm: str = "batch"  # §3.1: every critic conv is followed by batch norm
    # losses (§3.2)
    loss: str = "wgan-gp"       # "bce" = classic pix2pix, eqs. 1-2
    l1_weight: float = 100.0    # eq. 3, lambda
    gp_weight: float = 10.0     # eq. 7, w_p
    n_critic: int = 3           # §4.2: generator updated once every three critic iterations
    # optimisation (§4.2)
    batch_size: int = 32
    lr: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_decay: float = 1.00004   # lr divided by this after each epoch
    epochs: int = 500
    seed: int = 0
    precision: str = "float32"  # float32 | fp16 (mixed_float16 + loss scaling) | bf16
    jit_compile: bool = False
    n_samples: int = 6          # validation galaxies in each epoch's PNG grid

    def validate(self) -> "Pix2WGANConfig":
        """Raise ``ValueError`` naming the first bad value."""
        from data.surveys import LUO_SURVEYS
        for flag, name in (("--source", self.source), ("--target", self.target)):
            if name not in LUO_SURVEYS:  # cfht is Lin et al.'s FITS survey (noise_gan)
                raise ValueError(f"{flag} must be one of the JPEG surveys "
                                 f"{', '.join(LUO_SURVEYS)}, got {name!r}")
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.n_critic >= 1, f"--n-critic must be >= 1, got {self.n_critic}"),
            (self.width >= 1, f"--width must be >= 1, got {self.width}"),
            (self.image_size % 2**self.depth == 0,
             f"--image-size {self.image_size} must be divisible by 2**depth = "
             f"{2**self.depth}"),
            (self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, "
                                  f"got {self.loss!r}"),
            (self.critic_norm in NORMS, f"--critic-norm must be one of {', '.join(NORMS)}"),
            (self.n_train >= 0, f"--n-train must be >= 0, got {self.n_train}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    @property
    def iteration_batch(self) -> int:
        """Images consumed by one ``train_step``: ``n_critic`` critic batches."""
        return self.batch_size * (self.n_critic if self.loss == "wgan-gp" else 1)
