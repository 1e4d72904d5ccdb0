"""Development fixtures: the sample quarter, its generators and the local API double.

Nothing in the production path (harvest, store, controls, report, pack, config, sources,
archive, dkim) imports this package; only the `sandbox` and `demo` commands, tests and
benchmarks do.
"""
