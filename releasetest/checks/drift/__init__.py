"""Drift between the training data, the holdout and recorded production inputs (issue 24)."""
