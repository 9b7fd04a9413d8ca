"""Acceptance: the holdout scored through the endpoint, compared with naive baselines, the champion
and the training-time predictions."""
