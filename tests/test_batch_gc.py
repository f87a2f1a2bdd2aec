"""A simulation run tunes the garbage collector for itself, and only for itself."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from scenarios.batch_gc import BATCH_THRESHOLDS, batch_gc
from scenarios.demo import demo_scenario
from scenarios.runner import run_scenario


def test_a_run_block_collects_young_objects_less_often_and_skips_what_set_up_left():
    before = gc.get_threshold()
    with batch_gc():
        assert gc.get_threshold() == BATCH_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_process_gets_its_collector_back_when_the_run_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="the run broke"), batch_gc():
        raise RuntimeError("the run broke")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_collector_settings_do_not_change_a_runs_results():
    scenario = demo_scenario(200, seed=3)
    plain = run_scenario(scenario, Path.cwd()).results_hash
    with batch_gc():
        tuned = run_scenario(scenario, Path.cwd()).results_hash
    assert tuned == plain
