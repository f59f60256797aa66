import json

from typer.testing import CliRunner

from deepdrift import DeepDriftMonitor
from deepdrift.cli import app

runner = CliRunner()


def test_layers_lists_timm_taps_as_json():
    result = runner.invoke(app, ["layers", "resnet18", "--img-size", "32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rule"] == "timm-feature-info"
    assert [t["name"] for t in data["taps"]] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert data["taps"][-1]["features"] == 1536  # 512 channels: mean, std and max
    assert data["taps"][-1]["zone"] == "IR"


def test_layers_torchvision_table():
    result = runner.invoke(app, ["layers", "mobilenet_v3_small", "--source", "torchvision", "--img-size", "64"])
    assert result.exit_code == 0, result.output
    assert "taps (rule:" in result.output


def test_unknown_model_is_a_clear_error():
    result = runner.invoke(app, ["layers", "resnet_does_not_exist"])
    assert result.exit_code != 0
    assert "neither a timm nor a torchvision model" in result.output


def test_inspect_summarises_a_calibration(tmp_path, small_cnn, calib_batches):
    path = DeepDriftMonitor(small_cnn).calibrate(calib_batches).save_calibration(tmp_path / "c.safetensors")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "Sequential" in result.output and "samples seen: 640" in result.output


def test_inspect_rejects_missing_and_foreign_files(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2 and "no calibration file" in result.output
    junk = tmp_path / "junk.safetensors"
    junk.write_text("hello")
    result = runner.invoke(app, ["inspect", str(junk)])
    assert result.exit_code == 2 and "not a safetensors file" in result.output
