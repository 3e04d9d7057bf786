"""Pix2WGAN configuration: one dataclass whose defaults are the paper's settings."""
from __future__ import annotations

from dataclasses import dataclass

from common.choices import NORMS
from common.cli import bound

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
    loss: str = "wgan-gp"       # "bce" = classic pix2pix, Luo eqs. 1-2
    l1_weight: float = 100.0    # Luo eq. 3, lambda
    gp_weight: float = 10.0     # Luo eq. 7, w_p
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
            *(bound(self, name, ">=", 1) for name in ("epochs", "batch_size", "n_critic",
                                                      "width")),
            (self.image_size % 2**self.depth == 0,
             f"--image-size {self.image_size} must be divisible by 2**depth = "
             f"{2**self.depth}"),
            (self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, "
                                  f"got {self.loss!r}"),
            (self.critic_norm in NORMS, f"--critic-norm must be one of {', '.join(NORMS)}"),
            bound(self, "n_train", ">=", 0),
            bound(self, "lr", ">", 0),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    @property
    def iteration_batch(self) -> int:
        """Images consumed by one ``train_step``: ``n_critic`` critic batches."""
        return self.batch_size * (self.n_critic if self.loss == "wgan-gp" else 1)
