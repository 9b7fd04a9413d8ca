"""Built-in release suites, shipped inside the releasetest distribution.

The plugin collects the ``suite_*.py`` files here when ``--release-stage`` is given.
"""
