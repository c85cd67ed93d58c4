#!/usr/bin/env python3
"""Regenerate the sections of benchmarks/RESULTS.md from their scripts.

    python benchmarks/run_all.py --list                    # every section: its script and the command that makes it
    python benchmarks/run_all.py --only validate,export    # rerun those sections' scripts, replace those sections
    python benchmarks/run_all.py [--quick]                 # every scripted section, in the registry's order

The sections and their scripts are listed in benchmarks/sections.yaml. In RESULTS.md each section sits between
`<!-- section: NAME -->` and `<!-- /section: NAME -->`; a run replaces what is between one section's markers with
its script's Markdown (stdout) and a stamp (commit, date, CPU, native bf16, threads, the command), and leaves every
other line of the file as it was. A section the registry does not list is a historical record (a one-off experiment
no script reproduces), marked as such in its text: it is never rewritten. A script that fails leaves its section as
it was. Figures drift up to ~25% between runs on shared machines: compare ratios measured side by side in one
section, not absolute times across sections.

Exit status: 0 done, 1 a script failed, 2 a bad request (an unknown or historical section, a malformed registry or
RESULTS.md).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import REPO, STAMP_LINE, Stamp  # noqa: E402

REGISTRY = HERE / "sections.yaml"
RESULTS = HERE / "RESULTS.md"
MARKER = re.compile(r"^<!--\s*(/?)section:\s*(\S+)\s*-->\s*$")
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# The words a section the registry does not list must carry, with the commit and command it came from.
HISTORICAL = "Historical record, not regenerated"


class Refused(Exception):
    """A bad request or a malformed file: said in one located line, exit 2."""


@dataclass(frozen=True)
class Section:
    name: str
    script: Path
    args: tuple[str, ...]
    about: str

    def argv(self, quick: bool) -> list[str]:
        return [sys.executable, str(self.script), *self.args, *(["--quick"] if quick else [])]


@dataclass
class Block:
    """One section as it stands in RESULTS.md: lines[begin] is its opening marker, lines[end] its closing one."""

    name: str
    begin: int
    end: int

    def body(self, lines: list[str]) -> str:
        return "".join(lines[self.begin + 1 : self.end])


def shown(path: Path) -> str:
    """A path as a command line in the repository's root would give it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def load_registry(path: Path) -> dict[str, Section]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise Refused(f"{path}: cannot read the section registry ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise Refused(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise Refused(f"{path}: expected a mapping of section name -> {{script, args, about}}")
    sections = {}
    for name, entry in data.items():
        where = f"{path}: section {name!r}"
        if not isinstance(name, str) or not NAME.match(name):
            raise Refused(f"{where}: a name is lower-case letters, digits, '.' and '-'")
        if not isinstance(entry, dict) or not isinstance(entry.get("script"), str):
            raise Refused(f"{where}: needs `script` (a file beside the registry)")
        unknown = set(entry) - {"script", "args", "about"}
        if unknown:
            raise Refused(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: script, args, about)")
        args = entry.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
            raise Refused(f"{where}: `args` must be a list of strings")
        script = path.parent / entry["script"]
        if not script.is_file():
            raise Refused(f"{where}: script {shown(script)} does not exist")
        sections[name] = Section(name, script, tuple(str(a) for a in args), str(entry.get("about") or ""))
    return sections


def parse(path: Path, lines: list[str]) -> dict[str, Block]:
    """The sections of RESULTS.md by name; markers must pair up, one section at a time, each name once."""
    blocks: dict[str, Block] = {}
    open_: Block | None = None
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            if "section:" in line and line.lstrip().startswith("<!--"):
                raise Refused(f"{path}:{i + 1}: malformed section marker (expected `<!-- section: NAME -->`)")
            continue
        closing, name = m.group(1) == "/", m.group(2)
        if not NAME.match(name):
            raise Refused(f"{path}:{i + 1}: section name {name!r}: use lower-case letters, digits, '.' and '-'")
        if not closing:
            if open_ is not None:
                raise Refused(
                    f"{path}:{i + 1}: section {name!r} opens inside {open_.name!r} (opened at line {open_.begin + 1})"
                )
            if name in blocks:
                raise Refused(f"{path}:{i + 1}: section {name!r} again (first at line {blocks[name].begin + 1})")
            open_ = Block(name, i, -1)
        else:
            if open_ is None or open_.name != name:
                raise Refused(f"{path}:{i + 1}: closing marker of {name!r} without its opening marker")
            open_.end = i
            blocks[name] = open_
            open_ = None
    if open_ is not None:
        raise Refused(f"{path}:{open_.begin + 1}: section {open_.name!r} is never closed")
    return blocks


def read_results(path: Path) -> tuple[list[str], dict[str, Block]]:
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise Refused(f"{path}: cannot read ({exc.strerror})") from None
    return lines, parse(path, lines)


def check_historical(path: Path, lines: list[str], blocks: dict[str, Block], sections: dict[str, Section]) -> None:
    for b in blocks.values():
        if b.name not in sections and HISTORICAL not in b.body(lines):
            raise Refused(
                f"{path}:{b.begin + 1}: section {b.name!r} has no script in the registry and is not marked "
                f'"{HISTORICAL}" (with the commit and command it came from)'
            )


def command(name: str, quick: bool, registry: Path, results: Path) -> str:
    """The command that regenerates section `name`, as a user types it in the repository's root."""
    parts = ["python", shown(Path(__file__)), "--only", name]
    if registry.resolve() != REGISTRY:
        parts += ["--registry", shown(registry)]
    if results.resolve() != RESULTS:
        parts += ["--results", shown(results)]
    return shlex.join(parts + (["--quick"] if quick else []))


def list_sections(sections: dict[str, Section], lines, blocks, registry: Path, results: Path) -> None:
    print(f"Sections of {shown(results)} (scripts: {shown(registry)}):\n")
    for s in sections.values():
        if s.name not in blocks:
            state = "not in the file yet: a run appends it"
        elif m := STAMP_LINE.search(blocks[s.name].body(lines)):
            state = f"line {blocks[s.name].begin + 1}; made {m['date']} UTC at {m['commit']} in {m['seconds']} s"
        else:
            state = f"line {blocks[s.name].begin + 1}; not made by run_all.py yet"
        print(f"{s.name}  [{state}]")
        if s.about:
            print(f"    {s.about}")
        print(f"    script:  {shlex.join(['python', shown(s.script), *s.args])}")
        print(f"    command: {command(s.name, False, registry, results)}")
    history = [b for b in blocks.values() if b.name not in sections]
    if history:
        print("\nHistorical records (no script; run_all.py never rewrites them):\n")
        for b in history:
            title = next((ln.lstrip("#").strip() for ln in lines[b.begin + 1 : b.end] if ln.startswith("#")), "")
            print(f"{b.name}  [line {b.begin + 1}]" + (f"  {title}" if title else ""))


def replace(path: Path, name: str, text: str) -> None:
    """Put `text` between section `name`'s markers (appending the section when the file lacks it), reading the file
    afresh so that edits made while the script ran are kept; written whole or not at all."""
    lines, blocks = read_results(path)
    body = text.rstrip("\n") + "\n"
    if name in blocks:
        b = blocks[name]
        lines[b.begin + 1 : b.end] = [body]
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["\n", f"<!-- section: {name} -->\n", body, f"<!-- /section: {name} -->\n"]
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("".join(lines))
    tmp.replace(path)


def section_text(output: str, stamp: str) -> str:
    """The script's Markdown with the stamp after its first heading (or first, when it starts with none)."""
    out = output.strip("\n").splitlines()
    if out and out[0].startswith("#"):
        return "\n".join([out[0], "", stamp, *out[1:]])
    return "\n".join([stamp, "", *out])


def run_section(s: Section, quick: bool, registry: Path, results: Path) -> bool:
    argv = s.argv(quick)
    script_cmd = shlex.join(["python", shown(s.script), *argv[2:]])
    stamp = Stamp.now(s.name, command(s.name, quick, registry, results), script_cmd, results)
    print(f"==> {s.name}: {script_cmd}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"{s.name}: {script_cmd} failed (exit {proc.returncode}); section left as it was", file=sys.stderr)
        return False
    if not proc.stdout.strip():
        print(f"{s.name}: {script_cmd} printed nothing; section left as it was", file=sys.stderr)
        return False
    if any(MARKER.match(line) for line in proc.stdout.splitlines()):
        print(f"{s.name}: {script_cmd} printed a section marker; section left as it was", file=sys.stderr)
        return False
    try:
        replace(results, s.name, section_text(proc.stdout, stamp.markdown(took)))
    except Refused as exc:  # the file was changed into a malformed one while the script ran
        print(f"{s.name}: not written: {exc}", file=sys.stderr)
        return False
    print(f"{s.name}: replaced in {shown(results)} ({took:.0f} s)", file=sys.stderr)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", metavar="NAME[,NAME...]", help="the sections to regenerate (default: every one)")
    ap.add_argument("--list", action="store_true", help="list the sections, their scripts and commands, and exit")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (passed to every script; said in the stamp)")
    ap.add_argument("--registry", type=Path, default=REGISTRY, help="the section registry (default: %(default)s)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the file of sections (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        sections = load_registry(args.registry)
        lines, blocks = read_results(args.results)
        check_historical(args.results, lines, blocks, sections)
        if args.list:
            list_sections(sections, lines, blocks, args.registry, args.results)
            return 0
        wanted = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(sections)
        for name in wanted:
            if name in blocks and name not in sections:
                raise Refused(
                    f"section {name!r} ({shown(args.results)}:{blocks[name].begin + 1}) is a historical record: no "
                    "script makes it, and run_all.py does not rewrite it"
                )
            if name not in sections:
                raise Refused(f"unknown section {name!r}; sections with a script: {', '.join(sections)}")
        if not wanted:
            raise Refused("--only: give at least one section name")
    except Refused as exc:
        print(f"run_all.py: {exc}", file=sys.stderr)
        return 2
    failed = []
    for name in dict.fromkeys(wanted):  # each once, in the order asked
        if not run_section(sections[name], args.quick, args.registry, args.results):
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)} (their sections are unchanged)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
