"""Tiny hand-made datasets in the on-disk layout, for tests that must not need the
simulator: a manifest plus asymmetric, galaxy-like JPEGs for sdss, decals and hsc."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from data.layout import image_path

SURVEYS = ("sdss", "decals", "hsc")


def fake_image(rng, size):
    """An asymmetric galaxy-ish ``[size, size, 3]`` uint8: off-centre blob + gradient +
    noise, so that every flip/rotation changes it."""
    yy, xx = np.mgrid[:size, :size] * (32.0 / size)
    cy, cx = rng.uniform(6, 12), rng.uniform(18, 26)
    blob = 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
    base = 30 + blob + 1.5 * xx + 0.5 * yy
    img = base[..., None] * np.array([1.0, 0.85, 0.7]) + rng.normal(0, 3, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path, arr, quality=95):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=quality)


def write_manifest(root, n_train, n_test):
    """``root/manifest.csv`` of ids ``g00, g01, ...``: ``n_train`` then ``n_test``;
    returns ``(ids, splits)``."""
    ids = [f"g{i:02d}" for i in range(n_train + n_test)]
    splits = ["train"] * n_train + ["test"] * n_test
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "ra": np.linspace(150, 151, len(ids)),
                  "dec": np.linspace(2, 3, len(ids)), "split": splits}).to_csv(
        root / "manifest.csv", index=False)
    return ids, splits


def make_fake(root, *, size=32, n_train=6, n_test=3, identical=False, seed=0):
    """Manifest + JPEGs for all ``SURVEYS`` under ``root``; returns ``root``.

    ``identical``: all surveys of a galaxy share one image (target == input).
    """
    rng = np.random.default_rng(seed)
    ids, splits = write_manifest(root, n_train, n_test)
    for gid, split in zip(ids, splits):
        shared = fake_image(rng, size)
        for s in SURVEYS:
            write_jpeg(image_path(root, split, s, gid),
                       shared if identical else fake_image(rng, size))
    return root


def lin_batch(cfg, seed=0):
    """One Lin et al. training batch of Gaussian images (N(0, 0.5²), stretched-domain-like)
    in the shapes of ``cfg`` (a ``NoiseGANConfig``): ``{"sdss", "cfht", "pair_sdss",
    "pair_cfht"}`` float32 tensors ``[B, size, size, bands]``."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)

    def img(n, s):
        return tf.constant(rng.normal(0.0, 0.5, (n, s, s, cfg.bands)).astype(np.float32))
    return {"sdss": img(cfg.batch_unpaired, cfg.sdss_size),
            "cfht": img(cfg.batch_unpaired, cfg.cfht_size),
            "pair_sdss": img(cfg.batch_paired, cfg.sdss_size),
            "pair_cfht": img(cfg.batch_paired, cfg.cfht_size)}
