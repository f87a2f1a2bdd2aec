"""A scenario's simulated broker in a process of its own, for crash chaos:

    python -m scenarios.paper_venue --port P --scenario FILE --seed S

builds the Venue the scenario describes (its market, account and venue sections) and serves
it with `sim.broker_process.serve` until killed, so that engine processes can die and
restart against one broker, as a real terminal outlives the strategy that talks to it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scenarios.spec import Scenario, load_scenario
from sim.broker_process import serve
from sim.market import SyntheticMarket
from sim.venue import Venue


def scenario_venue(scenario: Scenario, seed: int) -> Venue:
    """The venue the scenario describes, on its synthetic market (crash chaos refuses a
    replayed one), every model seeded from `seed`."""
    market = SyntheticMarket(scenario.market_config(), seed, scenario.t0)
    return Venue(market, scenario.account, scenario.venue_config(), seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a scenario's simulated broker venue")
    parser.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenario", type=Path, required=True, help="a scenario file: its market, venue, account"
    )
    options = parser.parse_args(argv)
    venue = scenario_venue(load_scenario(options.scenario), options.seed)
    serve(("127.0.0.1", options.port), venue)


if __name__ == "__main__":
    main()
