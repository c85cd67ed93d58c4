"""Command-line input: overrides after options, output paths that cannot be written, --samples. Each bad input
exits 2 with a message naming the flag, before any work and without leaving anything behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_sandbox import tree

RECIPE = """\
name: paths-demo
base_model: builtin:smollm2-135m-instruct
chat_template: chatml
dataset: {path: data.jsonl, format: messages}
train: {max_steps: 2}
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with a small recipe over a local dataset."""
    turns = [[{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"ok {i}"}] for i in range(12)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
    (tmp_path / "r.yaml").write_text(RECIPE)
    return tmp_path


# -- KEY=VALUE after options -------------------------------------------------------------------------------------


def test_show_takes_an_override_after_an_option(cli_sandbox, project):
    result = cli_sandbox.run(["show", "r.yaml", "--no-defaults", "train.learning_rate=5e-5"], cwd=project)
    assert result.rc == 0, result.describe()
    assert "learning_rate: 5.0e-05" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "r.yaml", "-q", "train.learning_rate=abc"],
        ["show", "r.yaml", "--no-defaults", "train.learning_rate=abc"],
        ["run", "r.yaml", "--no-eval", "train.learning_rate=abc", "--dry-run"],
        ["data", "prepare", "r.yaml", "--out", "out", "train.learning_rate=abc"],
        ["sweep", "r.yaml", "--grid", "train.learning_rate=abc", "--dry-run", "lora.r=8,16"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_an_override_after_an_option_is_read(cli_sandbox, project, argv):
    """The override is applied (and its bad value reported), not rejected as an unrecognized argument."""
    before = tree(project)
    result = cli_sandbox.run(argv, cwd=project)
    result.assert_clean_failure()
    assert "train.learning_rate" in result.err and "unrecognized arguments" not in result.err, result.describe()
    assert tree(project) == before


def test_sweep_takes_axes_after_options(cli_sandbox, project):
    result = cli_sandbox.run(["sweep", "r.yaml", "--dry-run", "train.learning_rate=1e-4,2e-4", "--grid"], cwd=project)
    assert result.rc == 0, result.describe()
    assert "train.learning_rate=1e-4" in result.out and "train.learning_rate=2e-4" in result.out


def test_resume_refuses_an_override_wherever_it_stands(cli_sandbox, project):
    """`run --resume RUN KEY=V` put the override in RECIPE's place, where --resume ignored it."""
    (project / "run").mkdir()
    for argv in (["run", "--resume", "run", "train.max_steps=3"], ["run", "r.yaml", "--resume", "train.max_steps=3"]):
        result = cli_sandbox.run(argv, cwd=project)
        result.assert_clean_failure()
        assert "overrides are not allowed" in result.err, result.describe()


# -- output paths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("afile", "is a file, not a folder"),
        ("", "is empty"),
        ("afile/sub", "afile is a file, not a folder"),
        ("blocked", "blocked/train.jsonl"),  # the check passes; the write fails, on a file in it
    ],
)
def test_data_prepare_out_that_cannot_be_written(cli_sandbox, project, out, message):
    (project / "afile").write_text("keep\n")
    (project / "blocked" / "train.jsonl").mkdir(parents=True)
    before = tree(project)
    result = cli_sandbox.run(["data", "prepare", "r.yaml", "--out", out], cwd=project)
    result.assert_clean_failure()
    assert f"--out '{out}'" in result.err and message in result.err, result.describe()
    assert tree(project) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_data_prepare_out_on_a_file_system_that_refuses(cli_sandbox, project):
    result = cli_sandbox.run(["data", "prepare", "r.yaml", "--out", "/proc/iris-recipes-out"], cwd=project)
    result.assert_clean_failure()
    assert "--out '/proc/iris-recipes-out'" in result.err, result.describe()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_run_output_on_a_file_system_that_refuses(cli_sandbox, project, tmp_path_factory):
    """Refused before the base model is resolved: building the builtin model first took minutes and more memory
    than the sandbox allows, on a machine whose model cache was empty."""
    before = tree(project)
    cache = tmp_path_factory.mktemp("empty-cache")  # no base model built yet
    result = cli_sandbox.run(
        ["run", "r.yaml", "--output", "/proc/iris-recipes-run"], cwd=project, env={"IRIS_CACHE_DIR": str(cache)}
    )
    result.assert_clean_failure()
    assert "--output '/proc/iris-recipes-run': cannot be written: /proc refuses new files" in result.err, (
        result.describe()
    )
    assert tree(project) == before and tree(cache) == {}  # nothing built, nothing written


@pytest.mark.parametrize(
    "argv",
    [["compare", "no-such-run", "--output", "outdir"], ["space", "--manifest", "outdir"]],
    ids=["compare --output", "space --manifest"],
)
def test_an_output_file_that_is_a_folder(cli_sandbox, project, argv):
    """Refused before the work (compare would load every run first)."""
    (project / "outdir").mkdir()
    before = tree(project)
    result = cli_sandbox.run(argv, cwd=project)
    result.assert_clean_failure()
    assert f"{argv[-2]} 'outdir': is a folder, not a file" in result.err, result.describe()
    assert tree(project) == before


# -- --samples ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_sweep_checks_samples_before_any_variant_trains(cli_sandbox, project, samples):
    # were the check missed, the runs folder under a file would stop the sweep at once, not after a training
    (project / "afile").write_text("")
    env = {"IRIS_RUNS_DIR": str(project / "afile" / "runs")}
    argv = ["sweep", "r.yaml", "train.learning_rate=1e-4,2e-4", "--samples", samples]
    result = cli_sandbox.run(argv, cwd=project, env=env, timeout=30)
    result.assert_clean_failure()
    assert f"--samples {samples}: must be at least 1" in result.err, result.describe()


def test_eval_checks_samples_first(cli_sandbox, project):
    result = cli_sandbox.run(["eval", "no-such-run", "--samples", "0"], cwd=project)
    result.assert_clean_failure()
    assert "--samples 0: must be at least 1" in result.err, result.describe()


def test_sweep_dry_run_prints_eval_commands_with_samples(cli_sandbox, project):
    argv = ["sweep", "r.yaml", "train.learning_rate=1e-4,2e-4", "--samples", "5", "--dry-run"]
    result = cli_sandbox.run(argv, cwd=project)
    assert result.rc == 0, result.describe()
    evals = [line for line in result.out.splitlines() if line.startswith("iris-recipes eval ")]
    assert len(evals) == 2 and all(line.endswith(" --samples 5") for line in evals), result.describe()
