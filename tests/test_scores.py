"""The statistical contract on synthetic features (the model-based acceptance lives in experiments/)."""

import numpy as np
import pytest
import torch

from deepdrift import DriftScorer, NotCalibratedError
from deepdrift.null_model import adjust_pvalues, fit_null, sigma_and_pvalue


def _generator(seed=0, d=48, k=6):
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, k, generator=g)

    def draw(n):  # correlated, skewed, non-negative: like post-ReLU pooled features
        return {
            "x": torch.relu(torch.randn(n, k, generator=g) @ mixing.T + 0.3 * torch.randn(n, d, generator=g)),
            "y": torch.randn(n, 3, generator=g) ** 2,
        }  # chi-square(1): skewed, few dimensions

    return draw


@pytest.fixture(scope="module")
def fitted():
    draw = _generator()
    scorer = DriftScorer().fit_features(draw(64) for _ in range(60))
    return scorer, draw


@pytest.mark.parametrize("batch_size", [1, 16, 128])
def test_clean_drift_is_standard_normal_at_every_batch_size(fitted, batch_size):
    scorer, draw = fitted
    drift = np.array([[s.drift for s in scorer.score_features(draw(batch_size)).values()] for _ in range(1500)])
    assert np.all(np.abs(drift.mean(0)) < 0.3), drift.mean(0)
    assert np.all((drift.std(0) > 0.75) & (drift.std(0) < 1.3)), drift.std(0)
    assert np.all((drift > 3.0).mean(0) <= 0.01)


def test_a_mean_shift_scores_far_above_three(fitted):
    scorer, draw = fitted
    feats = draw(16)
    feats["x"] = feats["x"] + 0.5 * feats["x"].std()
    assert scorer.score_features(feats)["x"].drift > 5


def test_drift_is_finite_and_monotone_for_extreme_shifts(fitted):
    scorer, draw = fitted
    base = draw(16)
    drifts = []
    for shift in [0.0, 1.0, 10.0, 1e3, 1e5]:
        feats = dict(base, x=base["x"] + shift)
        drifts.append(scorer.score_features(feats)["x"].drift)
    assert np.all(np.isfinite(drifts)) and np.all(np.diff(drifts) > 0)


def test_nonfinite_activations_are_flagged_not_hidden(fitted, caplog):
    scorer, draw = fitted
    feats = draw(4)
    feats["y"][0, 0] = float("inf")
    scores = scorer.score_features(feats)
    assert scores["y"].nonfinite and np.isnan(scores["y"].drift) and np.isnan(scores["y"].p_value)
    assert not scores["x"].nonfinite and np.isfinite(scores["x"].drift)
    assert "NaN/Inf" in caplog.text
    caplog.clear()
    scorer.score_features(feats)
    assert "NaN/Inf" not in caplog.text  # said once per episode, not on every batch


def test_uncalibrated_scorer_says_how_to_fix():
    with pytest.raises(NotCalibratedError, match="calibrate"):
        DriftScorer().score_features({"x": torch.zeros(2, 3)})


def test_null_resampling_variance_matches_the_analytic_formula(fitted):
    """Var(s_B) = Var(s_1)/B + 2(B-1)/B * E[c^2], c = z_i.z_j / D for independent i != j."""
    scorer, _ = fitted
    ref = scorer.calibration.layers["x"]
    z = (ref.holdout.double() - ref.mean) / ref.var.sqrt()
    z = z - z.mean(0)
    d = z.shape[1]
    single = (z**2).sum(1) / d
    gram = (z @ z.T) / d
    off = gram[~torch.eye(len(z), dtype=torch.bool)]
    for batch in (4, 32):
        expected = float(single.var()) / batch + 2 * (batch - 1) / batch * float((off**2).mean())
        measured = scorer.null_fits(batch)[0].fits[0].std ** 2
        assert measured == pytest.approx(expected, rel=0.15)


def test_pearson_tail_matches_a_chi_square_law():
    rng = np.random.default_rng(0)
    draws = rng.chisquare(5, 20000) / 5
    fit = fit_null(draws, batch_size=1)
    from scipy import stats

    for q in (0.9, 0.99, 0.999):
        s = stats.chi2.ppf(q, 5) / 5
        drift, p = sigma_and_pvalue(np.array([s]), [fit])
        assert p[0] == pytest.approx(1 - q, rel=0.2)
        assert drift[0] == pytest.approx(stats.norm.ppf(q), abs=0.15)


def test_holm_and_bh_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    holm = adjust_pvalues(p, "holm")
    np.testing.assert_allclose(holm[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm[4])
    bh = adjust_pvalues(p, "bh")
    np.testing.assert_allclose(bh[:4], [0.02, 0.04, 0.04, 0.02])
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues(p, "bonferonni")


def test_statistics_below_the_fitted_support_stay_finite_and_ordered():
    """Single-image nulls can have an atom and a long tail; the moment fit's support then starts above the median."""
    rng = np.random.default_rng(1)
    draws = np.concatenate([np.full(3000, 0.5), 0.5 + rng.pareto(1.5, 1000) * 5])
    fit = fit_null(draws, batch_size=1)
    support_start = fit.mean - 2 * fit.std / fit.skew
    assert support_start > np.median(draws)  # the case that used to score -inf
    values = np.concatenate([np.linspace(0.0, support_start, 200), np.linspace(support_start, draws.max() * 2, 200)])
    drift = np.array([sigma_and_pvalue(np.array([v]), [fit])[0][0] for v in values])
    assert np.all(np.isfinite(drift))
    assert np.all(np.diff(drift) >= -1e-9)


def test_a_sparse_shift_is_caught_by_the_peak_statistic(fitted):
    """One feature of 48 moving by 1.5 sd barely changes the mean-shift sum; the combined test still sees it."""
    scorer, draw = fitted
    mean_only = DriftScorer(statistic="mean_shift").set_calibration(scorer.calibration)
    combined, alone = [], []
    for _ in range(20):
        feats = draw(16)
        sd = float(scorer.calibration.layers["x"].var[0].sqrt())
        feats["x"][:, 0] += 1.5 * sd
        combined.append(scorer.score_features(feats)["x"].drift)
        alone.append(mean_only.score_features(feats)["x"].drift)
    assert np.median(combined) > 3.5 and np.median(alone) < 2.5, (np.median(combined), np.median(alone))


def test_single_statistics_stay_calibrated_and_unknown_names_fail(fitted):
    scorer, draw = fitted
    for name in ("mean_shift", "peak_shift", "principal"):
        single = DriftScorer(statistic=name).set_calibration(scorer.calibration)
        drift = np.array([single.score_features(draw(16))["x"].drift for _ in range(300)])
        assert abs(drift.mean()) < 0.3 and 0.75 < drift.std() < 1.3 and (drift > 3).mean() <= 0.02
    with pytest.raises(ValueError, match="combined"):
        DriftScorer(statistic="maximum")


@pytest.mark.parametrize("correlated", [False, True])
def test_min_p_combination_is_calibrated_in_the_body_and_bonferroni_bounded_in_the_tail(correlated):
    from scipy import stats

    from deepdrift.null_model import combined_sigma_and_pvalue, fit_combined_null

    rng = np.random.default_rng(0)
    first = rng.chisquare(4, 20000)
    second = first.copy() if correlated else rng.chisquare(4, 20000)
    null = fit_combined_null(np.stack([first, second], axis=1), batch_size=1)
    # body (above the junction, p > 0.1): the combined p-value of fresh null draws is uniform; below it the
    # p-value never undershoots its nominal level
    fresh = rng.chisquare(4, (8000, 2))
    if correlated:
        fresh[:, 1] = fresh[:, 0]
    _, p = combined_sigma_and_pvalue(fresh, [null] * len(fresh))
    body = p[p > 0.101]  # the junction's own value (~0.1) also caps the tail just below it
    assert stats.kstest((body - 0.101) / 0.899, "uniform").pvalue > 0.001
    assert body.size / p.size == pytest.approx(0.899, abs=0.02)
    for level in (0.05, 0.02, 0.01):
        assert (p <= level).mean() <= level * 1.3  # sampling noise only: 8000 draws
    # tail: one statistic far out (chi2_4 survival 1e-6), the other typical: the union bound K * min p (K = 2),
    # whatever the dependence (for identical statistics the exact value, 1e-6, is below it: conservative)
    far = stats.chi2.isf(1e-6, 4)
    row = np.array([[far, far if correlated else 3.0]])
    _, p_far = combined_sigma_and_pvalue(row, [null])
    assert p_far[0] == pytest.approx(2e-6, rel=0.5)
    # monotone through the junction: a more extreme statistic never gets a larger p-value
    grid = np.linspace(0.0, far, 400)
    _, p_grid = combined_sigma_and_pvalue(np.stack([grid, np.full_like(grid, 3.0)], axis=1), [null] * grid.size)
    assert np.all(np.diff(p_grid) <= 1e-15)


def test_principal_axes_whiten_the_standardised_features(fitted):
    scorer, draw = fitted
    ref = scorer.calibration.layers["x"]
    assert ref.principal is not None and 1 <= ref.principal.shape[1] <= ref.count // 10
    z = (draw(4000)["x"].double() - ref.mean) / ref.var.sqrt()
    whitened = z @ ref.principal.double()
    cov = torch.cov(whitened.T)
    np.testing.assert_allclose(torch.diag(cov).numpy(), 1.0, atol=0.25)  # unit variance on fresh clean data


def test_a_shift_along_a_quiet_principal_axis_is_caught_by_the_principal_statistic(fitted):
    """Correlated features: a shift against the correlation barely moves any single feature or their squared sum,
    but it leaves the clean subspace, where the whitened axes see it."""
    scorer, draw = fitted
    ref = scorer.calibration.layers["x"]
    sd = ref.var.sqrt().float()
    quiet = ref.principal[:, -1] / ref.principal[:, -1].norm()  # last kept axis: the smallest clean variance
    mean_only = DriftScorer(statistic="mean_shift").set_calibration(scorer.calibration)
    combined, alone = [], []
    for _ in range(20):
        feats = draw(16)
        feats["x"] = feats["x"] + 0.6 * quiet * sd
        combined.append(scorer.score_features(feats)["x"].drift)
        alone.append(mean_only.score_features(feats)["x"].drift)
    assert np.median(combined) > 4 and np.median(alone) < 2.5, (np.median(combined), np.median(alone))


def test_principal_axes_can_be_switched_off_and_the_scores_stay_calibrated():
    from deepdrift import CalibrationConfig

    draw = _generator(seed=3)
    scorer = DriftScorer(CalibrationConfig(principal_max_features=0)).fit_features(draw(64) for _ in range(40))
    assert all(ref.principal is None for ref in scorer.calibration.layers.values())
    scores = [scorer.score_features(draw(16)) for _ in range(300)]
    assert all(s["x"].principal_statistic == s["x"].statistic for s in scores)  # falls back to the mean shift
    drift = np.array([s["x"].drift for s in scores])
    assert abs(drift.mean()) < 0.3 and 0.75 < drift.std() < 1.3


def test_layers_too_wide_for_principal_axes_say_so_in_the_log(caplog):
    from deepdrift import CalibrationConfig

    draw = _generator(seed=4)
    with caplog.at_level("INFO", logger="deepdrift.calibration"):
        scorer = DriftScorer(CalibrationConfig(principal_max_features=20)).fit_features(draw(64) for _ in range(5))
    assert scorer.calibration.layers["x"].principal is None
    assert "x: 48 pooled features > principal_max_features=20" in caplog.text
