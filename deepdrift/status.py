"""The per-layer status a monitor step returns: typed and frozen, yet read like the original's dict.

``status[layer]['drift']`` and ``[d['drift'] for d in status.values()]`` keep working (``LayerStatus`` is a read-only
``Mapping`` over its fields); attribute access (``status[layer].drift``) is typed, and ``to_dict()`` gives the plain
form for JSON or pandas.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .observer import MonitorState


@dataclass(frozen=True, eq=False)
class LayerStatus(Mapping[str, Any]):
    """One tap's reading after one step.

    Attributes:
        name: module path of the tap.
        label: display label (zone, or zone and short name).
        zone: ``UV``/``Mid``/``Deep``/``IR`` (input to output side).
        depth: relative depth 0..1 in execution order.
        drift: sigma units, ~N(0, 1) on clean data; NaN when the layer produced non-finite activations.
        p_value: one-sided p-value of this layer's drift.
        p_adjusted: ``p_value`` adjusted across the taps (the monitor's ``correction``).
        breach: this batch alone reached ``theta_high`` (the FSM state needs ``persistence`` such batches).
        state: the layer's FSM state after this step (``MonitorState``, equal to its name as a string).
        slope: least-squares trend of drift over the observer window (sigma per step).
        statistic: raw mean-shift statistic (mean ~1 on clean data).
        peak_statistic: raw peak-shift statistic.
        principal_statistic: raw principal-axes statistic.
        nonfinite: the layer produced NaN/Inf activations in this batch.
    """

    name: str
    label: str
    zone: str
    depth: float
    drift: float
    p_value: float
    p_adjusted: float
    breach: bool
    state: MonitorState
    slope: float
    statistic: float
    peak_statistic: float
    principal_statistic: float
    nonfinite: bool

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(f"{key!r} is not a status field; fields: {', '.join(_FIELD_NAMES)}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)

    def __eq__(self, other: object) -> bool:
        """Equal to another status, or to a plain dict, with the same fields and values (as the dict status was)."""
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in _FIELD_NAMES))

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` with the state as its name (JSON-ready)."""
        plain = asdict(self)
        plain["state"] = self.state.value
        return plain


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LayerStatus))

Status = dict[str, LayerStatus]
"""What ``DeepDriftMonitor.step`` returns first: ``{tap name: LayerStatus}`` in depth order."""
