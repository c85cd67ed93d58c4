"""Run the training command, keep its whole output in a log file, and show step, loss, tokens/s and ETA.

The numbers come from the `IRIS_METRICS {json}` lines the plugin's callback prints (one per trainer log event),
not from scraping progress bars. On a terminal a rich progress bar is shown; otherwise (CI, pipes) one plain line
per logged step. Axolotl's own output goes only to the log unless `verbose`.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

PROGRESS_PREFIX = "IRIS_METRICS "  # same as iris_recipes.train.plugin (not imported: it needs Axolotl)
GRACE_SECONDS = 20  # after SIGTERM, how long the trainer gets before it is killed


@dataclass
class ProgressState:
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    world_size: int | None = None
    first: tuple[float, int, int | None] | None = None  # (time, step, tokens_total) at the first logged step
    last: tuple[float, int, int | None] | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=40))

    def feed(self, record: dict) -> bool:
        """Take one metrics record; True if it is a training step worth showing."""
        self.max_steps = record.get("max_steps") or self.max_steps
        if record.get("world_size"):
            self.world_size = record["world_size"]
        if record.get("event") != "log":
            return False
        self.step = record.get("step", self.step)
        if "eval_loss" in record:
            self.eval_loss = record["eval_loss"]
            return True
        if "loss" not in record:
            return False
        self.loss = record["loss"]
        tokens = record.get("tokens_total")  # not every trainer counts tokens (TRL's ORPO and CPO do not)
        point = (record.get("time", time.time()), self.step, int(tokens) if tokens is not None else None)
        if self.first is None:
            self.first = point
        self.last = point
        return True

    @property
    def tokens_per_second(self) -> float | None:
        if not self.first or not self.last or self.last[0] <= self.first[0] or None in (self.first[2], self.last[2]):
            return None
        return (self.last[2] - self.first[2]) / (self.last[0] - self.first[0])

    @property
    def eta_seconds(self) -> float | None:
        if not self.first or not self.last or self.last[1] <= self.first[1] or not self.max_steps:
            return None
        per_step = (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])
        return max(0.0, (self.max_steps - self.step) * per_step)

    def summary(self) -> str:
        parts = [f"step {self.step}/{self.max_steps or '?'}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eval_loss is not None:
            parts.append(f"eval_loss {self.eval_loss:.4f}")
        if self.tokens_per_second is not None:
            parts.append(f"{self.tokens_per_second:,.0f} tok/s")
        if self.eta_seconds is not None:
            parts.append(f"ETA {_clock(self.eta_seconds)}")
        return "  ".join(parts)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def parse_line(line: str) -> dict | None:
    """The metrics record on a line of training output, if it carries one."""
    idx = line.find(PROGRESS_PREFIX)
    if idx < 0:
        return None
    try:
        record = json.loads(line[idx + len(PROGRESS_PREFIX) :])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class RunResult:
    returncode: int
    interrupted: bool
    state: ProgressState
    seconds: float


def run_streaming(
    argv: list[str],
    *,
    env: dict,
    cwd: Path,
    log_path: Path,
    verbose: bool = False,
    console: Console | None = None,
    label: str = "train",
) -> RunResult:
    """Run `argv` in its own process group; SIGINT/SIGTERM to this process stop the whole group cleanly."""
    console = console or Console(stderr=True)
    state = ProgressState()
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    interrupted = False

    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            errors="replace",
            start_new_session=True,
        )

        def stop(signum, _frame):
            nonlocal interrupted
            interrupted = True
            _terminate(proc)

        old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        progress = None
        task = None
        if console.is_terminal and not verbose:
            progress = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=console,
            )
            progress.start()
            task = progress.add_task(label, total=None, info="starting (loading model and data)")
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                state.tail.append(line.rstrip("\n"))
                record = parse_line(line)
                if record is None:
                    if verbose:
                        console.print(line.rstrip("\n"), markup=False, highlight=False)
                    continue
                if not state.feed(record):
                    continue
                if progress is not None:
                    progress.update(task, total=state.max_steps or None, completed=state.step, info=state.summary())
                else:
                    console.print(f"{label}: {state.summary()}", markup=False, highlight=False)
            returncode = proc.wait()
        except BaseException:
            _terminate(proc)
            proc.wait()
            raise
        finally:
            if progress is not None:
                progress.stop()
            for s, handler in old.items():
                signal.signal(s, handler)
    return RunResult(returncode=returncode, interrupted=interrupted, state=state, seconds=time.monotonic() - started)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the launcher's process group now, SIGKILL it if it is still there after the grace period."""
    _signal_group(proc, signal.SIGTERM)

    def kill_if_alive():
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)

    timer = threading.Timer(GRACE_SECONDS, kill_if_alive)
    timer.daemon = True
    timer.start()
