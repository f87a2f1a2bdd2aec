"""`arbitrex`: the kit's one command line (`python -m scenarios.cli` is the same command).

`app` runs scenarios and reports, `audit` verifies and exports the trail, `api` serves the
REST API and manages its keys; `main` is the console entry point.
"""

from scenarios.cli.app import app


def main() -> None:
    app()
