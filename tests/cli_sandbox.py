"""Run `iris-recipes` commands in a sandbox: each in its own process, with a time limit and a memory limit.

A hang, a crash (segfault) or runaway memory then fails the one test case that caused it instead of the whole test
run. One warm worker process imports the CLI once and forks a child per command (a fresh `python -m iris_recipes`
per case would spend most of the fuzz budget starting Python). Use the `cli_sandbox` fixture:

    result = cli_sandbox.run(["validate", "-q", str(path)], cwd=tmp)
    assert result.rc == 2 and result.problems() == [...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_WORKER = r"""
import json, os, resource, sys, time, traceback

from iris_recipes.cli import build_parser, main
from iris_recipes.recipe.schema import _validator
import iris_recipes.data  # noqa: F401

build_parser()  # every command module, the schema validator and the data layer: imported once, not per command
_validator()
try:  # the data fuzz reads Parquet files; pyarrow imports most of itself on the first read
    import tempfile
    import pyarrow
    import pyarrow.parquet
    with tempfile.TemporaryDirectory() as tmp:
        pyarrow.parquet.write_table(pyarrow.table({"a": [1]}), tmp + "/warm.parquet")
        pyarrow.parquet.read_table(tmp + "/warm.parquet").to_pylist()
except ImportError:
    pass

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

def child(req):
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # stdin is the request pipe
    fd = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    fd = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    rc = 1
    try:
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        limit = vm_size() + req["memory"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        rc = main(req["argv"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)

for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(req)
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > req["timeout"]:
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
            timed_out = True
            break
        time.sleep(0.002)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                      "seconds": time.monotonic() - start}), flush=True)
"""


@dataclass
class Result:
    argv: list[str]
    rc: int  # the exit code; negative: killed by that signal (-11 a segfault, -9 the time limit)
    timed_out: bool
    seconds: float
    out: str
    err: str

    def problems(self) -> list[str]:
        """The lines on stderr."""
        return self.err.splitlines()

    def describe(self) -> str:
        return (
            f"iris-recipes {' '.join(a if len(a) < 80 else a[:77] + '...' for a in self.argv)}: rc {self.rc}"
            f"{' (timed out)' if self.timed_out else ''} in {self.seconds:.2f}s\n"
            f"--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"
        )

    def assert_clean_failure(self) -> None:
        """Exit 2 with a message: no traceback, no crash, no hang."""
        assert not self.timed_out and self.rc == 2 and "Traceback" not in self.err and self.err.strip(), self.describe()


class Sandbox:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        self._tmp = tempfile.TemporaryDirectory(prefix="iris-sandbox-")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, cwd=REPO
        )

    def run(
        self,
        argv: list[str],
        *,
        cwd: Path | str = REPO,
        env: dict[str, str] | None = None,
        timeout: float = 20.0,
        memory: int = 1 << 30,
    ) -> Result:
        """Run one command; `memory` bytes may be allocated beyond what the warm worker holds."""
        out, err = Path(self._tmp.name) / "out", Path(self._tmp.name) / "err"
        request = {
            "argv": [str(a) for a in argv],
            "cwd": str(cwd),
            "env": env or {},
            "timeout": timeout,
            "memory": memory,
            "out": str(out),
            "err": str(err),
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox worker died (exit {self._proc.wait()})")
        reply = json.loads(line)
        return Result(
            request["argv"],
            reply["rc"],
            reply["timed_out"],
            reply["seconds"],
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._tmp.cleanup()


@pytest.fixture(scope="session")
def cli_sandbox():
    box = Sandbox()
    yield box
    box.close()


def tree(path: Path) -> dict[str, int]:
    """Every file and folder under `path` (relative name -> size, -1 for folders): to check nothing was written."""
    return {str(p.relative_to(path)): (-1 if p.is_dir() else p.stat().st_size) for p in sorted(path.rglob("*"))}
