"""The local endpoint's server process: azmlinfsrv's gunicorn with the release's ``score.py``.

Imported by an isolated serving venv too, so nothing here imports more than the server needs."""
