"""Noise-reconstructed GAN of Lin, Fouchez & Pasquet (2021): SDSS <-> CFHT translation with
autoencoders, generators, per-band noise emulators and per-band discriminators.

``noise_gan.networks`` and ``noise_gan.layers`` hold the networks (Fig. 2 of the paper),
``noise_gan.losses`` Lin eqs. 1-6, ``noise_gan.trainer`` the training job.
"""
