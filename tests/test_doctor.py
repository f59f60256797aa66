import numpy as np
import pytest

from deepdrift import DoctorConfig, FailureMode, diagnose_drift


def test_clean_profile_is_stable():
    d = diagnose_drift([0.3, -1.0, 1.2, 0.5])
    assert d.mode is FailureMode.STABLE and d.onset_layer is None and str(d).startswith("OK")


def test_input_side_onset_without_amplification_is_sensor_failure():
    d = diagnose_drift([12.0, 8.0, 2.0, 0.5])
    assert d.mode is FailureMode.SENSOR_FAILURE and d.onset_index == 0 and d.zone == "UV"


def test_amplified_input_drift_is_an_avalanche():
    d = diagnose_drift([4.0, 6.0, 15.0, 30.0])
    assert d.mode is FailureMode.GEOMETRIC_COLLAPSE
    assert str(d) == "WARNING: Avalanche Effect (Geometric Failure)"


def test_mid_onset_is_spurious_correlation():
    d = diagnose_drift([0.2, 0.9, 9.0, 4.0, 3.5])
    assert d.mode is FailureMode.SPURIOUS_CORRELATION and d.onset_index == 2 and d.zone == "Mid"


def test_deep_onset_is_geometric():
    d = diagnose_drift([0.1, -0.4, 0.8, 11.0])
    assert d.mode is FailureMode.GEOMETRIC_COLLAPSE and d.onset_index == 3 and d.zone == "IR"


def test_flat_everywhere_high_is_global_collapse():
    d = diagnose_drift([40.0, 35.0, 38.0, 42.0])
    assert d.mode is FailureMode.GLOBAL_COLLAPSE and str(d).startswith("CRITICAL")


def test_flat_but_decaying_profile_is_an_input_change_not_global():
    d = diagnose_drift([40.0, 35.0, 30.0, 25.0])
    assert d.mode is FailureMode.SENSOR_FAILURE and d.onset_index == 0


def test_the_pattern_names_the_profile_shape_behind_each_mode():
    profiles = {
        "no significant drift": [0.3, -1.0, 1.2, 0.5],
        "input-side onset, not amplified": [12.0, 8.0, 2.0, 0.5],
        "input-side onset, amplified with depth": [4.0, 6.0, 15.0, 30.0],
        "mid-level onset": [0.2, 0.9, 9.0, 4.0, 3.5],
        "output-side onset": [0.1, -0.4, 0.8, 11.0],
        "every tap significant, flat profile": [40.0, 35.0, 38.0, 42.0],
    }
    for pattern, profile in profiles.items():
        assert diagnose_drift(profile).pattern == pattern
    # two modes share a name but not a pattern: the pattern keeps what the data can tell apart
    assert diagnose_drift([4.0, 6.0, 15.0, 30.0]).mode is diagnose_drift([0.1, -0.4, 0.8, 11.0]).mode


def test_status_dict_uses_depth_not_insertion_order():
    status = {
        "layer4": {"drift": 9.0, "p_value": 1e-12, "depth": 1.0, "zone": "IR"},
        "stem": {"drift": 0.1, "p_value": 0.45, "depth": 0.0, "zone": "UV"},
        "layer2": {"drift": 6.0, "p_value": 1e-9, "depth": 0.5, "zone": "Mid"},
        "layer1": {"drift": 0.4, "p_value": 0.3, "depth": 0.25, "zone": "UV"},
    }
    d = diagnose_drift(status)
    assert d.onset_layer == "layer2" and d.mode is FailureMode.SPURIOUS_CORRELATION
    assert "starting at layer2 [Mid]" in d.detail


def test_significance_is_corrected_for_many_layers():
    # 2.9 sigma on one of 12 taps is not significant after Holm at alpha=0.01
    assert diagnose_drift([0.0] * 5 + [2.9] + [0.0] * 6).mode is FailureMode.STABLE
    assert (
        diagnose_drift([0.0] * 5 + [2.9] + [0.0] * 6, DoctorConfig(alpha=0.01, correction="bh")).mode
        is FailureMode.STABLE
    )
    assert diagnose_drift([0.0] * 5 + [4.5] + [0.0] * 6).onset_index == 5


def test_nan_layer_counts_as_broken():
    d = diagnose_drift([0.0, float("nan"), 0.5, 0.1])
    assert d.onset_index == 1 and d.mode is not FailureMode.STABLE


def test_clean_profiles_rarely_diagnose_anything():
    rng = np.random.default_rng(0)
    false = sum(diagnose_drift(rng.standard_normal(8)).mode is not FailureMode.STABLE for _ in range(2000))
    assert false / 2000 <= 0.015


def test_empty_profile_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        diagnose_drift([])
