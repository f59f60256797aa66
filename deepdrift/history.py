"""What the monitor remembers of past steps, for timelines and post-hoc analysis.

Memory is bounded by default: a monitor left running in a server keeps the most recent ``max_steps`` steps and
``max_alerts`` alert events, and counts what it dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .observer import Alert, AlertKind
from .validation import require_int

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_STEPS = 10_000
"""Steps kept by default: a 16-tap timeline of 10k steps is ~1.3 MB."""
DEFAULT_MAX_ALERTS = 10_000


@dataclass
class DriftHistory:
    """Per-step drift and states of every tap, plus the alert events.

    Attributes:
        layers: tap names in depth order (rows of ``drift_matrix``).
        labels: their display labels.
        max_steps: keep only the most recent steps (None keeps everything: memory then grows without bound).
        max_alerts: keep only the most recent alert events (None keeps all).
        n_dropped_alerts: alert events that fell off the end of the log.
    """

    layers: list[str]
    labels: list[str]
    max_steps: int | None = DEFAULT_MAX_STEPS
    max_alerts: int | None = DEFAULT_MAX_ALERTS
    steps: deque[int] = field(init=False)
    drift: deque[np.ndarray] = field(init=False)
    states: deque[list[str]] = field(init=False)
    alerts: deque[Alert] = field(init=False)
    n_dropped_alerts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_alerts"):
            if getattr(self, name) is not None:
                require_int(f"DriftHistory.{name}", getattr(self, name), minimum=1)
        self.steps = deque(maxlen=self.max_steps)
        self.drift = deque(maxlen=self.max_steps)
        self.states = deque(maxlen=self.max_steps)
        self.alerts = deque(maxlen=self.max_alerts)

    def record(self, step: int, drift: np.ndarray, states: list[str], alerts: list[Alert]) -> None:
        self.steps.append(step)
        self.drift.append(np.asarray(drift, dtype=np.float64))
        self.states.append(list(states))
        if self.max_alerts is not None:
            self.n_dropped_alerts += max(0, len(self.alerts) + len(alerts) - self.max_alerts)
        self.alerts.extend(alerts)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def drift_matrix(self) -> np.ndarray:
        """``(layers, steps)`` array of drift in sigma units."""
        if not self.drift:
            return np.zeros((len(self.layers), 0))
        return np.stack(list(self.drift), axis=1)

    @property
    def state_matrix(self) -> np.ndarray:
        """``(layers, steps)`` array of state names."""
        if not self.states:
            return np.zeros((len(self.layers), 0), dtype=object)
        return np.array(list(self.states), dtype=object).T

    def to_frame(self) -> pd.DataFrame:
        """Long table, one row per (step, layer): ``step``, ``layer``, ``label``, ``drift``, ``state``."""
        pd = _pandas()
        drift, states = self.drift_matrix, self.state_matrix
        steps = np.asarray(self.steps, dtype=np.int64)
        n_layers = len(self.layers)
        return pd.DataFrame(
            {
                "step": np.tile(steps, n_layers),
                "layer": np.repeat(self.layers, steps.size),
                "label": np.repeat(self.labels, steps.size),
                "drift": drift.reshape(-1),
                "state": states.reshape(-1).astype(str) if steps.size else np.array([], dtype=str),
            }
        )

    def alerts_frame(self) -> pd.DataFrame:
        """One row per kept alert event: ``step``, ``layer``, ``label``, ``zone``, ``kind``, ``value``,
        ``threshold``, ``message``."""
        pd = _pandas()
        rows: list[dict[str, Any]] = [
            {
                "step": a.step,
                "layer": a.layer,
                "label": a.label,
                "zone": a.zone,
                "kind": a.kind.value,
                "value": a.value,
                "threshold": a.threshold,
                "message": str(a),
            }
            for a in self.alerts
        ]
        columns = ["step", "layer", "label", "zone", "kind", "value", "threshold", "message"]
        return pd.DataFrame(rows, columns=columns)

    def save(self, path: str | Path) -> Path:
        """Write the drift table to ``.csv`` or ``.parquet`` (by suffix) and the alerts beside it
        (``<name>.alerts.csv`` / ``.parquet``)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"history files are .csv or .parquet, got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        alerts_path = path.with_name(f"{path.stem}.alerts{suffix}")
        for frame, target in ((self.to_frame(), path), (self.alerts_frame(), alerts_path)):
            if suffix == ".csv":
                frame.to_csv(target, index=False)
            else:
                try:
                    frame.to_parquet(target, index=False)
                except ImportError as exc:
                    raise ImportError(f"writing parquet needs pyarrow: pip install pyarrow ({exc})") from exc
        return path

    @classmethod
    def load(cls, path: str | Path) -> DriftHistory:
        """Read back a run written by :meth:`save`: ``run.csv`` (or ``.parquet``) and ``run.alerts.csv`` beside it.

        Example:
            >>> monitor.history.save("run.csv")  # doctest: +SKIP
            >>> DriftHistory.load("run.csv").drift_matrix.shape  # doctest: +SKIP
            (5, 240)
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"history files are .csv or .parquet, got {path.name!r}")
        if path.stem.endswith(".alerts"):
            main = path.with_name(f"{path.stem.removesuffix('.alerts')}{suffix}")
            raise ValueError(f"{path} is the alerts file of a run; pass the drift table {main} instead")
        alerts_path = path.with_name(f"{path.stem}.alerts{suffix}")
        for target in (path, alerts_path):
            if not target.is_file():
                raise FileNotFoundError(
                    f"no history file {target} (DriftHistory.save writes {path.name} and "
                    f"{alerts_path.name} side by side; keep them together)"
                )
        return cls.from_frames(_read_table(path), _read_table(alerts_path))

    @classmethod
    def from_frames(cls, drift_frame: pd.DataFrame, alerts_frame: pd.DataFrame | None = None) -> DriftHistory:
        """Rebuild a history from :meth:`to_frame` and :meth:`alerts_frame` tables (e.g. read from files).

        Layers keep the order of their first row (depth order, as written); nothing is dropped (unbounded sizes).
        """
        _require_columns("drift table", drift_frame, ("step", "layer", "label", "drift", "state"))
        frame = drift_frame.astype({"layer": str, "label": str, "state": str, "step": np.int64})
        first_rows = frame.drop_duplicates("layer")
        layers = first_rows["layer"].tolist()
        history = cls(layers, first_rows["label"].tolist(), max_steps=None, max_alerts=None)
        if frame.duplicated(["step", "layer"]).any():
            raise ValueError("drift table has more than one row for a (step, layer); was it written by save()?")
        steps = list(dict.fromkeys(frame["step"]))
        drift = frame.pivot(index="layer", columns="step", values="drift").reindex(index=layers, columns=steps)
        states = frame.pivot(index="layer", columns="step", values="state").reindex(index=layers, columns=steps)
        if states.isna().to_numpy().any():
            raise ValueError("drift table misses rows: every step needs one row per layer (as save() writes)")
        for step in steps:
            history.record(int(step), drift[step].to_numpy(dtype=np.float64), states[step].tolist(), [])
        if alerts_frame is not None:
            history.alerts.extend(_alerts_from_frame(alerts_frame))
        return history


def _require_columns(what: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected {list(columns)} as DriftHistory.save writes")


def _alerts_from_frame(frame: pd.DataFrame) -> list[Alert]:
    _require_columns("alerts table", frame, ("step", "layer", "label", "zone", "kind", "value", "threshold"))
    kinds = {k.value: k for k in AlertKind}
    alerts = []
    for row in frame.itertuples(index=False):
        if str(row.kind) not in kinds:
            raise ValueError(f"alerts table: unknown kind {row.kind!r}; expected one of {sorted(kinds)}")
        alerts.append(
            Alert(
                layer=str(row.layer),
                label=str(row.label),
                zone=str(row.zone),
                kind=kinds[str(row.kind)],
                value=float(row.value),
                threshold=float(row.threshold),
                step=int(row.step),
            )
        )
    return alerts


def _read_table(path: Path) -> pd.DataFrame:
    """CSV or parquet; names stay text (a layer called ``0`` or ``NA`` is not a number or a missing value)."""
    pd = _pandas()
    if path.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ImportError(f"reading parquet needs pyarrow: pip install pyarrow ({exc})") from exc
    text = {c: str for c in ("layer", "label", "state", "zone", "kind", "message")}
    numbers = {c: ["", "nan", "NaN"] for c in ("drift", "value", "threshold")}
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=numbers)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas ships with the experiments extra
        raise ImportError("exporting the history needs pandas: pip install pandas") from exc
    return pandas
