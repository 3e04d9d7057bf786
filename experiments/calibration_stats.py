"""Coverage of Gaussian intervals, one-factor recalibration and reliability curves
(library of ``experiments/calibration.py``).

Every function takes ``err`` (prediction minus reference) and ``sigma`` (the predicted
standard deviation) as arrays of one shape and one unit (grey levels of [0, 255], or
nanomaggies per pixel; any shape, flattened). The interval of nominal level ``p`` is
``|err| <= z_p * sigma`` with ``z_p`` the two-sided Gaussian quantile
(:func:`z_of`: 1.0 for 68.27 %, 2.0 for 95.45 %). A pixel with ``sigma == 0`` is
covered only when ``err == 0``; NaNs in either array are an error (the caller masks
what it cannot use).

:func:`seed_chains` loads the trained networks behind the samples: the finished runs of
Table 1's training seeds. :func:`split_ids` is the one rule that halves the test split
into VALIDATION (scale fits) and TEST (reports) galaxies for every script; the pull
functions (:func:`fit_pull_scale`, :func:`pull_stats`) recalibrate the per-galaxy
pulls ``(measured - truth) / sigma`` of ``experiments/physics.py`` the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import norm

#: The two levels the issue asks for: Gaussian 1 sigma and 2 sigma.
LEVELS = (0.6827, 0.9545)


def z_of(level: float) -> float:
    """Two-sided Gaussian quantile: ``P(|N(0, 1)| <= z) = level``, level in (0, 1)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"coverage level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def ratios(err, sigma) -> np.ndarray:
    """``|err| / sigma`` flattened to float64 (``sigma == 0``: 0 where ``err == 0``, else
    inf). Raises ``ValueError`` on mismatched shapes, NaNs or a negative sigma."""
    e = np.abs(np.asarray(err, np.float64)).ravel()
    s = np.asarray(sigma, np.float64).ravel()
    if e.shape != s.shape:
        raise ValueError(f"err and sigma differ in size: {e.size} vs {s.size}")
    if np.isnan(e).any() or np.isnan(s).any():
        raise ValueError("err or sigma holds NaN: mask those pixels first")
    if (s < 0).any():
        raise ValueError(f"sigma must be >= 0, got minimum {s.min():g}")
    out = np.full(e.shape, np.inf)
    ok = s > 0
    out[ok] = e[ok] / s[ok]
    out[~ok & (e == 0)] = 0.0
    return out


def coverage(err, sigma, levels=LEVELS, scale: float = 1.0) -> np.ndarray:
    """Empirical coverage: for each nominal level, the fraction of elements with
    ``|err| <= z_level * scale * sigma``.

    Returns ``[len(levels)]`` float64 in [0, 1] (NaN when ``err`` is empty)."""
    r = ratios(err, sigma)
    zs = np.array([z_of(p) for p in levels]) * float(scale)
    if not r.size:
        return np.full(len(zs), np.nan)
    r = np.sort(r)
    return np.searchsorted(r, zs, side="right") / r.size


def fit_scale(err, sigma, level: float = LEVELS[0]) -> float:
    """The one factor ``s`` for which ``s * sigma`` intervals of nominal ``level`` cover
    exactly ``level`` of the given elements (at least, with ties).

    Closed form: ``s = q_level(|err| / sigma) / z_level``, the empirical ``level``
    quantile of the ratios (``inverted_cdf``: an actual ratio, no interpolation), so it
    uses nothing but ``err`` and ``sigma`` as given: pass the validation split only.
    ``s > 1``: the raw intervals were too narrow. Returns inf if more than ``1 - level``
    of the elements have ``sigma == 0 < |err|`` (no finite factor reaches the level);
    raises ``ValueError`` on empty input."""
    r = ratios(err, sigma)
    if not r.size:
        raise ValueError("fit_scale: no elements to fit on")
    q = float(np.quantile(r, level, method="inverted_cdf"))
    return q / z_of(level)


def reliability(err, sigma, levels=None,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The reliability curve: ``(nominal, empirical)`` coverage, both ``[L]`` in [0, 1];
    a calibrated ``sigma`` lies on the diagonal. ``levels``: default 0.05 .. 0.99."""
    nominal = (np.asarray(levels, np.float64) if levels is not None
               else np.concatenate([np.arange(0.05, 0.951, 0.05), [0.99]]))
    return nominal, coverage(err, sigma, nominal, scale)


# ------------------------------------------------------------------ the split
def split_ids(ids) -> tuple[list[str], list[str]]:
    """``(validation, test)``: the ids sorted, even positions validation, odd test.

    The one split of every script that fits a scale (calibration.py's pixels,
    physics.py's pulls), so a galaxy is a VALIDATION galaxy in both or in neither.
    A sorted prefix (``--max-galaxies``) keeps every id on its side."""
    ids = sorted(ids)
    return ids[0::2], ids[1::2]


# ------------------------------------------------------------------ the seed runs
def seed_chains(preset: str, run, key: str, seeds: int) -> tuple[list[tuple], list]:
    """``(chains, folders)``: the finished Table 1 runs of model ``key`` ("pix2wgan":
    ``(g,)``; "cascade": ``(g1, g2)``) for training seeds 0..``seeds``-1, the folders
    ``python experiments/table1.py --seeds K`` trains
    (:func:`experiments.luo_models.run_base` + the model's suffix). Never trains: a
    missing run raises ``DataError`` naming the folder and the command that makes it."""
    from common.errors import DataError
    from experiments.luo_models import MODELS, run_base
    final = "g1.keras" if key == "cascade" else "generator.keras"
    folders = [Path(f"{run_base(run, preset, s)}{MODELS[key][1]}") for s in range(seeds)]
    missing = [f for f in folders if not (f / final).is_file()]
    if missing:
        flag = "" if preset == "cpu" else f" --preset {preset}"
        raise DataError(f"{missing[0]}: no finished {key} run ({final} missing; "
                        f"{len(missing)} of {seeds} seeds); train them with "
                        f"`python experiments/table1.py{flag} --seeds {seeds}`")
    if key == "cascade":
        from cascade.trainer import load_cascade
        return [tuple(load_cascade(f)) for f in folders], folders
    from pix2wgan.trainer import load_generator
    return [(load_generator(f),) for f in folders], folders


# ------------------------------------------------------------------ pulls
def ideal_pull_spread(n: int) -> float:
    """Robust spread (1.4826 MAD) of ``(mean - truth) / s`` when the truth and the ``n``
    draws are independent draws of one Gaussian and ``s`` is the draws' std (ddof=1):
    ``sqrt(1 + 1/n) t_{n-1}`` (Student), so 1.4826 ``sqrt(1 + 1/n) t_{n-1}.ppf(0.75)``;
    1 only as ``n -> inf`` (n = 3: 1.40, n = 12: 1.08). What a perfectly calibrated
    spread of ``n`` draws gives, against which a measured pull spread is read."""
    from scipy.stats import t
    if n < 2:
        raise ValueError(f"a pull needs at least 2 draws, got {n}")
    return float(1.4826 * np.sqrt(1 + 1 / n) * t.ppf(0.75, n - 1))


def _finite(x) -> np.ndarray:
    x = np.asarray(x, np.float64).ravel()
    return x[np.isfinite(x)]


def fit_pull_scale(val_pulls) -> float:
    """The one factor ``s`` (sigma -> ``s * sigma``) that makes the robust spread of the
    given pulls 1: ``s`` = 1.4826 MAD of the finite pulls about their median (the
    median, a bias, is left alone). Pass the VALIDATION galaxies' pulls only: the
    fit sees nothing else. ``s > 1``: sigma was too small. Raises ``ValueError`` with
    fewer than 2 finite pulls or a zero spread (no finite factor)."""
    x = _finite(val_pulls)
    if x.size < 2:
        raise ValueError(f"fit_pull_scale: {x.size} finite pulls; need at least 2")
    s = float(1.4826 * np.median(np.abs(x - np.median(x))))
    if not s > 0:
        raise ValueError("fit_pull_scale: the pulls have zero spread")
    return s


def pull_stats(pulls, scale: float = 1.0) -> dict:
    """Of the finite ``pulls / scale``: ``median`` (the bias in sigma units),
    ``spread`` (1.4826 MAD about the median; goal ~1), ``rms`` (about 0, bias
    included: sqrt(mean p^2)), ``spread0`` (1.4826 median |p|: the robust spread about
    0, bias included) and ``n``. NaNs when no pull is finite."""
    x = _finite(pulls) / float(scale)
    if not x.size:
        nan = float("nan")
        return dict(median=nan, spread=nan, rms=nan, spread0=nan, n=0)
    med = float(np.median(x))
    return dict(median=med, spread=float(1.4826 * np.median(np.abs(x - med))),
                rms=float(np.sqrt(np.mean(x ** 2))),
                spread0=float(1.4826 * np.median(np.abs(x))), n=int(x.size))


def calibrate_pulls(val, test) -> dict:
    """One pull scale fitted on ``val`` (the VALIDATION galaxies' pulls only;
    :func:`fit_pull_scale`) and the ``test`` pulls before (``_raw``) and after
    (``_cal`` = pull / scale) it, as :func:`pull_stats` gives them: ``scale``,
    ``n_val``, ``n_test``, ``median_test_raw``, ``spread_test_raw``,
    ``median_test_cal``, ``spread_test_cal`` (goal ~1), ``rms_test_cal`` and
    ``spread0_test_cal`` (about 0: the bias included). Fewer than 2 finite validation
    pulls: scale and the ``_cal`` values NaN."""
    n_val = int(np.isfinite(np.asarray(val, float)).sum())
    try:
        scale = fit_pull_scale(val)
    except ValueError:
        scale = float("nan")
    raw, cal = pull_stats(test), pull_stats(test, scale)
    return dict(scale=scale, n_val=n_val, n_test=raw["n"],
                median_test_raw=raw["median"], spread_test_raw=raw["spread"],
                median_test_cal=cal["median"], spread_test_cal=cal["spread"],
                rms_test_cal=cal["rms"], spread0_test_cal=cal["spread0"])


def pull_bias(med: float, spread: float, n: int) -> str:
    """One line: is the median pull ``med`` (sigma units; ``spread`` and ``n`` of the
    same pulls) consistent with 0? Significant beyond 3 standard errors of a median
    (1.2533 spread / sqrt(n)): then a systematic offset the sigma does not cover."""
    if not (np.isfinite(med) and np.isfinite(spread) and n):
        return "bias not measured"
    se = 1.2533 * spread / np.sqrt(n)
    if abs(med) <= 3 * se:
        return f"bias {med:+.2f} σ: consistent with 0 (3 s.e. = {3 * se:.2f})"
    side = "below" if med < 0 else "above"
    return (f"bias {med:+.2f} σ: measured {side} the truth systematically "
            f"(> 3 s.e. = {3 * se:.2f}); σ does not cover it")
