"""Shared pytest settings: quiet TensorFlow, fixed seeds, tiny sizes; and the tiny
simulated Luo set, simulated once per test session (per worker under pytest-xdist)."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def luo_tiny_sim(tmp_path_factory):
    """The ``tiny`` preset's simulated SDSS/DECaLS/HSC set (``experiments.luo_common.TINY``),
    read-only: a test that changes files copies it first."""
    from data.simulate import SimConfig, ensure_simulated
    from experiments import luo_common
    return ensure_simulated(SimConfig(out=tmp_path_factory.mktemp("luo_tiny") / "sim",
                                      workers=1, progress=False, **luo_common.TINY["sim"]))
