"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.world import SimulatedWorld
from tests import store_backends as sb
from tests.builders import FX_DATA


@pytest.fixture
def world() -> SimulatedWorld:
    return SimulatedWorld.build(seed=11)


@pytest.fixture(scope="session")
def fx_data() -> Path:
    """The real-data folder; absent, a test skips — except in CI, where it must be there."""
    if not FX_DATA.is_dir():
        message = f"the real FX data folder {FX_DATA} is absent"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must provide it (see ../shared/data/fx/README.md)")
        pytest.skip(f"{message}; the real-data tests need ../shared/data/fx")
    return FX_DATA


@pytest.fixture(params=sb.ALL)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sb.StoreTarget]:
    """Each audit store backend, fresh."""
    with sb.store_target(request.param, tmp_path) as store_target:
        yield store_target


@pytest.fixture(params=sb.SHARED)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sb.StoreTarget]:
    """Backends where a second connection (a tamperer) reaches the same data."""
    with sb.store_target(request.param, tmp_path) as store_target:
        yield store_target
