"""benchmarks/run_all.py: one section's script reruns and replaces exactly that section of the results file, with
its stamp; bad requests exit 2 and change nothing; the real registry and benchmarks/RESULTS.md agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from iris_recipes.hostinfo import cpu_count, cpu_description

REPO = Path(__file__).resolve().parents[2]
RUN_ALL = REPO / "benchmarks" / "run_all.py"

FAKE_BENCH = """
import sys
value = sys.argv[sys.argv.index("--value") + 1]
if value == "fail":
    sys.exit(3)
print("## Fake figures\\n")
print(f"value {value}" + (" (quick)" if "--quick" in sys.argv else ""))
"""

REGISTRY = {
    "fake": {"script": "bench_fake.py", "args": ["--value", "7"], "about": "a fake benchmark"},
    "other": {"script": "bench_fake.py", "args": ["--value", "8"]},
    "broken": {"script": "bench_fake.py", "args": ["--value", "fail"]},
}

BEFORE = """# Results

Intro text, kept as it is.

<!-- section: fake -->
## Fake figures

old value 1
<!-- /section: fake -->

Text between two sections, kept.

<!-- section: other -->
old other
<!-- /section: other -->

<!-- section: old-study -->
**Historical record, not regenerated:** measured at commit abc1234 by `python old.py`.
<!-- /section: old-study -->

<!-- section: broken -->
old broken
<!-- /section: broken -->
Trailing text without a newline"""


def bench_dir(tmp_path: Path, registry: dict = REGISTRY, results: str = BEFORE) -> tuple[Path, Path]:
    (tmp_path / "bench_fake.py").write_text(FAKE_BENCH)
    (tmp_path / "sections.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    (tmp_path / "RESULTS.md").write_text(results)
    return tmp_path / "sections.yaml", tmp_path / "RESULTS.md"


def run_all(registry: Path, results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN_ALL), "--registry", str(registry), "--results", str(results), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def around(text: str, name: str) -> tuple[str, str]:
    """The text before section `name`'s opening marker (included) and after its closing marker (included)."""
    start = text.index(f"<!-- section: {name} -->\n") + len(f"<!-- section: {name} -->\n")
    end = text.index(f"<!-- /section: {name} -->")
    return text[:start], text[end:]


def test_only_replaces_that_section_and_stamps_it(tmp_path):
    registry, results = bench_dir(tmp_path)
    proc = run_all(registry, results, "--only", "fake")
    assert proc.returncode == 0, proc.stderr
    after = results.read_text()
    assert around(after, "fake") == around(BEFORE, "fake")  # every byte outside the section, trailing text too
    body = after.split("<!-- section: fake -->\n", 1)[1].split("<!-- /section: fake -->", 1)[0]
    assert "old value 1" not in body and "value 7\n" in body
    assert body.startswith("## Fake figures\n\n> Section `fake`: ")  # the stamp under the script's heading

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    stamp = re.search(r"^> Section `fake`: `(.+?)` \(runs `(.+?)`, \d+ s\) at (\S+), (\S+ \S+) UTC\.$", body, re.M)
    assert stamp, body
    command, script, commit, _date = stamp.groups()
    assert command == f"python benchmarks/run_all.py --only fake --registry {registry} --results {results}"
    assert script == f"python {tmp_path}/bench_fake.py --value 7"
    assert re.fullmatch(re.escape(head.stdout.strip()) + r"(\+dirty)?", commit)
    assert f"> CPU: {cpu_description()}; native bf16: " in body
    assert f"; {cpu_count()} threads" in body and " at the start. Python " in body

    # Again: the section is replaced, not nested or repeated; --quick reaches the script and the command.
    proc = run_all(registry, results, "--only", "fake", "--quick")
    assert proc.returncode == 0, proc.stderr
    again = results.read_text()
    assert again.count("<!-- section: fake -->") == 1 and again.count("> Section `fake`") == 1
    assert "value 7 (quick)" in again and "--only fake --registry" in again and "--quick`" in again
    assert around(again, "fake") == around(BEFORE, "fake")


def test_unknown_or_historical_section_is_refused_with_exit_2(tmp_path):
    registry, results = bench_dir(tmp_path)
    proc = run_all(registry, results, "--only", "fake,nope")
    assert proc.returncode == 2
    assert "unknown section 'nope'" in proc.stderr and "fake, other, broken" in proc.stderr
    proc = run_all(registry, results, "--only", "old-study")
    assert proc.returncode == 2
    assert f"{results}:17" in proc.stderr and "historical record" in proc.stderr
    assert results.read_text() == BEFORE  # nothing ran, nothing written


def test_list_names_every_section_its_script_and_command(tmp_path):
    registry, results = bench_dir(tmp_path)
    proc = run_all(registry, results, "--list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "fake  [line 5; not made by run_all.py yet]" in out
    assert "    a fake benchmark" in out
    assert f"    script:  python {tmp_path}/bench_fake.py --value 7" in out
    assert f"    command: python benchmarks/run_all.py --only fake --registry {registry} --results {results}" in out
    assert f"    script:  python {tmp_path}/bench_fake.py --value 8" in out
    assert out.index("Historical records") < out.index("old-study  [line 17]")
    assert run_all(registry, results, "--only", "other").returncode == 0
    listed = run_all(registry, results, "--list").stdout
    assert re.search(r"other  \[line 13; made \d{4}-\d\d-\d\d \d\d:\d\d UTC at \S+ in \d+ s\]", listed), listed


def test_a_failing_script_leaves_its_section_as_it_was(tmp_path):
    registry, results = bench_dir(tmp_path)
    proc = run_all(registry, results, "--only", "broken,other")
    assert proc.returncode == 1
    assert "broken" in proc.stderr and "failed (exit 3)" in proc.stderr
    after = results.read_text()
    assert "old broken" in after and "value 8" in after  # the other section still made


def test_malformed_results_are_located_errors(tmp_path):
    registry, results = bench_dir(tmp_path, results=BEFORE.replace("<!-- /section: other -->\n", ""))
    proc = run_all(registry, results, "--only", "fake")
    assert proc.returncode == 2
    assert f"{results}:" in proc.stderr and "opens inside 'other'" in proc.stderr

    registry, results = bench_dir(tmp_path, results=BEFORE.replace("**Historical record, not regenerated:** ", ""))
    proc = run_all(registry, results, "--list")
    assert proc.returncode == 2
    assert f"{results}:17: section 'old-study' has no script" in proc.stderr

    registry, results = bench_dir(tmp_path, {"fake": {"script": "bench_missing.py"}})
    proc = run_all(registry, results, "--list")
    assert proc.returncode == 2 and "section 'fake': script" in proc.stderr and "does not exist" in proc.stderr


def test_a_section_missing_from_the_file_is_appended(tmp_path):
    registry, results = bench_dir(tmp_path, results="# Results\n\nNothing yet.\n")
    proc = run_all(registry, results, "--only", "other")
    assert proc.returncode == 0, proc.stderr
    after = results.read_text()
    assert after.startswith("# Results\n\nNothing yet.\n\n<!-- section: other -->\n## Fake figures\n")
    assert after.endswith("value 8\n<!-- /section: other -->\n")


def test_the_real_registry_and_results_agree():
    """Every scripted section is in RESULTS.md, and every other section there is a historical record naming the
    commit and the command it came from."""
    proc = subprocess.run([sys.executable, str(RUN_ALL), "--list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "not in the file yet" not in proc.stdout
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    registry = yaml.safe_load((REPO / "benchmarks" / "sections.yaml").read_text())
    names = re.findall(r"^<!-- section: (\S+) -->$", text, re.M)
    for name in names:
        body = text.split(f"<!-- section: {name} -->\n", 1)[1].split(f"<!-- /section: {name} -->", 1)[0]
        if name not in registry:
            note = re.search(r"\*\*Historical record, not regenerated:\*\*([^\n]+)", body)
            assert note and re.search(r"commit [0-9a-f]{7}", note[1]) and "`" in note[1], name
