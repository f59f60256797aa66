"""What a workflow rule hands a study: named inputs and outputs, checked against the names the study declares.

A script passes ``dict(snakemake.input)`` and ``dict(snakemake.output)`` on unchanged; each study entry declares the
names it reads and writes in one tuple, and checks the rule against it, so a renamed or forgotten output fails
with both lists instead of a ``KeyError`` (or a file Snakemake waits for in vain). A figure or table is a group of
files sharing one stem (``x.pdf`` + ``x.png``, ``x.csv`` + ``x.md`` + ``x.tex``): the study receives the stem.

Example:
    >>> OUTPUTS = ("runs", "timeline")
    >>> out = output_paths({"runs": "r/runs.csv", "timeline": ["f/t.pdf", "f/t.png"]}, OUTPUTS, "streams")
    >>> out["runs"].as_posix(), out["timeline"].as_posix()
    ('r/runs.csv', 'f/t')
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike
Files = PathLike | Sequence[PathLike]


class RuleIOError(ValueError):
    """A rule's inputs or outputs do not match the names the study declares."""


def checked(given: Mapping[str, Any], declared: Sequence[str], kind: str, where: str) -> dict[str, Any]:
    """``given`` as a dict, once its names are exactly ``declared``.

    Args:
        given: the rule's named inputs or outputs.
        declared: the names the study reads or writes.
        kind: ``"input"`` or ``"output"`` (for the message).
        where: the study entry (for the message).

    Raises:
        RuleIOError: a declared name is missing or an undeclared one is given (with close matches).
    """
    missing = [n for n in declared if n not in given]
    extra = [n for n in given if n not in declared]
    if missing or extra:
        hints = [f"{n!r} -> {close[0]!r}?" for n in extra if (close := difflib.get_close_matches(n, missing, n=1))]
        raise RuleIOError(
            f"{where}: the rule's {kind}s do not match the study's (declared: {list(declared)}); "
            f"missing {missing}, undeclared {extra}" + (f"; renamed? {', '.join(hints)}" if hints else "")
        )
    return dict(given)


def output_paths(given: Mapping[str, Files], declared: Sequence[str], where: str) -> dict[str, Path]:
    """Every declared output as a path (one file) or a stem (a group of files), in ``declared`` order."""
    outputs = checked(given, declared, "output", where)
    return {name: _path_or_stem(outputs[name], f"{where}: output {name!r}") for name in declared}


def by_model(paths: Files, models: Sequence[str], where: str) -> dict[str, Path]:
    """``{model key: path}`` for an input expanded over a study's models (same order as ``models``)."""
    files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if len(files) != len(models):
        raise RuleIOError(f"{where}: {len(files)} files for {len(models)} models {list(models)}: {files}")
    return {model: Path(path) for model, path in zip(models, files, strict=True)}


def _path_or_stem(files: Files, where: str) -> Path:
    if isinstance(files, (str, os.PathLike)):
        return Path(files)
    stems = {Path(f).with_suffix("") for f in files}
    if len(stems) != 1:
        raise RuleIOError(f"{where}: a group of files must share one stem, got {[str(f) for f in files]}")
    return stems.pop()
