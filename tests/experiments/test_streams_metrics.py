"""Delay, false alarms, warning lead and threshold matching on constructed alarm/state sequences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.streams.metrics import (
    alarm_events,
    censored_delay,
    detection_delay,
    false_alarms_per_1000,
    match_threshold,
    warning_lead,
)
from experiments.streams.summary import curves, matched, sensitivity_order


def _states(text: str) -> tuple[np.ndarray, np.ndarray]:
    """'NNWWAAN' -> (alert, warning) flags."""
    return np.array([c == "A" for c in text]), np.array([c == "W" for c in text])


def test_delay_counts_the_change_batch_as_one() -> None:
    alert, _ = _states("NNNNAAA")
    assert detection_delay(alert, change=3) == 2.0
    assert detection_delay(alert, change=4) == 1.0
    assert math.isnan(detection_delay(_states("NNNN")[0], change=1))


def test_delay_ignores_alarms_before_the_change_but_not_a_persisting_alarm() -> None:
    alert, _ = _states("NANNNAA")
    assert detection_delay(alert, change=2) == 4.0
    alert, _ = _states("NAAAAAA")
    assert detection_delay(alert, change=3) == 1.0  # still in ALERT when the change comes


def test_censored_delay_counts_a_miss_as_the_rest_of_the_stream() -> None:
    alert, _ = _states("NNNNAAA")
    assert censored_delay(alert, change=3) == 2.0
    assert censored_delay(_states("NNNNNN")[0], change=2) == 4.0


def test_alarm_events_and_false_alarm_rate() -> None:
    alert, _ = _states("AANNANNNAAAN")
    assert alarm_events(alert).tolist() == [0, 4, 8]
    assert false_alarms_per_1000(len(alarm_events(alert)), 12) == pytest.approx(250.0)
    with pytest.raises(ValueError):
        false_alarms_per_1000(0, 0)


def test_warning_lead() -> None:
    alert, warning = _states("NNNWWWAAA")
    assert warning_lead(warning, alert, change=2) == 3.0
    alert, warning = _states("NNNAAA")
    assert math.isnan(warning_lead(warning, alert, change=2))


def test_match_threshold_takes_the_most_sensitive_setting_within_budget() -> None:
    assert match_threshold([6.0, 5.0, 4.0, 3.0], [0.0, 0.0, 0.8, 3.0], budget=1.0) == 4.0
    assert match_threshold([6.0, 5.0], [2.0, 5.0], budget=1.0) is None
    # a non-monotone tail past a violation is not picked
    assert match_threshold([6.0, 5.0, 4.0, 3.0], [0.0, 2.0, 0.0, 0.0], budget=1.0) == 6.0
    with pytest.raises(ValueError):
        match_threshold([1.0], [], budget=1.0)


def test_sensitivity_order_per_method() -> None:
    assert sensitivity_order("ADWIN (river, MSP)", [0.2, 1e-5, 0.01]) == [1e-5, 0.01, 0.2]
    assert sensitivity_order("Page-Hinkley (river, MSP)", [0.1, 2.0, 0.5]) == [2.0, 0.5, 0.1]


def _runs() -> pd.DataFrame:
    rows = []
    for setting, clean_events, delay in [(5.0, 0, 6.0), (3.0, 1, 2.0), (2.0, 9, 1.0)]:
        for role in ("tune", "test"):
            rows.append(
                {
                    "model": "m",
                    "method": "X",
                    "setting": setting,
                    "role": role,
                    "kind": "clean",
                    "severity": 0,
                    "events": clean_events,
                    "batches": 1000,
                    "delay": np.nan,
                }
            )
        rows.append(
            {
                "model": "m",
                "method": "X",
                "setting": setting,
                "role": "change",
                "kind": "sudden",
                "severity": 3,
                "events": 0,
                "batches": 80,
                "delay": delay,
            }
        )
    return pd.DataFrame(rows)


def test_matched_budget_selects_per_method() -> None:
    runs = _runs()
    curve = curves(runs, post=60)
    assert set(curve["far_tune"]) == {0.0, 1.0, 9.0}
    table = matched(runs, curve, budget=1.0)
    assert table["setting"].tolist() == [3.0]
    assert table["delay_median"].tolist() == [2.0] and table["budget"].tolist() == ["matched"]
    assert table["missed"].tolist() == [0] and table["delay_censored"].tolist() == [2.0]
    assert matched(runs, curve, budget=0.0)["setting"].tolist() == [5.0]
    assert matched(runs, curve, budget=100.0)["budget"].tolist() == ["not reached"]
    missed = runs.assign(delay=np.where(runs["role"] == "change", np.nan, runs["delay"]), change=20)
    row = matched(missed, curves(missed, post=60), budget=1.0).iloc[0]
    assert row["missed"] == 1 and row["delay_censored"] == 60.0  # 80 batches, change at 20


def test_alert_thresholds_below_the_warning_level_are_valid_configs():
    from experiments.streams.evaluate import observer_config

    for theta in (1.75, 2.0, 6.0):
        config = observer_config(theta)
        assert config.theta_high == theta and config.theta_warn <= theta and config.theta_low < theta
    assert observer_config(6.0).theta_warn == 2.0  # the default warning level where it fits
