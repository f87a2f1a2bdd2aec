"""Shared fixtures."""

from __future__ import annotations

import pytest

from sim.world import SimulatedWorld


@pytest.fixture
def world() -> SimulatedWorld:
    return SimulatedWorld.build(seed=11)
