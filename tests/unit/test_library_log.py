"""Library notices during a stage go to its log file; the terminal keeps errors and iris-recipes' own lines. Run in
a child process: pytest's own log capture would otherwise stand between the libraries and the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from iris_recipes.hostinfo import child_env

CHILD = textwrap.dedent(
    """
    import logging, sys, warnings
    from iris_recipes import library_log

    made_before = logging.getLogger("lib.before")  # a handler a library made when imported before the stage
    made_before.addHandler(logging.StreamHandler(sys.stderr))
    made_before.propagate = False
    with library_log.into(sys.argv[1]):
        print("stage: our own line")
        logging.getLogger("torchao").warning("Failed to load _C_mxfp8.so")  # no handler: logging's last resort
        during = logging.getLogger("torch.utils._pytree")  # a handler made at import, inside the stage
        during.addHandler(logging.StreamHandler(sys.stderr))
        during.propagate = False
        during.warning("register_constant() is deprecated")
        out = logging.getLogger("DeepSpeed")
        out.addHandler(logging.StreamHandler(sys.stdout))
        out.propagate = False
        out.warning("Setting accelerator to CPU")
        made_before.warning("a notice from before")
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)
        made_before.error("the library failed: disk full")
    made_before.warning("after the stage")
    """
)


def test_library_notices_go_to_the_log_and_errors_stay_on_the_terminal(tmp_path):
    log = tmp_path / "merge.log"
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", CHILD, str(log)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "stage: our own line\n"
    assert proc.stderr == "the library failed: disk full\nafter the stage\n"
    text = log.read_text()
    for line in (
        "WARNING torchao: Failed to load _C_mxfp8.so",
        "WARNING torch.utils._pytree: register_constant() is deprecated",
        "WARNING DeepSpeed: Setting accelerator to CPU",
        "WARNING lib.before: a notice from before",
        "DeprecationWarning: an old API",
    ):
        assert line in text, (line, text)
    assert "disk full" not in text and "after the stage" not in text


def test_a_stage_that_prints_nothing_leaves_no_log(tmp_path):
    from iris_recipes import library_log

    with library_log.into(tmp_path / "card.log"):
        pass
    assert not (tmp_path / "card.log").exists()
