"""`iris-recipes run RECIPE --slurm`: the generated batch job, run for two nodes on this machine with `srun` and
`scontrol` stand-ins on PATH (the job's own commands, the real `iris-recipes` in --dry-run behind them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iris_recipes import cli
from tests.conftest_train import REPO

RECIPE = REPO / "recipes" / "llama1b-math.yaml"

# srun: run the command once per node in parallel, as Slurm does, with that node's SLURM_NODEID.
FAKE_SRUN = """#!/bin/bash
echo "srun $*" >> "$FAKE_LOG"
nodes=1
while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do
  case "$1" in --nodes=*) nodes=${1#--nodes=} ;; esac
  shift
done
pids=()
for ((r = 0; r < nodes; r++)); do SLURM_NODEID=$r SLURM_PROCID=$r "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done; exit $rc
"""
FAKE_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE_LOG"
[ "$1 $2" = "show hostnames" ] && printf 'gpu-node-07\\ngpu-node-08\\n'
exit 0
"""
# The iris-recipes the nodes run: records its arguments, then does the real thing with --dry-run.
FAKE_IRIS = f"""#!/bin/bash
echo "node=${{SLURM_NODEID:-batch}} $*" >> "$FAKE_LOG"
exec {sys.executable} -m iris_recipes "$@" --dry-run
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.mark.slow
def test_slurm_job_runs_both_ranks_with_the_right_arguments(tmp_path, capsys):
    out = tmp_path / "shared" / "run"
    code = cli.main(
        [
            "run",
            str(RECIPE),
            "--slurm",
            "--nnodes",
            "2",
            "--gpus",
            "8",
            "--deepspeed",
            "zero2",
            "--partition",
            "gpu",
            "--time",
            "12:00:00",
            "--account",
            "proj",
            "--gpu-type",
            "a100-80",
            "--output",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    sbatch = out / "launch.sbatch"
    assert f"sbatch {sbatch}" in printed
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "created" and meta["slurm"]["nodes"] == 2 and not (out / "data").exists()

    text = sbatch.read_text()
    assert subprocess.run(["bash", "-n", str(sbatch)]).returncode == 0
    directives = [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert directives == [
        "--job-name=iris-llama1b-math",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--gpus-per-node=8",
        "--partition=gpu",
        "--time=12:00:00",
        "--account=proj",
        "--requeue",
        "--signal=B:USR1@300",
        "--open-mode=append",
        f"--output={out}/slurm-%j.out",
    ]
    assert "$" not in "".join(directives[:-1])  # literal values: sbatch expands no variables there

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write(bin_dir / "srun", FAKE_SRUN)
    _write(bin_dir / "scontrol", FAKE_SCONTROL)
    _write(bin_dir / "iris", FAKE_IRIS)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "IRIS_RECIPES": str(bin_dir / "iris"),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu-node-[07-08]",
        "SLURM_NNODES": "2",
    }
    proc = subprocess.run(["bash", str(sbatch)], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    calls = log.read_text().splitlines()
    assert calls[0] == "scontrol show hostnames gpu-node-[07-08]"
    assert calls[1].startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c")
    ranks = sorted(c for c in calls if c.startswith("node=") and not c.startswith("node=batch"))
    port = ranks[0].rsplit(" ", 1)[1]
    assert port.isdigit() and 1024 <= int(port) <= 65535
    for r, line in enumerate(ranks):
        assert line == (
            f"node={r} run --resume {out} --until train --nnodes 2 --gpus 8 --deepspeed=zero2 "
            f"--node-rank {r} --main-process-ip gpu-node-07 --main-process-port {port}"
        )
    # post-training stages: once, after both nodes, on the batch host
    assert calls[-1] == f"node=batch run --resume {out} --nnodes 1 --gpus 8"
    # the real CLI turned each rank's arguments into its accelerate command
    for r in (0, 1):
        assert (
            f"accelerate launch --multi_gpu --num_processes 16 --num_machines 2 --machine_rank {r} "
            f"--main_process_ip gpu-node-07 --main_process_port {port}"
        ) in proc.stdout


def test_slurm_requeues_itself_near_the_time_limit(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", str(RECIPE), "--slurm", "--nnodes", "2", "--gpus", "4", "--output", str(out)]) == 0
    capsys.readouterr()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write(bin_dir / "srun", "#!/bin/bash\nsleep 30\n")  # training that is still running at the signal
    _write(bin_dir / "scontrol", FAKE_SCONTROL)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": "n[1-2]",
    }
    proc = subprocess.Popen(["bash", str(out / "launch.sbatch")], env=env, stdout=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 60
    while not (log.exists() and "show hostnames" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(__import__("signal").SIGUSR1)
    proc.wait(timeout=60)
    assert "scontrol requeue 77" in log.read_text()
    assert proc.returncode != 0  # the job ends here; Slurm starts it again, and it resumes


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--slurm", "--nnodes", "2"], "--slurm needs --gpus"),
        (["--slurm", "--gpus", "8", "--nnodes", "2", "--main-process-ip", "h"], "drop --main-process-ip"),
        (["--slurm", "--gpus", "8", "--time", "soon"], "--time 'soon'"),
        (["--gpus", "8", "--partition", "gpu"], "go with --slurm"),
    ],
)
def test_slurm_bad_flags(capsys, tmp_path, flags, message):
    assert cli.main(["run", str(RECIPE), *flags, "--output", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_large_allocation_does_not_end_the_job(tmp_path, capsys):
    """scontrol prints one name per node: reading only the first line would end it with SIGPIPE mid-list, and under
    `set -o pipefail` that ends the whole job before training starts."""
    out = tmp_path / "run"
    assert cli.main(["run", str(RECIPE), "--slurm", "--nnodes", "2", "--gpus", "4", "--output", str(out)]) == 0
    capsys.readouterr()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # far more than a pipe's buffer (64 KiB) of host names
    _write(bin_dir / "scontrol", "#!/bin/bash\nseq -f 'gpu-node-%06g' 1 200000\n")
    _write(bin_dir / "srun", "#!/bin/bash\nexit 0\n")
    _write(bin_dir / "iris", "#!/bin/bash\nexit 0\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "IRIS_RECIPES": str(bin_dir / "iris"),
        "SLURM_JOB_ID": "9",
        "SLURM_JOB_NODELIST": "gpu-node-[000001-200000]",
    }
    proc = subprocess.run(["bash", str(out / "launch.sbatch")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "head gpu-node-000001:" in proc.stdout
