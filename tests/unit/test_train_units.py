"""Fast checks of the training plumbing: streaming and progress, stopping a launch, metrics.jsonl on resume,
which checkpoints count as resume points, and the launch environment."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from iris_recipes.train import launch
from iris_recipes.train.checkpoints import checkpoint_complete, latest_checkpoint
from iris_recipes.train.metrics import read_metrics, summarize, truncate_after
from iris_recipes.train.progress import PROGRESS_PREFIX, parse_line, run_streaming

CHILD = """
import json, sys, time
t = time.time()
print("loading model...", flush=True)
print("IRIS_METRICS " + json.dumps({"event": "train_begin", "step": 0, "max_steps": 4, "world_size": 1}), flush=True)
for step in range(1, 5):
    rec = {"event": "log", "time": t + step, "step": step, "max_steps": 4, "loss": 2.0 / step,
           "tokens_total": 100 * step}
    print("  50%|#####  | " + "IRIS_METRICS " + json.dumps(rec), flush=True)
print("done", flush=True)
"""


def test_streaming_keeps_the_whole_log_and_reads_progress(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    log = tmp_path / "train.log"
    res = run_streaming(
        [sys.executable, "-c", CHILD], env=dict(os.environ), cwd=tmp_path, log_path=log, console=console
    )
    assert res.returncode == 0 and not res.interrupted
    text = log.read_text()
    assert "loading model..." in text and "done" in text and text.count(PROGRESS_PREFIX + "{") == 5
    st = res.state
    assert (st.step, st.max_steps, st.loss, st.world_size) == (4, 4, 0.5, 1)
    assert st.tokens_per_second == 100.0 and st.eta_seconds == 0.0
    assert "step 4/4" in st.summary() and "100 tok/s" in st.summary()


def test_plain_output_when_not_a_terminal(tmp_path):
    out = io.StringIO()
    res = run_streaming(
        [sys.executable, "-c", CHILD],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "log",
        console=Console(file=out, force_terminal=False, width=200),
    )
    assert res.returncode == 0
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("train: step")]
    assert len(lines) == 4 and "loss 0.5000" in lines[-1]


def test_sigterm_stops_the_whole_process_group(tmp_path):
    # the launched command starts a grandchild (like accelerate starting a worker) that would outlive a plain kill
    child = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time, os; open(\"pid\", \"w\").write(str(os.getpid())); time.sleep(60)'])\n"
        "p.wait()\n"
    )
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    timer = threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    res = run_streaming(
        [sys.executable, "-c", child],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "log",
        console=Console(file=io.StringIO()),
    )
    assert res.interrupted and res.returncode != 0 and time.monotonic() - started < 30
    grandchild = int((tmp_path / "pid").read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the worker outlived the interrupted launch")
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers it installed are removed again


def test_parse_line():
    assert parse_line('xx IRIS_METRICS {"step": 3}') == {"step": 3}
    assert parse_line("IRIS_METRICS {torn") is None
    assert parse_line("{'loss': 1.0}") is None


def _rec(event, step, **kw):
    return {"event": event, "step": step, "time": 1000.0 + step, **kw}


def test_metrics_truncated_to_the_checkpoint_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    recs = [_rec("train_begin", 0, world_size=2, max_steps=6, backend="gloo")]
    recs += [_rec("log", s, loss=1.0 / s, tokens_total=50 * s, tokens_trainable=10 * s) for s in range(1, 6)]
    recs += [_rec("save", 4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"event": "log", "st')  # torn by a kill
    assert len(read_metrics(path)) == len(recs)
    assert truncate_after(path, 4) == 1
    kept = read_metrics(path)
    assert [r["step"] for r in kept if r["event"] == "log"] == [1, 2, 3, 4]
    assert path.read_text().endswith("\n")  # the torn line is gone too
    s = summarize(
        kept
        + [_rec("train_begin", 4, world_size=2, max_steps=6)]
        + [_rec("log", s, loss=0.1, tokens_total=50 * s, tokens_trainable=10 * s) for s in (5, 6)]
        + [_rec("train_end", 6, max_steps=6, world_size=2)]
    )
    assert s["steps"] == 6 and s["world_size"] == 2 and s["segments"] == 2 and s["logged_steps"] == 6
    assert s["final_loss"] == 0.1 and s["first_loss"] == 1.0 and s["tokens_per_second"] == 50.0


def test_only_axolotls_own_warnings_from_its_validator_reach_the_terminal():
    from iris_recipes.train.validator import AXOLOTL_WARNING

    shown = [
        "[2026-12-08 01:16:49,690] [WARNING] [axolotl.utils.schemas.validation] sample_packing without flash attention",
        "[2026-12-08 01:16:49,690] [ERROR] [axolotl] cannot use fp16 on CPU",
    ]
    hidden = [
        "[2026-12-08 01:16:40,083] [WARNING] [torchao] Failed to load /x/torchao/_C_mxfp8.so",
        "W1208 01:16:41.401000 16480 torch/utils/_pytree.py:630] register_constant() on Enum subclasses is deprecated",
        "[2026-12-08 01:16:49,690] [INFO] [axolotl.integrations.base] Attempting to load plugin: IrisPlugin",
        "[2026-12-08 01:16:49,690] [WARNING] [axolotlx] not Axolotl",
    ]
    assert [line for line in shown + hidden if AXOLOTL_WARNING.search(line)] == shown


def test_summary_line_says_when_a_run_logged_no_loss():
    from iris_recipes.train.stage import summary_line

    begin, end = _rec("train_begin", 0, world_size=1, max_steps=2), _rec("train_end", 2, world_size=1, max_steps=2)
    assert summary_line(summarize([begin, end])) == (  # logging_steps 10, max_steps 2
        "train: done, 2 steps, no loss logged (the run ended before its first logging step; see train.logging_steps), "
        "world size 1"
    )
    logged = [begin, _rec("log", 2, loss=1.1513508558273315), end]
    assert summary_line(summarize(logged)) == "train: done, 2 steps, final loss 1.1514, world size 1"


def _checkpoint(root: Path, step: int, *, complete: bool = True) -> Path:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "adapter_model.safetensors").write_bytes(b"x")
    (d / "optimizer.pt").write_bytes(b"x")
    if complete:
        (d / "scheduler.pt").write_bytes(b"x")
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def test_latest_complete_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 12, complete=False)  # killed while saving
    (tmp_path / "checkpoint-junk").mkdir()
    path, step = latest_checkpoint(tmp_path)
    assert step == 10 and path.name == "checkpoint-10"
    (path / "trainer_state.json").write_text("{half")
    assert not checkpoint_complete(path)
    assert latest_checkpoint(tmp_path)[1] == 2


def test_launch_env_is_offline_quiet_and_threaded(monkeypatch):
    monkeypatch.setattr(launch, "cpu_count", lambda: 6)  # 6 cores, 2 processes
    spec = launch.make_spec(num_processes=2, device="cpu")
    env = launch.launch_env(spec, offline=True, base={"PATH": "/bin"})
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["WANDB_MODE"] == "disabled" and env["AXOLOTL_DO_NOT_TRACK"] == env["DO_NOT_TRACK"] == "1"
    assert env["OMP_NUM_THREADS"] == "3"
    assert Path(env["PYTHONPATH"].split(os.pathsep)[0], "iris_recipes", "train", "plugin.py").is_file()
    online = launch.launch_env(spec, offline=False, base={})
    assert "HF_HUB_OFFLINE" not in online


def test_cpu_training_keeps_freed_memory_gpu_training_does_not():
    cpu = launch.launch_env(launch.make_spec(device="cpu"), offline=True, base={})
    assert cpu["MALLOC_MMAP_MAX_"] == "0" and int(cpu["MALLOC_TRIM_THRESHOLD_"]) >= 1 << 40
    own = launch.launch_env(launch.make_spec(device="cpu"), offline=True, base={"MALLOC_MMAP_MAX_": "65536"})
    assert own["MALLOC_MMAP_MAX_"] == "65536"  # the user's own setting wins
    gpu = launch.launch_env(launch.make_spec(device="gpu", gpus=1), offline=True, base={})
    assert not any(key.startswith("MALLOC_") for key in gpu)  # host memory a GPU run frees goes back to the OS


def test_command_modules_stay_light():
    import subprocess

    code = (
        "import sys; import iris_recipes.cli as c; c.build_parser();"
        "import iris_recipes.commands.run, iris_recipes.pipeline;"
        "bad = [m for m in ('torch', 'axolotl', 'transformers') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cpu_bf16_forced_by_the_environment(monkeypatch):
    from iris_recipes.errors import IrisError
    from iris_recipes.hostinfo import cpu_has_bf16

    monkeypatch.setenv("IRIS_CPU_BF16", "0")
    assert cpu_has_bf16() is False
    assert cpu_has_bf16("flags\t\t: avx512_bf16\n") is True  # a given cpuinfo is read as written
    monkeypatch.setenv("IRIS_CPU_BF16", "1")
    assert cpu_has_bf16() is True
    monkeypatch.setenv("IRIS_CPU_BF16", "yes")
    with pytest.raises(IrisError, match=r"IRIS_CPU_BF16='yes': give 0 \(fp32 on CPU\) or 1"):
        cpu_has_bf16()


def test_cpu_bf16_from_cpuinfo():
    from iris_recipes.hostinfo import cpu_has_bf16

    zen4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
    sapphire = "flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n"
    skylake = "flags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n"
    graviton3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    graviton2 = "processor\t: 0\nFeatures\t: fp asimd atomics\n"
    assert [cpu_has_bf16(x) for x in (zen4, sapphire, skylake, graviton3, graviton2, "")] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
