"""Failure modes with independent ground truth: perturbations whose mechanism defines the mode, and natural shifts."""
