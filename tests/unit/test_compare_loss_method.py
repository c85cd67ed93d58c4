"""Validation losses measured in different ways are never compared side by side."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest_card import make_run


def test_compare_refuses_runs_whose_loss_was_measured_differently(tmp_path):
    old, new = make_run(tmp_path / "a", "smollm2-demo"), make_run(tmp_path / "b", "smollm2-demo")
    ev = json.loads(old.file("eval.json").read_text())
    del ev["loss_method"]  # an eval.json written before the loss was measured on training's own tokens
    old.file("eval.json").write_text(json.dumps(ev))
    cmd = [sys.executable, "-m", "iris_recipes.cli", "compare", str(old.path), str(new.path), "--output"]
    out = subprocess.run([*cmd, str(tmp_path / "c.md")], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "measured their validation loss in different ways" in out.stderr
    assert f"`iris-recipes eval {old.path}`" in out.stderr and f"eval {new.path}`" not in out.stderr
    assert not (tmp_path / "c.md").exists()
    # measured the same way: compared
    ev["loss_method"] = json.loads(new.file("eval.json").read_text())["loss_method"]
    old.file("eval.json").write_text(json.dumps(ev))
    out = subprocess.run([*cmd, str(tmp_path / "c.md")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.md").is_file()
