"""Noise-reconstructed GAN of Lin, Fouchez & Pasquet (2021): SDSS <-> CFHT translation with
autoencoders, generators, per-band noise emulators and per-band discriminators.

``noise_gan.networks`` holds the network builders (Fig. 2 of the paper).
"""
