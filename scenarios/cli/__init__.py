"""`arbitrex`: the kit's one command line (`python -m scenarios.cli` is the same command).

`root` is the entry point: it lists the commands and prints the version without loading
them. `app` runs scenarios and reports, `audit` verifies and exports the trail, `api` serves
the REST API and manages its keys, `settings` reads serve's configuration.
"""

from scenarios.cli.root import main

__all__ = ["main"]
