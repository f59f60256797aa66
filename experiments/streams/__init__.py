"""Streaming-detection benchmark: clean streams that switch to a corruption; delay, false alarms, early warnings."""
