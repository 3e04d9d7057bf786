"""Cascade Pix2WGAN (Luo et al. §4.3, Fig. 7): SDSS -> pseudo-DECaLS (G1/D1) ->
pseudo-HSC (G2/D2), trained jointly; inference is G2∘G1 on SDSS alone."""
