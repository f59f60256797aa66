"""The strict config loader: unknown keys, wrong types and failed checks name the key's path and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pytest

from experiments.config import ConfigError, UnsupportedConfigError, from_mapping, keyed, mapping_key


@dataclass(frozen=True)
class Inner:
    k: int = 50
    rate: float = 0.5


@dataclass(frozen=True)
class Named:
    key: str = mapping_key()
    size: int = 1


@dataclass(frozen=True)
class Outer:
    models: tuple[str, ...]
    mode: Literal["first", "all"] = "first"
    limit: int | None = None
    pair: tuple[int, int] = (1, 2)
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    named: Mapping[str, Named] = field(default_factory=dict)
    families: Mapping[str, tuple[float, ...]] = keyed(("noise", "blur"), default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models must not be empty")


def _error(raw: dict, path: str = "study") -> str:
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, raw, path)
    return str(info.value)


def test_values_are_checked_and_made_immutable() -> None:
    cfg = from_mapping(
        Outer,
        {
            "models": ["a"],
            "limit": None,
            "pair": [3, 4],
            "inner": {"rate": 1},
            "named": {"m": {"size": 3}},
            "families": {"noise": [1, 0.5]},
        },
        "study",
    )
    assert cfg.models == ("a",) and cfg.pair == (3, 4) and cfg.limit is None
    assert cfg.inner == Inner(k=50, rate=1.0) and isinstance(cfg.inner.rate, float)
    assert cfg.named == {"m": Named(key="m", size=3)}
    assert cfg.families == {"noise": (1.0, 0.5)}
    assert from_mapping(Inner, None) == Inner()


def test_an_unknown_key_names_its_path_and_close_matches() -> None:
    message = _error({"models": ["a"], "inner": {"kk": 3}})
    assert message.startswith("study.inner.kk: unknown key 'kk'") and "Did you mean 'k'?" in message
    assert "Known: k, rate" in message
    assert "study.modles" in _error({"modles": ["a"]}) and "'models'" in _error({"modles": ["a"]})
    assert "study.families.noize" in _error({"models": ["a"], "families": {"noize": [1.0]}})
    assert "study.named.m.key: unknown key" in _error({"models": ["a"], "named": {"m": {"key": "x"}}})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"models": "a"}, "study.models: expected a list of (a string), got str 'a'"),
        ({"models": ["a"], "limit": "3"}, "study.limit: expected an integer or null, got str '3'"),
        ({"models": ["a"], "limit": 3.0}, "study.limit: expected an integer or null"),
        ({"models": ["a"], "flag": 1}, "study.flag: expected true or false, got int 1"),
        ({"models": ["a"], "pair": [1]}, "study.pair: expected a list of exactly 2 items"),
        ({"models": ["a"], "inner": {"k": True}}, "study.inner.k: expected an integer, got bool True"),
        ({"models": ["a"], "inner": 3}, "study.inner: expected a mapping"),
        ({"models": ["a"], "mode": "frist"}, "study.mode: 'frist' is not one of 'first', 'all'. Did you mean 'first'?"),
        ({"models": ["a"], "families": {"noise": ["x"]}}, "study.families.noise[0]: expected a number"),
    ],
)
def test_a_wrong_type_names_the_expected_type(raw: dict, expected: str) -> None:
    assert expected in _error(raw)


def test_missing_keys_and_failed_checks_name_the_section() -> None:
    assert _error({}) == "study: missing required key(s) models"
    assert _error({"models": []}) == "study: models must not be empty"


def test_error_types() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(UnsupportedConfigError, ConfigError)
