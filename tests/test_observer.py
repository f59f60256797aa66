import math

import numpy as np
import pytest

from deepdrift.observer import Alert, AlertKind, LayerObserver, MonitorState, ObserverConfig, trend_slope


def _run(values, config=ObserverConfig()):
    obs = LayerObserver("layer3", "Deep", "Deep", config)
    states, events = [], []
    for step, v in enumerate(values, start=1):
        events.extend(obs.update(v, step))
        states.append(obs.state)
    return obs, states, events


def test_slope_is_least_squares():
    assert trend_slope(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1.0)
    assert trend_slope(np.array([5.0, 5.0, 5.0])) == pytest.approx(0.0)


def test_single_exceedance_does_not_alert_but_two_of_three_do():
    _, states, events = _run([0.0, 3.5, 0.0, 0.0])
    assert events == [] and states[-1] is MonitorState.NORMAL
    _, states, events = _run([0.0, 3.5, 0.0, 3.1])
    assert [e.kind for e in events] == [AlertKind.ALERT] and events[0].step == 4
    assert states[-1] is MonitorState.ALERT


def test_persistence_one_reacts_immediately_like_the_original():
    _, states, events = _run([0.0, 3.2], ObserverConfig(persistence=1, persistence_window=1))
    assert states[-1] is MonitorState.ALERT and str(events[0]) == "🔴 ALERT [Deep]: Threshold Breach (3.2 >= 3.0)"


def test_alternating_signal_stays_in_alert_without_flicker():
    _, states, events = _run([3.5, 3.5] + [3.2, 2.0] * 20)
    assert all(s is MonitorState.ALERT for s in states[1:])
    assert [e.kind for e in events] == [AlertKind.ALERT]


def test_alert_clears_only_at_theta_low_and_reports_recovery():
    _, states, events = _run([4, 4, 2.5, 1.6, 1.5])
    assert [s.value for s in states] == ["NORMAL", "ALERT", "ALERT", "ALERT", "NORMAL"]
    assert events[-1].kind is AlertKind.RECOVERY
    assert str(events[-1]).startswith("🟢 RECOVERY [Deep]")


def test_ramp_warns_before_it_alerts():
    ramp = list(np.zeros(10)) + list(np.linspace(0, 5, 40))
    _, _, events = _run(ramp)
    kinds = [e.kind for e in events]
    assert kinds[:2] == [AlertKind.WARNING, AlertKind.ALERT]
    assert events[0].step < events[1].step
    assert str(events[0]).startswith("⚠️ WARNING [Deep]: Rapid Drift Detected (Slope 0.1")


def test_warning_needs_elevated_drift_not_just_a_slope():
    _, _, events = _run(list(np.linspace(-3, 1.5, 30)))  # steep slope, never elevated
    assert events == []


def test_warning_returns_to_normal_when_the_trend_stops():
    values = list(np.linspace(0, 2.8, 25)) + [1.0] * 25
    _, states, events = _run(values)
    assert AlertKind.WARNING in [e.kind for e in events]
    assert states[-1] is MonitorState.NORMAL


def test_no_rewarning_from_stale_history_after_recovery():
    rise = list(np.linspace(0, 6, 20))
    after = [0.5, 2.1, 2.2, 2.1, 2.2, 2.0]  # mildly elevated just after recovery, flat trend
    obs, _, events = _run(rise + after)
    kinds = [e.kind for e in events]
    assert kinds.count(AlertKind.RECOVERY) == 1
    assert kinds[-1] is AlertKind.RECOVERY  # stale rising slope must not produce a WARNING now
    assert len(obs.history) == len(after) - 1


def test_nonfinite_drift_alerts_once():
    _, states, events = _run([0.0, math.nan, math.nan, 0.1])
    assert [e.kind for e in events] == [AlertKind.NONFINITE, AlertKind.RECOVERY]
    assert "Non-finite" in str(events[0])
    assert states[1] is MonitorState.ALERT


def test_clean_noise_stays_quiet():
    rng = np.random.default_rng(0)
    total = 0
    for _layer in range(5):
        _, _, events = _run(list(rng.standard_normal(1000)))
        total += sum(e.kind in (AlertKind.ALERT, AlertKind.WARNING) for e in events)
    assert total <= 3


def test_state_compares_to_plain_strings_and_config_validates():
    assert MonitorState.ALERT == "ALERT" and str(MonitorState.WARNING) == "WARNING"
    with pytest.raises(ValueError, match="theta_low"):
        ObserverConfig(theta_high=1.0, theta_low=2.0)
    with pytest.raises(ValueError, match="persistence"):
        ObserverConfig(persistence=4, persistence_window=3)


def test_alert_is_a_value_object():
    a = Alert("layer4", "IR", "IR", AlertKind.ALERT, 3.2, 3.0, 7)
    assert str(a) == "🔴 ALERT [IR]: Threshold Breach (3.2 >= 3.0)"
    w = Alert("layer2", "Mid", "Mid", AlertKind.WARNING, 0.045, 0.05, 3)
    assert str(w) == "⚠️ WARNING [Mid]: Rapid Drift Detected (Slope 0.045)"


def test_leaving_warning_resets_its_evidence():
    """After WARNING -> NORMAL, one elevated step must not re-enter WARNING on stale votes and slopes."""
    values = [*list(np.linspace(0, 2.6, 12)), 1.0, 2.9]
    _obs, states, events = _run(values)
    kinds = [e.kind for e in events]
    assert kinds.count(AlertKind.WARNING) == 1
    assert states[-1] is MonitorState.NORMAL
