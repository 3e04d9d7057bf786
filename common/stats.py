"""Orderings with error bars: is model A better than model B, beyond training and test noise?

A comparison of two rows of a table uses two sources of spread (DESIGN.md, "claims come
with error bars"):

* **seeds**: each of the K training seeds gives its own mean difference over the test
  set; GAN training varies from seed to seed by as much as the papers' gaps;
* **galaxies**: the test set is a sample, so the mean difference has a sampling error,
  estimated by a paired bootstrap over galaxies (the same galaxies resampled for both
  rows and for every seed).

A difference can also be real but too small to matter: below the precision the table
prints the metric with (:data:`common.paper.MIN_DIFFERENCE`, one unit in the last
printed decimal) it is never called an ordering. :func:`paired_verdict` turns the three
into one of three words, by :data:`RULE`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.paper import MIN_DIFFERENCE

HOLDS, FAILS, NOISE = "holds", "does not hold", "within noise"

#: Bootstrap resamples and the two-sided interval of :func:`paired_verdict`.
N_BOOT = 2000
CONFIDENCE = 0.95



def _floors() -> str:
    """``MIN_DIFFERENCE`` in words, metrics with the same floor grouped."""
    by: dict[float, list[str]] = {}
    for m, v in MIN_DIFFERENCE.items():
        by.setdefault(v, []).append(m.upper())
    return "; ".join(f"{v:g} for {', '.join(ms[:-1]) + ' and ' if len(ms) > 1 else ''}"
                     f"{ms[-1]}" for v, ms in by.items())


RULE = (f"per test galaxy, the difference of the two rows (averaged over the seeds); "
        f"'{HOLDS}' when the {CONFIDENCE:.0%} paired bootstrap interval of its mean "
        f"({N_BOOT:,} resamples of the galaxies) lies wholly on the claimed side, every "
        f"seed's mean difference has the claimed sign and the mean difference is at "
        f"least the metric's minimum meaningful difference (one unit in the last decimal "
        f"the table prints the metric with: {_floors()}); "
        f"'{FAILS}' when all three are met on the other side; otherwise '{NOISE}'")


@dataclass
class Verdict:
    """Outcome of one paired comparison; differences are signed so that > 0 favours A."""
    verdict: str
    mean: float                  # mean difference over galaxies and seeds
    low: float                   # bootstrap interval of ``mean``
    high: float
    seed_means: list[float]      # per-seed mean difference

    def describe(self, digits: int = 2) -> str:
        seeds = ", ".join(f"{v:+.{digits}f}" for v in self.seed_means)
        return (f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"
                + (f"; seeds {seeds}" if len(self.seed_means) > 1 else ""))


def paired_verdict(a, b, higher_is_better: bool, *, min_difference: float,
                   n_boot: int = N_BOOT, seed: int = 0) -> Verdict:
    """Does row A beat row B on one metric?

    Args:
        a, b: per-galaxy values, ``[K, N]`` (K seeds, the same N galaxies in the same
            order) or ``[N]`` (one seed, or a row with no training such as a raw input);
            a single row is compared with every seed of the other.
        higher_is_better: the metric's direction (PSNR, SSIM: True; RMSE: False).
        min_difference: the smallest mean difference (>= 0, the metric's units) that
            can be an ordering; a smaller one is "within noise" whatever its interval
            (:data:`common.paper.MIN_DIFFERENCE` for Table 1's metrics).
        n_boot: bootstrap resamples; ``seed``: the resampling generator's seed, fixed so
            that the same scores give the same verdict.
    Returns:
        a :class:`Verdict` decided by :data:`RULE`.
    """
    if not min_difference >= 0:
        raise ValueError(f"min_difference must be >= 0, got {min_difference}")
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the rows cover different galaxies: {a.shape[1]} vs {b.shape[1]}")
    d = (a - b) if higher_is_better else (b - a)  # broadcast: [K, N]
    per_galaxy = d.mean(0)
    seed_means = d.mean(1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_galaxy), (n_boot, len(per_galaxy)))
    boots = per_galaxy[idx].mean(1)
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(boots, [tail, 1.0 - tail])
    mean = per_galaxy.mean()
    if low > 0 and (seed_means > 0).all() and mean >= min_difference:
        verdict = HOLDS
    elif high < 0 and (seed_means < 0).all() and mean <= -min_difference:
        verdict = FAILS
    else:
        verdict = NOISE
    return Verdict(verdict, float(mean), float(low), float(high),
                   seed_means.tolist())


def combine(verdicts: dict[str, Verdict]) -> str:
    """One word for a claim made on several metrics: ``holds`` if it holds on all,
    ``does not hold (on ...)`` if it fails on any, else ``within noise (on ...)``."""
    failed = [m for m, v in verdicts.items() if v.verdict == FAILS]
    noisy = [m for m, v in verdicts.items() if v.verdict == NOISE]
    if failed:
        return f"{FAILS} (on {', '.join(failed)})"
    if noisy:
        return f"{NOISE} (on {', '.join(noisy)})"
    return HOLDS
