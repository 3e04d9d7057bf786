"""Shared pytest settings: quiet TensorFlow, fixed seeds, tiny sizes; eager fitting; and
the tiny simulated Luo set, simulated once per test session (per worker under
pytest-xdist)."""
import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Scripts the tests start in fresh interpreters import the project too: from a checkout
# that was not `pip install -e .`-ed, as pytest.ini's `pythonpath = .` does in-process.
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)


@contextlib.contextmanager
def eagerly():
    """``fit`` (every ``tf.function``, not tf.data's functions) runs eagerly inside: at
    the tests' sizes tracing a GAN step costs far more than the few steps it runs. The
    compiled steps are covered by the tests that do not use it (tests/test_pix2wgan.py's
    ``run`` fixture, tests/test_gpu_check.py's float32/fp16/bf16 steps)."""
    import tensorflow as tf
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture
def eager():
    """:func:`eagerly` for one test."""
    with eagerly():
        yield


@pytest.fixture(scope="session")
def luo_tiny_sim(tmp_path_factory):
    """The ``tiny`` preset's simulated SDSS/DECaLS/HSC set (``experiments.presets``),
    read-only: a test that changes files copies it first."""
    from data.sim_luo import SimConfig, ensure_simulated
    from experiments.presets import LUO_PRESETS
    return ensure_simulated(SimConfig(out=tmp_path_factory.mktemp("luo_tiny") / "sim",
                                      workers=1, progress=False, **LUO_PRESETS["tiny"]["sim"]))
