"""Scenario files, the runner that plays them, and the `arbitrex` command line."""
