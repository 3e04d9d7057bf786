"""common.stats: the ordering rule on synthetic per-galaxy scores."""
import numpy as np
import pytest

from common import stats


def _scores(mean, spread, n=200, seeds=1, seed_shift=None, rng_seed=0):
    """``[seeds, n]`` per-galaxy differences around ``mean`` with per-galaxy noise
    ``spread`` (and an optional per-seed offset)."""
    rng = np.random.default_rng(rng_seed)
    base = rng.normal(20.0, 5.0, n)  # the galaxies themselves, shared by both rows
    rows = [base + mean + rng.normal(0.0, spread, n) + (seed_shift[k] if seed_shift else 0)
            for k in range(seeds)]
    return np.array(rows), base


@pytest.mark.parametrize("higher", [True, False])
def test_clear_win_holds_and_clear_loss_does_not(higher):
    sign = 1.0 if higher else -1.0
    a, b = _scores(sign * 2.0, 1.0, seeds=3)
    win = stats.paired_verdict(a, b, higher, min_difference=0.01)
    assert win.verdict == stats.HOLDS
    assert win.mean == pytest.approx(2.0, abs=0.2) and win.low > 0
    # the same rows, the other way round
    loss = stats.paired_verdict(b, a, higher, min_difference=0.01)
    assert loss.verdict == stats.FAILS and loss.high < 0


def test_overlap_is_within_noise():
    a, b = _scores(0.05, 3.0, n=100)
    v = stats.paired_verdict(a, b, True, min_difference=0.01)
    assert v.verdict == stats.NOISE and v.low < 0 < v.high


def test_a_seed_that_disagrees_makes_a_clear_test_set_win_noise():
    # Over the galaxies the mean is clearly positive, but one seed of three loses.
    a, b = _scores(1.0, 0.5, seeds=3, seed_shift=[1.5, 1.0, -1.6])
    v = stats.paired_verdict(a, b, True, min_difference=0.01)
    assert v.low > 0 and min(v.seed_means) < 0
    assert v.verdict == stats.NOISE


def test_single_row_broadcasts_against_seeds_and_is_reproducible():
    a, b = _scores(1.0, 1.0, seeds=2)
    v1 = stats.paired_verdict(a, b[None], True, min_difference=0.01)
    v2 = stats.paired_verdict(a, b, True, min_difference=0.01)
    assert v1 == v2 and len(v1.seed_means) == 2


def test_rows_of_other_galaxies_are_refused():
    with pytest.raises(ValueError, match="different galaxies"):
        stats.paired_verdict(np.zeros(5), np.zeros(6), True, min_difference=0)


def test_a_difference_below_the_printed_precision_is_within_noise():
    # Every galaxy and every seed agree, the interval is far from 0, but the mean
    # difference (0.001) is below what the table prints: never "holds".
    from common.paper import MIN_DIFFERENCE
    a, b = _scores(0.001, 0.0001, n=500, seeds=3)
    v = stats.paired_verdict(a, b, True, min_difference=MIN_DIFFERENCE["ssim"])
    assert v.low > 0 and min(v.seed_means) > 0 and v.mean == pytest.approx(0.001, rel=0.1)
    assert v.verdict == stats.NOISE
    # ... nor "does not hold", the other way round
    assert stats.paired_verdict(b, a, True, min_difference=0.01).verdict == stats.NOISE
    # the same scores count with no floor, and a difference of a whole unit counts
    assert stats.paired_verdict(a, b, True, min_difference=0).verdict == stats.HOLDS
    a, b = _scores(0.02, 0.0001, n=500, seeds=3)
    assert stats.paired_verdict(a, b, True, min_difference=0.01).verdict == stats.HOLDS
    assert stats.paired_verdict(a, b, False, min_difference=0.01).verdict == stats.FAILS


def test_the_floor_is_one_unit_of_the_printed_precision_and_in_the_rule():
    from common.paper import DIGITS, MIN_DIFFERENCE, TABLE1_METRICS
    assert set(MIN_DIFFERENCE) == set(DIGITS) == set(TABLE1_METRICS)
    for m, d in DIGITS.items():
        assert MIN_DIFFERENCE[m] == pytest.approx(10.0 ** -d)
    assert "minimum meaningful difference" in stats.RULE and "0.01 for RMSE" in stats.RULE
    with pytest.raises(ValueError, match="min_difference"):
        stats.paired_verdict(np.zeros(3), np.zeros(3), True, min_difference=-1)


def test_combine_names_the_metrics_that_fail_or_are_noise():
    hold = stats.Verdict(stats.HOLDS, 1, 0.5, 1.5, [1])
    noise = stats.Verdict(stats.NOISE, 0.1, -0.5, 0.6, [0.1])
    fail = stats.Verdict(stats.FAILS, -1, -1.5, -0.5, [-1])
    assert stats.combine({"RMSE": hold, "SSIM": hold}) == stats.HOLDS
    assert stats.combine({"RMSE": hold, "SSIM": noise}) == "within noise (on SSIM)"
    assert stats.combine({"RMSE": fail, "SSIM": noise}) == "does not hold (on RMSE)"
