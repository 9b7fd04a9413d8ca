"""Scoring scripts the gate supplies where Azure ML generates one (no-code deployments)."""
