"""A simulation run tunes the garbage collector for itself, and only for itself."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenarios.batch_gc import BATCH_THRESHOLDS, batch_gc
from scenarios.cli import runs
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


def _is_frozen(obj: object) -> bool:
    # The collector's generations list every tracked object except the frozen ones. (The
    # freeze count is no witness: a frozen object that dies leaves it, so it may shrink.)
    return not any(o is obj for o in gc.get_objects())


def test_a_caller_that_froze_objects_itself_keeps_them_frozen_after_a_run():
    callers_state = [{"positions": []}]
    gc.freeze()
    try:
        assert _is_frozen(callers_state)
        with batch_gc():
            assert gc.get_threshold() == BATCH_THRESHOLDS
            with batch_gc():  # nested: the outer block's freeze stays too
                pass
            assert _is_frozen(callers_state)
        assert _is_frozen(callers_state)
    finally:
        gc.unfreeze()
    assert not _is_frozen(callers_state)


def test_the_demo_command_runs_its_orders_under_the_batch_settings(monkeypatch):
    seen: list[tuple[int, int, int]] = []

    def observed(*args: object, **kwargs: object) -> object:
        seen.append(gc.get_threshold())
        return run_scenario(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "run_scenario", observed)
    before = gc.get_threshold()
    result = CliRunner().invoke(runs.runs_app, ["demo", "--orders", "5", "--seed", "1"])

    assert result.exit_code == 0, result.output
    assert seen == [BATCH_THRESHOLDS]
    assert gc.get_threshold() == before


def test_the_collector_settings_do_not_change_a_runs_results():
    scenario = demo_scenario(200, seed=3)
    plain = run_scenario(scenario, Path.cwd()).results_hash
    with batch_gc():
        tuned = run_scenario(scenario, Path.cwd()).results_hash
    assert tuned == plain
