"""Scenario files (TOML), the runner that plays them and what it checks; the assembly of
paper and live engines; and, in sub-packages, the `arbitrex` command line (`scenarios.cli`)
and the analysis of runs (`scenarios.analysis`)."""
