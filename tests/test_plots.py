import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from deepdrift import DeepDriftMonitor, ObserverConfig, plot_drift_profile, plot_drift_timeline


@pytest.fixture
def stepped_monitor(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    for i in range(12):
        monitor.step(calib_batches[i % 5] * (1 + 0.4 * max(0, i - 5)))
    return monitor


@pytest.mark.parametrize("suffix", ["pdf", "png"])
def test_profile_plot_writes_files_with_configured_thresholds(tmp_path, stepped_monitor, suffix):
    status, _ = stepped_monitor.step(torch.zeros(4, 3, 16, 16))
    config = ObserverConfig(theta_high=4.5, theta_low=2.0)
    ax = plot_drift_profile(status, config=config, save=tmp_path / f"p.{suffix}")
    assert (tmp_path / f"p.{suffix}").stat().st_size > 1000
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert 4.5 in levels and 2.0 in levels and 3.0 not in levels
    plt.close("all")


def test_profile_plot_accepts_a_plain_list_and_an_axes():
    fig, ax = plt.subplots()
    assert plot_drift_profile([0.5, 2.5, 7.0, float("nan")], ax=ax) is ax
    assert len(ax.containers[0]) == 4  # one bar per tap, the NaN one drawn at zero and labelled
    plt.close(fig)


def test_timeline_plot_marks_alert_events(tmp_path, stepped_monitor):
    ax = plot_drift_timeline(stepped_monitor.history, save=tmp_path / "t.pdf")
    assert (tmp_path / "t.pdf").stat().st_size > 1000
    assert len(stepped_monitor.history.alerts) > 0
    markers = [line for line in ax.get_lines() if line.get_marker() in ("x", "v")]
    assert len(markers) >= len([a for a in stepped_monitor.history.alerts if a.kind.value in ("ALERT", "WARNING")])
    pdf_text = (tmp_path / "t.pdf").read_bytes()
    assert b"/FontFile2" in pdf_text  # TrueType fonts embedded (pdf.fonttype 42)
    plt.close("all")
