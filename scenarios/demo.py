"""The demo: a built-in scenario — a seeded order flow through the engine against the
simulated market, with a little of everything a desk meets (a lossy wire, odd sizes)."""

from __future__ import annotations

from scenarios.spec import FaultsSection, OrdersSection, Scenario
from sim.network import NetworkConfig

DEMO_FAULTS = FaultsSection(request_loss=0.005, reply_loss=0.005)
DEMO_NETWORK = NetworkConfig(
    request_loss=DEMO_FAULTS.request_loss, reply_loss=DEMO_FAULTS.reply_loss
)


def demo_scenario(orders: int, seed: int) -> Scenario:
    return Scenario(
        name="demo",
        description="1,000 approved trades on a Monday morning, with a lossy wire",
        seed=seed,
        faults=DEMO_FAULTS,
        orders=OrdersSection(orders=orders, odd_size_share=0.01),
    )
