import json
import subprocess
import sys
from pathlib import Path

import tomllib
import torch
from typer.testing import CliRunner

from deepdrift import DeepDriftMonitor, __version__
from deepdrift.cli import app

runner = CliRunner()


def test_version_prints_the_library_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"deepdrift {__version__}\n"


def test_layers_defaults_to_torchvision_like_the_quick_start_and_says_so():
    result = runner.invoke(app, ["layers", "resnet18", "--img-size", "32"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("resnet18 (torchvision): 5 taps (rule: "), first
    as_json = json.loads(runner.invoke(app, ["layers", "resnet18", "--img-size", "32", "--json"]).output)
    assert as_json["source"] == "torchvision" and as_json["taps"][0]["name"] == "maxpool"


def test_layers_source_timm_forces_timm():
    result = runner.invoke(app, ["layers", "resnet18", "--source", "timm", "--img-size", "32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "timm" and data["rule"] == "timm-feature-info"
    assert [t["name"] for t in data["taps"]] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert data["taps"][-1]["features"] == 1536  # 512 channels: mean, std and max
    assert data["taps"][-1]["zone"] == "IR"


def test_layers_falls_back_to_timm_for_names_torchvision_lacks():
    result = runner.invoke(app, ["layers", "resnet10t", "--img-size", "32"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("resnet10t (timm): ")


def test_layers_torchvision_table():
    result = runner.invoke(app, ["layers", "mobilenet_v3_small", "--source", "torchvision", "--img-size", "64"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("mobilenet_v3_small (torchvision): ") and "taps (rule:" in result.output


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_unknown_model_names_close_matches_from_both_registries():
    message = _one_line_error(runner.invoke(app, ["layers", "resnt18"]))
    assert "not a torchvision or timm model name" in message
    assert "torchvision: resnet18" in message and "timm: resnet18" in message
    message = _one_line_error(runner.invoke(app, ["layers", "resnet_does_not_exist"]))
    assert "torchvision: resnet" in message and "timm: resnet" in message


def test_a_forced_source_that_lacks_the_name_points_to_the_other():
    message = _one_line_error(runner.invoke(app, ["layers", "mobilenet_v3_small", "--source", "timm"]))
    assert "use --source torchvision" in message and "mobilenetv3_small_100" in message
    message = _one_line_error(runner.invoke(app, ["layers", "resnet10t", "--source", "torchvision"]))
    assert "use --source timm" in message


def test_a_probe_of_the_wrong_size_is_one_line_with_a_hint():
    message = _one_line_error(runner.invoke(app, ["layers", "vit_b_16", "--img-size", "32"]))
    assert "vit_b_16 (torchvision) failed on a 1x3x32x32 probe" in message and "--img-size 224" in message


def _console(*code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "; ".join(code)], capture_output=True, text=True, timeout=120)


def test_console_entry_without_typer_says_what_to_install():
    done = _console("import sys", "sys.modules['typer'] = None", "from deepdrift.console import main", "main()")
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: the deepdrift command needs typer: pip install 'deepdrift[cli]'\n"
    assert done.stdout == ""


def test_console_entry_runs_the_app_and_is_the_installed_script():
    done = _console(
        "import sys", "sys.argv = ['deepdrift', '--version']", "from deepdrift.console import main", "main()"
    )
    assert done.returncode == 0 and done.stdout == f"deepdrift {__version__}\n", done.stderr
    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"deepdrift": "deepdrift.console:main"}


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


def test_inspect_shows_pooling_zones_depths_and_the_fingerprint(tmp_path, small_cnn, calib_batches):
    from dataclasses import replace

    from deepdrift.fingerprint import fingerprint_model

    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    cal = monitor.calibration
    fingerprint = fingerprint_model(small_cnn, monitor.layer_names, input_shape=(3, 16, 16))
    path = replace(cal, metadata={**cal.metadata, "fingerprint": fingerprint.to_json()}).save(
        tmp_path / "c.safetensors"
    )
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "pooling: layout=auto, token_pool=mean, summary=mean_std_max" in result.output
    assert "fingerprint: torch.nn.modules.container.Sequential, input per sample 3x16x16, weights digest: no" in (
        result.output
    )
    first, last = monitor.taps[0], monitor.taps[-1]
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.split()}
    assert rows[first.name][1:3] == [first.zone, "0.000"] and rows[last.name][1:3] == [last.zone, "1.000"]
    as_json = runner.invoke(app, ["inspect", str(path), "--json"])
    assert json.loads(as_json.output)["metadata"]["fingerprint"]["input_shape"] == [3, 16, 16]


def test_inspect_says_when_a_file_has_no_fingerprint(tmp_path, small_cnn, calib_batches):
    from dataclasses import replace

    cal = DeepDriftMonitor(small_cnn).calibrate(calib_batches).calibration  # older files carry no fingerprint
    metadata = {k: v for k, v in cal.metadata.items() if k != "fingerprint"}
    path = replace(cal, metadata=metadata).save(tmp_path / "c.safetensors")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0 and "fingerprint: none" in result.output


def _corrupt_files(tmp_path):
    import math

    from calibration_files import raw_parts, tiny_calibration, write_raw

    header, tensors = raw_parts(tiny_calibration().save(tmp_path / "good.safetensors"))
    nan_mean = dict(tensors, **{"conv::mean": torch.full((3,), math.nan, dtype=torch.float64)})
    yield write_raw(tmp_path / "nan.safetensors", header, nan_mean), "mean holds 3 NaN/Inf"
    yield write_raw(tmp_path / "json.safetensors", header, tensors, raw_text="{oops"), "does not parse"
    yield write_raw(tmp_path / "deep.safetensors", header, tensors, raw_text="[" * 50_000), "nested too deeply"
    bool_count = json.loads(json.dumps(header))
    bool_count["layers"][0]["count"] = True
    yield write_raw(tmp_path / "count.safetensors", bool_count, tensors), "count ('conv') must be an integer >= 2"
    no_layers = {k: v for k, v in header.items() if k != "layers"}
    yield write_raw(tmp_path / "layers.safetensors", no_layers, tensors), "['layers'] are missing"


def test_inspect_answers_corrupt_files_with_one_line_and_exit_code_2(tmp_path):
    for path, message in _corrupt_files(tmp_path):
        for extra in ([], ["--json"]):
            result = runner.invoke(app, ["inspect", str(path), *extra])
            assert result.exit_code == 2, (path, result.output)
            assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
            assert result.stdout == ""
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
            assert message in result.stderr, result.stderr
