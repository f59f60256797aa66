"""Fault-localisation benchmark: inject faults at known places and check where and how the doctor says it broke."""
