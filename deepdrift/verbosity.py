"""One documented switch for the library's log output, so callers never reach into ``deepdrift.*`` loggers.

Logging carries information (alerts as they happen, what calibration chose); problems a user must act on are
``DeepDriftWarning``s and are not affected by these switches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_ROOT = "deepdrift"


def set_log_level(level: int | str) -> None:
    """Set the level of every ``deepdrift`` logger, e.g. ``set_log_level("ERROR")`` to silence alert logs."""
    logging.getLogger(_ROOT).setLevel(level)


@contextmanager
def log_level(level: int | str) -> Iterator[None]:
    """Use ``level`` for the library's loggers inside the block and restore the previous level after it.

    Example:
        >>> with log_level("ERROR"):  # a stream that alerts by design  # doctest: +SKIP
        ...     for batch in stream:
        ...         monitor.step(batch)
    """
    logger = logging.getLogger(_ROOT)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
