"""The endpoint: deploy targets (local azmlinfsrv, an existing URL, Azure ML), the handle the
suites talk to, the scoring client, and the local server."""
