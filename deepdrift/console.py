"""Entry point of the ``deepdrift`` console script.

The command line needs the ``cli`` extra (typer). Importing it here, inside :func:`main`, turns a missing extra into
one line that says what to install instead of a traceback from the script wrapper.
"""

from __future__ import annotations

import sys

MISSING_TYPER = "error: the deepdrift command needs typer: pip install 'deepdrift[cli]'"


def main() -> None:
    """Run the typer app, or explain in one line (exit 2) that the ``cli`` extra is missing."""
    try:
        import typer  # noqa: F401  (probe only: the app below needs it)
    except ImportError:
        print(MISSING_TYPER, file=sys.stderr)
        raise SystemExit(2) from None
    from .cli import app

    app()


if __name__ == "__main__":  # pragma: no cover - python -m deepdrift.console
    main()
