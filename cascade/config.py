"""Cascade Pix2WGAN configuration: Pix2WGAN's paper defaults (§4.3: "All the generators
and discriminators ... share the same structures and parameter settings as described in
Section 4.2") plus the bridge and the stage-2 gradient switch."""
from __future__ import annotations

from dataclasses import dataclass

from pix2wgan.config import Pix2WGANConfig

#: §4.3: "These intermediate images can be either DECaLS images or degraded HSC images".
BRIDGES = ("decals", "degraded-hsc")


@dataclass
class CascadeConfig(Pix2WGANConfig):
    source: str = "sdss"          # §4.3: SDSS -> HSC
    target: str = "hsc"
    bridge: str = "decals"        # §4.3: "we have chosen DECaLS images as the bridging images"
    stage2_grad: bool = False     # our choice (the paper is silent): see cascade/model.py
    # Every other field (networks, losses, n_critic = 3, Adam, lr decay, 500 epochs) is
    # Pix2WGAN's §4.2 setting, inherited unchanged.

    def validate(self) -> "CascadeConfig":
        super().validate()
        if self.bridge not in BRIDGES:
            raise ValueError(f"--bridge must be one of {', '.join(BRIDGES)}, "
                             f"got {self.bridge!r}")
        if self.bridge == "degraded-hsc" and self.target != "hsc":
            raise ValueError("--bridge degraded-hsc needs --target hsc")
        surveys = [self.source, self.target] + (
            [] if self.bridge == "degraded-hsc" else [self.bridge])
        if len(set(surveys)) < len(surveys):
            raise ValueError(f"source, bridge and target must be three different surveys, "
                             f"got {self.source}, {self.bridge}, {self.target}")
        return self
