"""Recorded production requests replayed through the candidate and production (issue 24)."""
