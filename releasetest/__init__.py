"""releasetest: test an ML model release on a live DEV TEST endpoint and gate its promotion."""

__version__ = "0.1.0"
