"""The FID Inception: the 2015-12-05 TF Inception graph that every published FID uses
(Luo et al.'s included), in the module layout of pytorch-fid's port
(``pt_inception-2015-12-05-6726825d.pth``; its FIDInceptionA/C/E blocks: average pools
that do not count padding, a max pool in the last block), as a Keras model
(:func:`build_pt_inception`), and its weights: the torch state dict's layout
(:func:`pt_inception_layout`), the one-time conversion to our ``.npz``
(:func:`pt_inception_from_torch`, ``tools/convert_fid_weights.py``) and loading
(:func:`load_pt_inception`). Features and the Fréchet distance: :mod:`common.fid`.

Every conv is pytorch-fid's BasicConv2d: conv without bias -> BatchNorm (eps 1e-3) ->
ReLU. Keras layer names are the torch module paths ("Mixed_5b.branch1x1.conv"), so the
weight mapping is by name. Torch pads stride-1 convs symmetrically by (k - 1) / 2, which
is Keras "same"; the stride-2 convs and pools have no padding ("valid").
"""
from __future__ import annotations

import numpy as np

#: Converted pt_inception weights in the Keras cache (tools/convert_fid_weights.py).
PT_INCEPTION_NPZ = "pt_inception-2015-12-05-6726825d.npz"


def _bconv(x, name: str, filters: int, kernel, stride: int = 1, padding: str = "same"):
    """BasicConv2d ``name``: ``[N, H, W, C]`` -> ``[N, H', W', filters]``, >= 0."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=f"{name}.conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def _chain(x, block: str, *convs):
    """BasicConv2d after BasicConv2d; ``convs``: ``(branch, filters, kernel[, stride,
    padding])``, named ``<block>.<branch>``."""
    for branch, *args in convs:
        x = _bconv(x, f"{block}.{branch}" if block else branch, *args)
    return x


def _avg_pool(x):
    """3x3/1 average pool, padding 1, averaging only over real pixels: TF's "SAME" pool,
    which pytorch-fid reproduces with ``count_include_pad=False`` (its FIDInception patch)."""
    from keras import layers
    return layers.AveragePooling2D(3, 1, "same")(x)


def _inception_a(x, n: str, pool_features: int):
    """FIDInceptionA: 64 + 64 + 96 + ``pool_features`` channels, same size."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 64, 1)),
        _chain(x, n, ("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5)),
        _chain(x, n, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3),
               ("branch3x3dbl_3", 96, 3)),
        _chain(_avg_pool(x), n, ("branch_pool", pool_features, 1))])


def _inception_b(x, n: str):
    """InceptionB (Mixed_6a, unpatched): 384 + 96 + C channels, size (H - 3) // 2 + 1."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch3x3", 384, 3, 2, "valid")),
        _chain(x, n, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3),
               ("branch3x3dbl_3", 96, 3, 2, "valid")),
        layers.MaxPooling2D(3, 2)(x)])


def _inception_c(x, n: str, c7: int):
    """FIDInceptionC: 4 x 192 channels, same size; factorised 7x7 convs of width ``c7``."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 192, 1)),
        _chain(x, n, ("branch7x7_1", c7, 1), ("branch7x7_2", c7, (1, 7)),
               ("branch7x7_3", 192, (7, 1))),
        _chain(x, n, ("branch7x7dbl_1", c7, 1), ("branch7x7dbl_2", c7, (7, 1)),
               ("branch7x7dbl_3", c7, (1, 7)), ("branch7x7dbl_4", c7, (7, 1)),
               ("branch7x7dbl_5", 192, (1, 7))),
        _chain(_avg_pool(x), n, ("branch_pool", 192, 1))])


def _inception_d(x, n: str):
    """InceptionD (Mixed_7a, unpatched): 320 + 192 + C channels, size (H - 3) // 2 + 1."""
    from keras import layers
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2, "valid")),
        _chain(x, n, ("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7)),
               ("branch7x7x3_3", 192, (7, 1)), ("branch7x7x3_4", 192, 3, 2, "valid")),
        layers.MaxPooling2D(3, 2)(x)])


def _inception_e(x, n: str, max_pool: bool):
    """FIDInceptionE_1 (``max_pool=False``) / _2: 320 + 2x384 + 2x384 + 192 = 2048
    channels, same size. The 2015 graph's last block pools by max, not average (a quirk
    of that graph that pytorch-fid keeps; FIDs depend on it)."""
    from keras import layers
    b3 = _chain(x, n, ("branch3x3_1", 384, 1))
    bd = _chain(x, n, ("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3))
    pool = layers.MaxPooling2D(3, 1, "same")(x) if max_pool else _avg_pool(x)
    return layers.Concatenate(name=n)([
        _chain(x, n, ("branch1x1", 320, 1)),
        _chain(b3, n, ("branch3x3_2a", 384, (1, 3))),
        _chain(b3, n, ("branch3x3_2b", 384, (3, 1))),
        _chain(bd, n, ("branch3x3dbl_3a", 384, (1, 3))),
        _chain(bd, n, ("branch3x3dbl_3b", 384, (3, 1))),
        _chain(pool, n, ("branch_pool", 192, 1))])


def build_pt_inception(size: int | None = None):
    """The FID Inception (pytorch-fid's ``InceptionV3([3])`` after its input transform) as
    a random-init ``keras.Model``: ``[N, size, size, 3]`` in ``[-1, 1]`` (``size`` >= 75,
    299 for real FIDs; ``None``: any) -> pool_3 features ``[N, 2048]`` float32, >= 0.
    Load weights with :func:`load_pt_inception`."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3))
    x = _chain(inp, "", ("Conv2d_1a_3x3", 32, 3, 2, "valid"), ("Conv2d_2a_3x3", 32, 3, 1, "valid"),
               ("Conv2d_2b_3x3", 64, 3))
    x = layers.MaxPooling2D(3, 2)(x)
    x = _chain(x, "", ("Conv2d_3b_1x1", 80, 1), ("Conv2d_4a_3x3", 192, 3, 1, "valid"))
    x = layers.MaxPooling2D(3, 2)(x)
    for n, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = _inception_a(x, n, pf)
    x = _inception_b(x, "Mixed_6a")
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _inception_c(x, n, c7)
    x = _inception_d(x, "Mixed_7a")
    x = _inception_e(x, "Mixed_7b", max_pool=False)
    x = _inception_e(x, "Mixed_7c", max_pool=True)
    return keras.Model(inp, layers.GlobalAveragePooling2D(name="pool_3")(x),
                       name="pt_inception")


#: A BatchNorm's Keras weights and the torch buffers/parameters they come from.
_BN = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
       ("moving_variance", "running_var"))


def pt_inception_layout(model) -> dict[str, tuple[int, ...]]:
    """The torch state dict of :func:`build_pt_inception`'s weights: name -> torch shape
    (``<m>.conv.weight`` ``[out, in, kh, kw]``; ``<m>.bn.weight|bias|running_mean|
    running_var`` ``[C]``). pytorch-fid's file has these plus ``fc.*`` (unused by pool_3)."""
    out = {}
    for layer in model.layers:
        if layer.name.endswith(".conv"):
            kh, kw, cin, cout = layer.kernel.shape
            out[f"{layer.name}.weight"] = (cout, cin, kh, kw)
        elif layer.name.endswith(".bn"):
            for _, t in _BN:
                out[f"{layer.name}.{t}"] = (layer.gamma.shape[0],)
    return out


def pt_inception_from_torch(state: dict, model=None) -> dict[str, np.ndarray]:
    """pytorch-fid's state dict (name -> array) -> our weight file's arrays: ``<m>.conv/
    kernel`` ``[kh, kw, in, out]`` and ``<m>.bn/gamma|beta|moving_mean|moving_variance``,
    float32, plus ``extractor`` = ``"pt_inception"``.

    ``fc.*`` (the 1008-class logits) and ``num_batches_tracked`` are dropped; a missing or
    mis-shaped array, or any other key (a torchvision Inception has ``AuxLogits.*``) is a
    one-line ``ValueError``: the file is not pytorch-fid's FID Inception.
    """
    layout = pt_inception_layout(model if model is not None else build_pt_inception())
    extra = sorted(k for k in state if k not in layout and not k.startswith("fc.")
                   and not k.endswith("num_batches_tracked"))
    if extra:
        raise ValueError(f"not pytorch-fid's FID Inception: unexpected key {extra[0]} "
                         f"({len(extra)} in all)")
    out = {"extractor": np.array("pt_inception")}
    for key, shape in layout.items():
        if key not in state:
            raise ValueError(f"not pytorch-fid's FID Inception: missing key {key}")
        a = np.asarray(state[key], np.float32)
        if a.shape != shape:
            raise ValueError(f"{key} has shape {a.shape}, expected {shape}")
        layer, what = key.rsplit(".", 1)
        if layer.endswith(".conv"):
            out[f"{layer}/kernel"] = a.transpose(2, 3, 1, 0)
        else:
            out[f"{layer}/{dict((t, k) for k, t in _BN)[what]}"] = a
    return out


def load_pt_inception(model, path: str) -> str:
    """Set :func:`build_pt_inception`'s weights from a converted ``.npz``
    (:func:`pt_inception_from_torch`); one-line ``ValueError`` on another file. Returns
    the sha256 of the ``.pth`` it was converted from ("" when not recorded)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:  # not an .npz (e.g. Keras' .h5): say so
        raise ValueError(f"{path}: not a pt_inception .npz "
                         f"(tools/convert_fid_weights.py makes one): {err}") from None
    if str(data.get("extractor", "")) != "pt_inception":
        raise ValueError(f"{path}: not pt_inception weights (extractor "
                         f"{str(data.get('extractor'))!r}; tools/convert_fid_weights.py "
                         "makes them)")
    for layer in model.layers:
        keys = ([f"{layer.name}/kernel"] if layer.name.endswith(".conv") else
                [f"{layer.name}/{k}" for k, _ in _BN] if layer.name.endswith(".bn") else [])
        if not keys:
            continue
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]}")
        for k, w in zip(keys, layer.get_weights()):
            if data[k].shape != w.shape:
                raise ValueError(f"{path}: {k} has shape {data[k].shape}, expected {w.shape}")
        layer.set_weights([np.asarray(data[k], np.float32) for k in keys])
    return str(data.get("source_sha256", ""))
