"""What the benchmark scripts time, built once here: a training step with its keras-io
reference twin and seeded batch (bench_train.py, gpu_check.py), an untrained generator
as a predict function and a synthetic JPEG catalogue (bench_predict.py, gpu_check.py).
Speed does not depend on the weights or the pixels, so everything is seeded random."""
from __future__ import annotations

from pathlib import Path

from benchmarks.benchlib import conv_forward_flops


def clone_net(net):
    """A copy of the Keras model ``net`` with the same weights."""
    import keras
    twin = keras.models.clone_model(net)
    twin.set_weights(net.get_weights())
    return twin


def train_setup(kind, cfg):
    """``(ours_step, ref_step, inputs, images_per_step, F_G, F_D, model)`` for ``kind``
    ("pix2wgan" or "cascade") at ``cfg``: our ``train_step`` as a tf.function
    (``cfg.jit_compile``), the keras-io reference step on twins of the same networks
    with the same initial weights, a seeded batch in [-1, 1] of ``n_critic x batch``
    images of ``image_size^2 x 3`` (pairs; triplets for the cascade), and the forward
    conv FLOPs per image of the (first) generator and critic."""
    import keras
    import tensorflow as tf

    from benchmarks.reference_wgan import reference_cascade_step, reference_step
    n = cfg.n_critic * cfg.batch_size
    shape = (n, cfg.image_size, cfg.image_size, 3)
    rng = tf.random.Generator.from_seed(0)
    if kind == "pix2wgan":
        from pix2wgan.trainer import build
        model = build(cfg)
        data = (rng.uniform(shape, -1, 1), rng.uniform(shape, -1, 1))
        nets = [model.generator, model.critic]
        twins = [clone_net(x) for x in nets]
        ref = reference_step(*twins, *(keras.optimizers.Adam(2e-4, 0.5) for _ in range(2)),
                             n_critic=cfg.n_critic)
    else:
        from cascade.trainer import build
        model = build(cfg)
        data = tuple(rng.uniform(shape, -1, 1) for _ in range(3))
        nets = [model.stage1.generator, model.stage1.critic, model.stage2.generator,
                model.stage2.critic]
        twins = [clone_net(x) for x in nets]
        ref = reference_cascade_step(*twins, [keras.optimizers.Adam(2e-4, 0.5)
                                              for _ in range(4)], n_critic=cfg.n_critic)
    ours = tf.function(model.train_step, jit_compile=cfg.jit_compile)
    s = (cfg.image_size, cfg.image_size, 3)
    f_g = conv_forward_flops(nets[0], [s])
    f_d = conv_forward_flops(nets[1], [s, s])
    return ours, ref, data, n, f_g, f_d, model


def build_predict_model(model, width, depth):
    """``(fn, multiple)``: an untrained U-Net generator (``model`` "pix2wgan"), or the
    cascade's two in a row, as a tf.function of a ``(B, H, W, 3)`` batch in [-1, 1];
    ``multiple`` (2^depth) is the side the input must be a multiple of."""
    import tensorflow as tf

    from pix2wgan.layers import build_unet
    g1 = build_unet(width, depth, name="generator")
    if model == "pix2wgan":
        fn = lambda x: g1(x, training=False)  # noqa: E731
    else:
        g2 = build_unet(width, depth, name="generator2")
        fn = lambda x: g2(g1(x, training=False), training=False)  # noqa: E731
    return tf.function(fn, reduce_retracing=True), 2 ** depth


def write_catalogue(root: Path, rows: int, size: int, pool: int = 64) -> Path:
    """``root/cat.csv`` of ``rows`` rows (ids ``r0000000``...) over ``pool`` JPEGs."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True, exist_ok=True)
    for k in range(pool):
        arr = np.clip(rng.normal(60, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "img" / f"p{k:03d}.jpg", quality=90)
    with open(root / "cat.csv", "w") as f:
        f.write("id,path\n")
        for r in range(rows):
            f.write(f"r{r:07d},img/p{r % pool:03d}.jpg\n")
    return root / "cat.csv"
