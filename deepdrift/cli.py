"""The ``deepdrift`` command: inspect which layers a model would be tapped at, and what a calibration holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer

from .calibration import Calibration, read_header
from .errors import DeepDriftError
from .taps import LayerTaps

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="DeepDrift: layer-wise drift diagnostics for PyTorch networks.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def build_named_model(name: str, source: str, img_size: int, in_chans: int):
    """Instantiate a timm or torchvision model with random weights (nothing is downloaded)."""
    if source in ("auto", "timm"):
        try:
            import timm
        except ImportError:  # pragma: no cover - timm is an optional extra
            timm = None
        if timm is not None and timm.is_model(name):
            kwargs = {"pretrained": False, "in_chans": in_chans}
            try:
                return timm.create_model(name, img_size=img_size, **kwargs)
            except TypeError:  # CNNs take any size and reject img_size
                return timm.create_model(name, **kwargs)
        if source == "timm":
            raise _fail(f"{name!r} is not a timm model; see `timm.list_models('*{name}*')`")
    try:
        import torchvision.models as tvm
    except ImportError as exc:  # pragma: no cover
        raise _fail("torchvision is not installed; pip install torchvision") from exc
    if name not in tvm.list_models():
        raise _fail(f"{name!r} is neither a timm nor a torchvision model name (try `timm.list_models('*...*')`)")
    return tvm.get_model(name, weights=None)


@app.command()
def layers(
    model: Annotated[str, typer.Argument(help="timm or torchvision model name, e.g. resnet18, vit_tiny_patch16_224")],
    source: Annotated[str, typer.Option(help="where to find the model: auto, timm or torchvision")] = "auto",
    img_size: Annotated[int, typer.Option(help="input height/width for the probe forward pass")] = 224,
    in_chans: Annotated[int, typer.Option(help="input channels")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List the taps auto-selection picks for MODEL (name, depth, zone, feature size)."""
    net = build_named_model(model, source, img_size, in_chans).eval()
    taps = LayerTaps(net)
    rule = taps.rule
    with torch.no_grad():
        _, features = taps.run(lambda: net(torch.zeros(1, in_chans, img_size, img_size)))
    rows = [{"name": t.name, "label": t.label, "depth": round(t.depth, 3), "zone": t.zone,
             "features": int(features[t.name].shape[1])} for t in taps.taps]
    if as_json:
        typer.echo(json.dumps({"model": model, "rule": rule, "taps": rows}, indent=2))
        return
    typer.echo(f"{model}: {len(rows)} taps (rule: {rule})")
    typer.echo(f"{'name':<32} {'label':<20} {'depth':>6} {'zone':<5} {'features':>8}")
    for r in rows:
        typer.echo(f"{r['name']:<32} {r['label']:<20} {r['depth']:>6.3f} {r['zone']:<5} {r['features']:>8}")


@app.command()
def inspect(
    calibration: Annotated[Path, typer.Argument(help="a .safetensors file written by save_calibration")],
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON header")] = False,
) -> None:
    """Check and summarise a saved calibration: model, pooling, taps (zone, depth, sizes, sample counts).

    The whole file is checked first (header fields and tensors); a damaged or foreign file gets one line on stderr
    and exit code 2.
    """
    try:
        header = read_header(calibration)
        loaded = Calibration.load(calibration)
    except (DeepDriftError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(header, indent=2))
        return
    meta = loaded.metadata
    typer.echo(
        f"{calibration}: DeepDrift calibration v{header['format_version']} "
        f"(library {header.get('library_version', '?')})"
    )
    typer.echo(
        f"model: {meta.get('model_class', '?')}  arch_name: {meta.get('arch_name')}  samples seen: {loaded.n_seen}"
    )
    pooling = meta.get("pooling")
    if isinstance(pooling, dict):
        typer.echo("pooling: " + ", ".join(f"{k}={v}" for k, v in pooling.items()))
    typer.echo(_describe_fingerprint(loaded))
    places = _tap_places(meta.get("taps"))
    typer.echo(f"{'name':<32} {'zone':<5} {'depth':>6} {'features':>8} {'moments n':>10} {'held out':>9} {'axes':>5}")
    for name, ref in loaded.layers.items():
        zone, depth = places.get(name, ("?", "?"))
        axes = 0 if ref.principal is None else ref.principal.shape[1]
        typer.echo(
            f"{name:<32} {zone:<5} {depth:>6} {ref.n_features:>8} {ref.count:>10} {ref.holdout.shape[0]:>9} {axes:>5}"
        )


def _describe_fingerprint(calibration: Calibration) -> str:
    fingerprint = calibration.fingerprint
    if fingerprint is None:
        return "fingerprint: none (older file; the model is not checked when this calibration is loaded)"
    shape = "?" if fingerprint.input_shape is None else "x".join(map(str, fingerprint.input_shape))
    digest = "yes" if fingerprint.weights_digest else "no"
    return f"fingerprint: {fingerprint.model_class or '?'}, input per sample {shape}, weights digest: {digest}"


def _tap_places(taps: object) -> dict[str, tuple[str, str]]:
    """``{tap: (zone, depth)}`` from ``metadata["taps"]``, skipping entries of an unexpected shape."""
    places: dict[str, tuple[str, str]] = {}
    for tap in taps if isinstance(taps, list) else []:
        if isinstance(tap, dict) and isinstance(tap.get("name"), str):
            depth = tap.get("depth")
            depth_text = f"{depth:.3f}" if isinstance(depth, (int, float)) and not isinstance(depth, bool) else "?"
            places[tap["name"]] = (str(tap.get("zone", "?"))[:5], depth_text)
    return places


def main() -> None:  # pragma: no cover
    app()
