"""Axolotl's validator, run in a child process.

`iris-recipes run` checks the generated config with Axolotl before launching it. Doing that in the process that then
supervises training runs torch's and Axolotl's code there; measured on 2 cores, the training launched afterwards
was about 5% slower than the same launch from a process that never ran them (benchmarks/bench_train.py). So the
check runs in a child, started early: it imports torch and Axolotl (most of its time) while the data stage runs,
then validates the config it is sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.hostinfo import child_env

# A line Axolotl logs about the config (a setting it changed or ignores): the user may want to change the recipe.
# The rest of the child's output (library notices from importing torch and Axolotl) goes only to the log.
AXOLOTL_WARNING = re.compile(r"\[(WARNING|ERROR|CRITICAL)\] \[axolotl[.\]]")


class Validator:
    """A validator child, importing Axolotl from the moment it is made; `check` sends it one config."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="iris-validate-")
        self._result = Path(self._tmp.name) / "result.json"
        self._log = open(Path(self._tmp.name) / "output.log", "w+", encoding="utf-8")
        env = child_env()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "iris_recipes.train.validator", str(self._result)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def check(
        self, cfg: dict, *, recipe_data: dict, recipe_file: str | Path, gpu: dict | None = None, log: Path | None = None
    ) -> None:
        """`config.validate` in the child; raises IrisError with its messages. The child's whole output goes to
        `log` (the train stage's log file); on the terminal only Axolotl's own warnings about the config."""
        request = json.dumps(
            {"cfg": cfg, "recipe_data": recipe_data, "recipe_file": str(recipe_file), "gpu": gpu}, default=str
        )
        try:
            self._proc.communicate(request)
        except BrokenPipeError:  # it died before reading: its output says why
            self._proc.wait()
        self._log.seek(0)
        output = self._log.read()
        if log is not None and output:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"# Axolotl's validator\n{output}")
        sys.stderr.writelines(line for line in output.splitlines(keepends=True) if AXOLOTL_WARNING.search(line))
        outcome = json.loads(self._result.read_text()) if self._result.is_file() else None
        self.close()
        if outcome is None:
            last = next((ln for ln in reversed(output.strip().splitlines()) if ln.strip()), "no output")
            raise IrisError(
                f"{recipe_file}: Axolotl's validator crashed (exit {self._proc.returncode}): {last[:300]}. "
                "Check that the train extra is installed: pip install 'iris-recipes[train]'."
            )
        if outcome.get("error"):
            raise IrisError(outcome["error"])

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _main(argv: list[str]) -> int:
    result = Path(argv[0])
    import axolotl.cli.config  # noqa: F401  (the slow imports, done while the parent is still busy)
    import axolotl.utils.config  # noqa: F401

    from iris_recipes.train.config import validate

    args = json.loads(sys.stdin.read())
    try:
        validate(args["cfg"], recipe_data=args["recipe_data"], recipe_file=args["recipe_file"], gpu=args["gpu"])
    except IrisError as exc:
        result.write_text(json.dumps({"error": str(exc)}))
        return 2
    result.write_text(json.dumps({"error": None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
