"""Quieting a library logger for one block, and only that block."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.ERROR) -> Iterator[logging.Logger]:
    """Raise logger ``name``'s level to ``level`` inside the block and restore the previous level on exit.

    For studies that trigger thousands of expected warnings or alerts (injected NaN faults, replayed streams):
    the log stays readable, and code running after the block, or beside it in the same process, still sees the
    library's messages.

    Example:
        >>> with quiet_logger("deepdrift.monitor"):
        ...     pass  # replay thousands of alerting batches here
    """
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield logger
    finally:
        logger.setLevel(previous)
