"""The stage table: what depends on what, the stale marks in run.json, and the refusals with what to rerun.
(tests/integration/test_stages.py does the same on real runs, through the commands.)"""

from __future__ import annotations

import pytest

from iris_recipes import stages
from iris_recipes.errors import IrisError
from iris_recipes.rundir import RunDir


def test_a_stage_needs_only_stages_before_it():
    seen = []
    for stage in stages.STAGES:
        assert set(stage.needs) <= set(seen), f"{stage.name} needs {stage.needs}, not all before it ({seen})"
        seen.append(stage.name)
    for reader, needs in stages.READERS.items():
        assert set(needs) <= set(seen), reader


def test_dependants_and_inputs_follow_needs_transitively():
    assert stages.dependants("export") == ["eval", "card"]
    assert stages.dependants("eval") == ["card"]
    assert stages.dependants("data") == ["train", "merge", "export", "eval", "card"]
    assert stages.dependants("card") == []
    assert stages.inputs(("export",)) == ["data", "train", "merge", "export"]
    assert stages.inputs(stages.READERS["space"]) == ["data", "train", "merge", "export", "eval"]


def _run(tmp_path, **statuses) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write({"status": "done", "stages": {name: {"status": s} for name, s in statuses.items()}, "artifacts": {}})
    return run


def test_refusals_name_the_stale_stages_why_and_what_to_rerun(tmp_path):
    run = _run(tmp_path, data="done", train="done", merge="done", export="done", eval="done", card="done")
    assert all(stages.stale_problem(run, reader) is None for reader in [*stages.NAMES, *stages.READERS])
    assert stages._mark_dependants_stale(run, "export") == ["eval", "card"]
    assert stages.stale(run) == ["eval", "card"]
    assert stages.stale_problem(run, "eval") is None  # its own inputs are fresh: it may run again
    r = run.path
    with pytest.raises(IrisError) as card:
        stages.check_fresh(run, "card")
    assert str(card.value) == (
        f"{r}: the card stage reads the output of eval, which is stale (export ran again after it). "
        f"Rerun: iris-recipes eval {r} && iris-recipes card {r}"
    )
    assert stages.stale_problem(run, "space") == (
        f"{r}: iris-recipes space reads the output of eval, which is stale (export ran again after it). "
        f"Rerun: iris-recipes eval {r}"
    )
    assert "push reads the output of eval, card, which are stale (export ran again after them)" in (
        stages.stale_problem(run, "push")
    )


def test_a_stale_stage_without_its_own_command_is_rerun_by_resume(tmp_path):
    run = _run(tmp_path, data="done", train="done", merge="done", export="done", eval="done")
    assert stages._mark_dependants_stale(run, "data") == ["train", "merge", "export", "eval"]
    assert stages.stale_problem(run, "card").endswith(f"Rerun: iris-recipes run --resume {run.path}")
    assert {run.stage_info(s)["stale_because"] for s in stages.stale(run)} == {"data"}


def test_running_a_stage_again_clears_its_stale_mark(tmp_path):
    run = _run(tmp_path, export="done", eval="done")
    stages._mark_dependants_stale(run, "export")
    with run.stage("eval"):
        pass
    info = run.stage_info("eval")
    assert info["status"] == "done" and "stale_because" not in info and "stale_since" not in info
