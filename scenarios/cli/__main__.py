"""`python -m scenarios.cli ...`: the `arbitrex` command without its installed script."""

from scenarios.cli import main

main()
