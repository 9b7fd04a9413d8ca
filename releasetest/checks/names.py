"""The names of the built-in suites, in the order the gate and its report list them."""

from __future__ import annotations

SUITES = ("smoke", "acceptance", "schema", "load")


#: Tests carrying none of the suite markers: the user's own release tests.
OTHER = "other"

