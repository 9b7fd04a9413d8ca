"""The checks the suites run, with no pytest: per-suite configuration, acceptance, the schema
contract, load, metrics, and the registry that names the suites."""
