"""The pytest wiring: fixtures, custom hookspecs, stash keys and the xdist suite lock. Everything
here may import pytest; nothing below it does."""
