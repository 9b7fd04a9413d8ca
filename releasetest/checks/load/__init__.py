"""The load check: open-model generator, HdrHistogram latency, SLOs from the deployment config,
and the Locust engine for distributed load."""
