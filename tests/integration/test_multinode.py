"""Two nodes on one CPU machine: two `iris-recipes run --nnodes 2 --node-rank R --main-process-ip 127.0.0.1`
processes sharing one --output directory (DistributedDataParallel over gloo, one process per node). Node 0 prepares
the data once and alone merges and exports; node 1 waits for it and trains its share; both are killed mid-training
and resumed from the same checkpoint."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.conftest_train import cli_env, metrics, processes_in, read_json, run_cli, start_cli, wait_for, write_recipe

pytestmark = pytest.mark.slow


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def node_args(rank: int, port: str) -> list[str]:
    return [
        "--nnodes",
        "2",
        "--node-rank",
        str(rank),
        "--main-process-ip",
        "127.0.0.1",
        "--main-process-port",
        port,
        "--device",
        "cpu",
        "--no-eval",
    ]


def test_two_nodes_one_run_killed_and_resumed(tmp_path, tiny_model_dir):
    out = tmp_path / "shared" / "run"
    recipe = write_recipe(tmp_path, tiny_model_dir, **{"train.max_steps": 24, "train.save_steps": 4})
    env = cli_env(tmp_path / "runs")
    port = free_port()
    # node 1 first: it waits for node 0 to create the run and prepare the data
    node1 = start_cli(
        ["run", str(recipe), *node_args(1, port), "--output", str(out), "--until", "export"], env, tmp_path
    )
    node0 = start_cli(
        ["run", str(recipe), *node_args(0, port), "--output", str(out), "--until", "export"], env, tmp_path
    )

    def saved(step):
        return lambda: any(r.get("event") == "save" and r["step"] >= step for r in metrics(out))

    wait_for(saved(8), 900, "checkpoint 8", node0)
    for proc in (node0, node1):  # kill both commands: their training processes stop on their own
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    wait_for(lambda: not processes_in(out), 90, "the training processes of both nodes to stop")
    first = [r["step"] for r in metrics(out) if "loss" in r]
    assert first and max(first) < 24

    port = free_port()
    node1 = start_cli(["run", "--resume", str(out), *node_args(1, port), "--until", "export"], env, tmp_path)
    res0 = run_cli(["run", "--resume", str(out), *node_args(0, port), "--until", "export"], env, tmp_path, timeout=1200)
    out1 = node1.communicate(timeout=300)[0]
    assert res0.returncode == 0, res0.stdout + res0.stderr
    assert node1.returncode == 0, out1

    meta = read_json(out / "run.json")
    train = meta["stages"]["train"]
    assert train["status"] == "done" and train["metrics"]["world_size"] == 2 and train["metrics"]["steps"] == 24
    resumed = train["resumed_from"]
    assert resumed.startswith("checkpoints/checkpoint-") and int(resumed.split("-")[-1]) >= 8
    assert f"train (node 1, from {resumed})" in out1  # the same checkpoint on both nodes
    assert [r["step"] for r in metrics(out) if "loss" in r] == list(range(1, 25))  # every step once, in step
    # one data stage (node 0's), one merge and export (node 0's); node 1 only trained
    assert meta["stages"]["data"]["status"] == "done" and (out / "data" / "report.json").is_file()
    assert meta["stages"]["export"]["status"] == "done" and list((out / "gguf").glob("*.gguf"))
    for line in ("data:", "merge:", "export:"):
        assert not any(ln.startswith(line) for ln in out1.splitlines()), out1
    assert "node 0 runs merge, export, eval and card" in out1
    assert (out / "train.node1.log").is_file()


def test_a_node_with_another_recipe_refuses_to_join(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path, tiny_model_dir)
    env = cli_env(tmp_path / "runs")
    res = run_cli(
        ["run", str(recipe), *node_args(0, free_port()), "--output", str(out), "--until", "data"], env, tmp_path
    )
    assert res.returncode == 0, res.stdout + res.stderr
    before = (out / "run.json").read_text()
    res = run_cli(
        ["run", str(recipe), "train.learning_rate=5e-4", *node_args(1, free_port()), "--output", str(out)],
        env,
        tmp_path,
    )
    assert res.returncode == 2 and "is not the one node 0 started" in res.stderr
    assert (out / "run.json").read_text() == before


def test_multinode_needs_one_shared_output(tmp_path, tiny_model_dir, capsys):
    from iris_recipes import cli

    recipe = write_recipe(tmp_path, tiny_model_dir)
    assert cli.main(["run", str(recipe), *node_args(0, "29500")]) == 2
    assert "same --output DIR" in capsys.readouterr().err
