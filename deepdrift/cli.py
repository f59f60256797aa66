"""The ``deepdrift`` command: which layers a model would be tapped at, what a calibration holds, and a run's report.

Installed as a console script through :func:`deepdrift.console.main`, which reports a missing ``typer`` in one line.
"""

from __future__ import annotations

import difflib
import enum
import json
from pathlib import Path
from typing import Annotated

import torch
import typer

from ._version import __version__
from .calibration import Calibration, read_header
from .errors import DeepDriftError
from .taps import LayerTaps

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="DeepDrift: layer-wise drift diagnostics for PyTorch networks."
)


class Source(str, enum.Enum):
    """Where ``deepdrift layers`` looks a model name up."""

    AUTO = "auto"
    TORCHVISION = "torchvision"
    TIMM = "timm"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"deepdrift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the library version and exit"),
    ] = False,
) -> None:
    """DeepDrift: layer-wise drift diagnostics for PyTorch networks."""


def _registry_names() -> dict[str, list[str]]:
    """Model names each installed registry knows: ``{"torchvision": [...], "timm": [...]}``."""
    names: dict[str, list[str]] = {}
    try:
        import torchvision.models as tvm

        names["torchvision"] = list(tvm.list_models())
    except ImportError:  # pragma: no cover - torchvision is an optional extra
        pass
    try:
        import timm

        names["timm"] = list(timm.list_models())
    except ImportError:  # pragma: no cover - timm is an optional extra
        pass
    return names


def _knows(registry: str, names: list[str], model: str) -> bool:
    if registry == "timm":  # timm also accepts a pretrained tag: resnet18.a1_in1k
        import timm

        return bool(timm.is_model(model))
    return model in names


def resolve_source(model: str, source: Source = Source.AUTO) -> str:
    """The registry ``model`` is built from: ``auto`` prefers torchvision (the README's quick start), then timm.

    Raises ``typer.Exit(2)`` after one line on stderr naming close matches from every installed registry.
    """
    registries = _registry_names()
    order = ["torchvision", "timm"] if source is Source.AUTO else [source.value]
    for registry in order:
        if registry in registries and _knows(registry, registries[registry], model):
            return registry
    if source is not Source.AUTO and source.value not in registries:
        raise _fail(f"{source.value} is not installed: pip install {source.value}")
    elsewhere = [r for r, names in registries.items() if r not in order and _knows(r, names, model)]
    if elsewhere:
        hints = _close_matches(model, {source.value: registries[source.value]})
        raise _fail(
            f"{model!r} is not a {source.value} model but a {elsewhere[0]} one: use --source {elsewhere[0]} "
            f"(close names: {hints})"
        )
    hints = _close_matches(model, {r: registries[r] for r in order if r in registries})
    raise _fail(
        f"{model!r} is not a {' or '.join(order)} model name; close matches: {hints} "
        "(list names with torchvision.models.list_models() or timm.list_models('*part*'))"
    )


def _close_matches(model: str, registries: dict[str, list[str]]) -> str:
    """``"torchvision: a, b; timm: c"``: spelling neighbours, else names sharing the first word (``resnet_x``)."""
    stem = model.split("_")[0].lower()
    found = {}
    for registry, names in registries.items():
        close = difflib.get_close_matches(model, names, n=4, cutoff=0.6)
        if not close and len(stem) >= 3:
            close = sorted((n for n in names if n.lower().startswith(stem)), key=len)[:4]
        if close:
            found[registry] = close
    return "; ".join(f"{r}: {', '.join(names)}" for r, names in found.items()) or "none"


def build_named_model(name: str, source: str, img_size: int, in_chans: int) -> torch.nn.Module:
    """Instantiate a resolved timm or torchvision model with random weights (nothing is downloaded)."""
    if source == "timm":
        import timm

        kwargs = {"pretrained": False, "in_chans": in_chans}
        try:
            return timm.create_model(name, img_size=img_size, **kwargs)
        except TypeError:  # CNNs take any size and reject img_size
            return timm.create_model(name, **kwargs)
    if in_chans != 3:
        raise _fail(f"torchvision models take 3 input channels; --in-chans {in_chans} works with --source timm")
    import torchvision.models as tvm

    return tvm.get_model(name, weights=None)


@app.command()
def layers(
    model: Annotated[str, typer.Argument(help="torchvision or timm model name, e.g. resnet18, vit_tiny_patch16_224")],
    source: Annotated[
        Source,
        typer.Option(help="registry of MODEL: auto = torchvision when it has the name (as in the README), else timm"),
    ] = Source.AUTO,
    img_size: Annotated[int, typer.Option(help="input height/width for the probe forward pass")] = 224,
    in_chans: Annotated[int, typer.Option(help="input channels (timm models only)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List the taps auto-selection picks for MODEL (name, depth, zone, feature size) and the registry used."""
    used = resolve_source(model, source)
    net = build_named_model(model, used, img_size, in_chans).eval()
    taps = LayerTaps(net)
    rule = taps.rule
    try:
        with torch.no_grad():
            _, features = taps.run(lambda: net(torch.zeros(1, in_chans, img_size, img_size)), batch_size=1)
    except (RuntimeError, ValueError, AssertionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(
            f"{model} ({used}) failed on a 1x{in_chans}x{img_size}x{img_size} probe: {first_line} "
            "(try the size the model was built for, e.g. --img-size 224)"
        ) from None
    rows = [
        {
            "name": t.name,
            "label": t.label,
            "depth": round(t.depth, 3),
            "zone": t.zone,
            "features": int(features[t.name].shape[1]),
        }
        for t in taps.taps
    ]
    if as_json:
        typer.echo(json.dumps({"model": model, "source": used, "rule": rule, "taps": rows}, indent=2))
        return
    typer.echo(f"{model} ({used}): {len(rows)} taps (rule: {rule})")
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


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="a run saved by monitor.history.save('run.csv') (.csv or .parquet)")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file (default: RUN.html)")] = None,
    title: Annotated[str | None, typer.Option(help="page title (default: the run's file name)")] = None,
    theta_high: Annotated[float | None, typer.Option(help="ALERT threshold drawn (default: from the alerts)")] = None,
    theta_low: Annotated[float | None, typer.Option(help="recovery threshold drawn (default: from the alerts)")] = None,
) -> None:
    """Render a saved run as one self-contained HTML page: timeline, drift profiles, alerts and a summary.

    The run's alerts file (RUN.alerts.csv) must lie beside it. Figures are embedded, so the page can be mailed or
    attached as it is.
    """
    from .history import DriftHistory

    try:
        from .report import infer_config, render_report

        history = DriftHistory.load(run)
        config = infer_config(history, theta_high=theta_high, theta_low=theta_low)
        target = render_report(
            history, output or run.with_suffix(".html"), config=config, title=title or run.name, source=run
        )
    except ImportError as exc:
        raise _fail(f"{exc}; install the figure and table extras: pip install 'deepdrift[plots]' pandas") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    alerts = len(history.alerts)
    typer.echo(
        f"wrote {target} ({target.stat().st_size:,} bytes): {len(history)} steps, "
        f"{len(history.layers)} layers, {alerts} alert event{'s' if alerts != 1 else ''}"
    )
