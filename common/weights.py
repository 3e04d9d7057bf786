"""Reference weight files of the perceptual networks (:mod:`common.lpips`,
:mod:`common.fid`): where each comes from and its published hash (:data:`SOURCES`), the
Keras cache (``$KERAS_HOME/models``), download with hash checks (:func:`fetch`), torch
``.pth`` files read once by the converters (:func:`read_pth`), the ``weights=PATH`` >
``$ENV`` lookup both metrics share (:func:`given_weights`), and seeded random weights in a
torch layout for the parity checks (:func:`seeded_state_dict`).

None of the weights can be fetched on an offline machine (``shared/notes/metrics.md``):
with none found a metric is *unavailable*, and a random-init network is built only behind
``allow_uncalibrated=True`` and then labelled :data:`UNCALIBRATED` in every output.
Nothing here imports TensorFlow (:func:`fetch` imports Keras when called).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from common.io import file_sha256

#: Label of every output of a random-init network (``allow_uncalibrated=True``).
UNCALIBRATED = "uncalibrated"


class WeightsNotFound(FileNotFoundError):
    """No weights file for a perceptual network; the message is one line naming the
    argument, environment variable and cache path that were tried."""


@dataclass(frozen=True)
class Source:
    """Where a reference weight file comes from.

    ``file_hash`` is a full md5/sha256 that ``keras.utils.get_file`` checks;
    ``sha256_prefix`` the leading hex digits of the sha256 that a torch hub file name
    carries (``name-<prefix>.pth``), checked after download. ``None``: not known to us.
    """
    url: str
    fname: str
    file_hash: str | None = None
    sha256_prefix: str | None = None


#: The reference files. Hashes are only those published with the files: Keras' md5 from
#: keras.applications; torchvision/pytorch-fid's sha256 prefixes from their file names.
#: The LPIPS lin-layer files come with no published hash: they are not verified.
SOURCES = {
    "alex": Source("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                   "alexnet-owt-7be5be79.pth", sha256_prefix="7be5be79"),
    "vgg": Source("https://download.pytorch.org/models/vgg16-397923af.pth",
                  "vgg16-397923af.pth", sha256_prefix="397923af"),
    # richzhang/PerceptualSimilarity, lpips/weights/v0.1/ (no hash published)
    "lin-alex": Source("https://github.com/richzhang/PerceptualSimilarity/raw/master/"
                       "lpips/weights/v0.1/alex.pth", "lpips_v0.1_alex.pth"),
    "lin-vgg": Source("https://github.com/richzhang/PerceptualSimilarity/raw/master/"
                      "lpips/weights/v0.1/vgg.pth", "lpips_v0.1_vgg.pth"),
    "keras-inceptionv3": Source(
        "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        file_hash="bcbd6486424b2319ff4ef7d526e38f63"),  # md5, as in keras.applications
    "pt_inception": Source(
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "pt_inception-2015-12-05-6726825d.pth", sha256_prefix="6726825d"),
}


def keras_home() -> str:
    """The Keras cache root, read now: ``$KERAS_HOME`` or ``~/.keras``."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def cache_path(fname: str) -> str:
    """Where ``keras.utils.get_file`` keeps ``fname``: ``$KERAS_HOME/models/fname``."""
    return os.path.join(keras_home(), "models", fname)


def fetch(source: Source | str, origin: str | None = None) -> str:
    """Download a reference file into ``$KERAS_HOME/models`` (or reuse a valid cached
    copy) and return its path.

    ``source``: a :class:`Source` or a key of :data:`SOURCES`; ``origin`` overrides the
    URL (a mirror). The full hash, if known, is checked by ``keras.utils.get_file`` (a
    cached file that fails it is downloaded again); a sha256 prefix is checked here and a
    file that fails it is deleted and ``ValueError`` raised.
    """
    import keras

    src = SOURCES[source] if isinstance(source, str) else source
    # get_file falls back to /tmp/.keras when the cache root does not exist yet
    os.makedirs(os.path.join(keras_home(), "models"), exist_ok=True)
    path = keras.utils.get_file(src.fname, origin or src.url, file_hash=src.file_hash,
                                cache_subdir="models", cache_dir=keras_home())
    if src.sha256_prefix and not file_sha256(path).startswith(src.sha256_prefix):
        os.remove(path)
        raise ValueError(f"{src.fname}: sha256 does not start with {src.sha256_prefix} "
                         "(corrupt or wrong file; deleted)")
    return path


def check_sha256(path: str, source: Source | str) -> str:
    """The file's sha256, after checking it against ``source``'s published hash (a full
    sha256 or the prefix in a torch hub file name); one-line ``ValueError`` if it differs.
    A source without a sha256 (the LPIPS lin files) is not checked."""
    src = SOURCES[source] if isinstance(source, str) else source
    digest = file_sha256(path)
    want = src.sha256_prefix or (src.file_hash if src.file_hash and len(src.file_hash) == 64
                                 else None)
    if want and not digest.startswith(want):
        raise ValueError(f"{path}: sha256 {digest[:16]}... does not start with {want}: "
                         f"not {src.fname} (wrong or corrupt file)")
    return digest


def read_pth(path: str) -> dict[str, np.ndarray]:
    """A torch state dict file -> name -> numpy array. Imports torch here: only the
    one-time converters need it, and it is not a project requirement."""
    try:
        import torch
    except ImportError:
        raise ValueError("reading a .pth file needs torch (pip install torch, once, on any "
                         "machine; it is not a project requirement)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a non-checkpoint file
        raise ValueError(f"{path}: not a torch state dict ({type(err).__name__})") from None
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def given_weights(weights: str | None, env: str, metric: str) -> str | None:
    """The weights file named by the ``weights`` argument, else by ``$env``; ``None``
    when neither is set. :class:`WeightsNotFound` (one line, naming ``metric``) when the
    one named is not a file."""
    for given, how in ((weights, "weights="), (os.environ.get(env), f"${env}=")):
        if given:
            if not os.path.isfile(given):
                raise WeightsNotFound(f"{metric} weights {how}{given}: no such file")
            return given
    return None


def seeded_state_dict(shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights in a reference (torch) layout, rebuilt bit for bit without
    torch: the parity golden files (``tools/parity_perceptual.py``) were made from them.

    Each array has its own numpy PCG64 stream, seeded by ``(seed, crc32(name))`` (so it
    does not depend on the order or number of the other arrays), and uses only
    ``Generator.random`` (uniform [0, 1) float64, a stable stream), then float32. Ranges by
    role, chosen so that a deep network neither saturates nor vanishes:

    * conv/linear weights ``U(-a, a)``, ``a = sqrt(6 / fan_in)`` (He-uniform: keeps the
      scale of ReLU activations over Inception's ~50 conv layers);
    * LPIPS lin weights ``U(0, 2 / C)`` (non-negative, as LPIPS requires);
    * BatchNorm ``weight``, ``running_var`` ``U(0.5, 1.5)``; ``bias``, ``running_mean``
      and conv biases ``U(-0.1, 0.1)``.
    """
    import zlib

    out = {}
    for name, shape in shapes.items():
        u = np.random.default_rng([seed, zlib.crc32(name.encode())]).random(shape)
        if re.fullmatch(r"lin\d\.model\.\d\.weight", name):
            a = u * 2.0 / shape[1]
        elif name.endswith(("running_var", "bn.weight")):
            a = 0.5 + u
        elif len(shape) >= 2:
            a = (2 * u - 1) * np.sqrt(6.0 / np.prod(shape[1:]))
        else:
            a = (2 * u - 1) * 0.1
        out[name] = a.astype(np.float32)
    return out
