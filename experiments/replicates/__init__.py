"""Replicates (issue 12, item 1): the headline numbers again on independently trained models of one architecture,
each with its own calibration splits, so every headline gets an interval over training seeds as well as batches."""
