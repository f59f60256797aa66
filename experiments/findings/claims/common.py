"""What more than one claim reads: the fault study's subset labels and the batch size the README quotes.

The localisation and mode claims both select rows of ``faults_accuracy.csv``; defining its labels once keeps the two
claims on the same rows.
"""

from __future__ import annotations

README_BATCH = 16
"""Batch size of the README's localisation figures (and of the mode table beside them)."""
ALL_FAULTS, CLEAN = "all faults", "clean model (no fault)"
"""Subset labels of ``faults_accuracy.csv`` (the filtered ``accuracy change >= x pts`` subset is found by pattern)."""
