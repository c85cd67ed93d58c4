"""YAML loading that remembers where every key is, so errors can say `FILE:LINE:COL`.

A recipe (or a dataset entry) may come from anyone, so reading one is bounded before any Python object is built:
the text's size, how deep it nests, and how many values it expands to once aliases are followed (a few lines of
nested aliases otherwise expand to billions of values). Nodes are composed in Python over libyaml's events so the
limits apply while composing; libyaml's own composer recurses in C and crashes on deep nesting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

try:  # libyaml's parser is ~10x faster; fall back to pure Python where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader

MAX_BYTES = 1 << 20  # a recipe is a few KB
MAX_DEPTH = 64  # nesting levels; recipes use fewer than 10
MAX_VALUES = 20_000  # values once aliases are expanded; recipes hold a few hundred
INT_BITS = 64  # integers must fit a signed 64-bit value (every consumer, Axolotl and torch included)


class LimitError(yaml.MarkedYAMLError):
    """Valid YAML that this loader refuses to build (too deep, too many values, a recursive alias...)."""


class RecipeLoader(Composer, _Loader):
    """Safe loader with limits; also reads YAML 1.2 floats like `5e-5` as numbers (YAML 1.1 makes them strings)."""

    def __init__(self, stream):
        _Loader.__init__(self, stream)
        Composer.__init__(self)
        self._depth = 0
        self._values = 0
        self._expands_to: dict[str, int] = {}  # anchor -> values the aliased node stands for
        self._open: set[str] = set()  # anchors of collections still being composed

    def _count(self, n: int, mark) -> None:
        self._values += n
        if self._values > MAX_VALUES:
            raise LimitError(
                None,
                None,
                f"the document holds more than {MAX_VALUES} values once its aliases "
                "(*name) are expanded; a recipe holds a few hundred",
                mark,
            )

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise LimitError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a node that contains it "
                    "(a structure that never ends); write the value out instead",
                    event.start_mark,
                )
            self._count(self._expands_to.get(event.anchor, 0), event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise LimitError(
                None, None, f"nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep", event.start_mark
            )
        anchor = event.anchor
        start = self._values
        self._count(1, event.start_mark)
        self._depth += 1
        if anchor:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)
        if anchor:
            self._expands_to[anchor] = self._values - start
        return node

    def construct_object(self, node, deep=False):
        # A bad value under an explicit tag (`!!int abc`, `!!timestamp x`) makes PyYAML's constructors raise
        # plain Python errors; report them where the value is.
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception:
            text = node.value if isinstance(node.value, str) else ""
            shown = text if len(text) <= 40 else text[:37] + "..."
            tag = node.tag.removeprefix("tag:yaml.org,2002:")
            raise ConstructorError(None, None, f"{shown!r} is not a valid !!{tag} value", node.start_mark) from None

    def construct_yaml_int(self, node):
        text = str(node.value)
        if len(text.lstrip("+-").replace("_", "")) > 40:  # Python refuses ints of 4,300+ digits; far past 64 bits
            raise LimitError(
                None,
                None,
                f"integer of {len(text)} characters is out of range (at most {INT_BITS} bits)",
                node.start_mark,
            )
        value = super().construct_yaml_int(node)
        if not -(1 << (INT_BITS - 1)) <= value < 1 << INT_BITS:
            raise LimitError(None, None, f"integer {value} is out of range (at most {INT_BITS} bits)", node.start_mark)
        return value


RecipeLoader.add_constructor("tag:yaml.org,2002:int", RecipeLoader.construct_yaml_int)
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def parse_value(text: str):
    """One YAML scalar or flow value, as an override gives it (the same limits as a file)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise LimitError(None, None, f"the value is longer than {MAX_BYTES // 1024} KiB", None)
    loader = RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


KeyPath = tuple  # ("train", "learning_rate"), ("export", "quantize", 0)


@dataclass(frozen=True)
class Pos:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


class YamlProblem(Exception):
    def __init__(self, pos: Pos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """The message of a YAML error without its position (the caller says where)."""
    if isinstance(exc, LimitError):
        return exc.problem
    if isinstance(exc, yaml.MarkedYAMLError):
        return f"invalid YAML: {exc.problem or exc.context}"
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"invalid YAML: character U+{code:04X}: {exc.reason}"
    return f"invalid YAML: {exc}"


def _position(exc: yaml.YAMLError, text: str, file: str) -> Pos:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 0, 0)
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, other controls)
        return _offset_pos(text, exc.position, file)
    return Pos(file, 0, 0)


def _offset_pos(text: str, offset: int, file: str) -> Pos:
    line = text.count("\n", 0, offset) + 1
    return Pos(file, line, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def load_with_positions(text: str, file: str) -> tuple[Any, dict[KeyPath, Pos]]:
    """Parse one YAML document; return the data and a map key path -> position of that key (or item)."""
    if len(text) > MAX_BYTES:
        raise YamlProblem(Pos(file, 0, 0), f"larger than {MAX_BYTES // 1024} KiB; a recipe is a few KB")
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
        positions: dict[KeyPath, Pos] = {(): Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)}
        _walk(node, (), file, positions, loader)
    except yaml.YAMLError as exc:
        raise YamlProblem(_position(exc, text, file), yaml_error_text(exc)) from None
    finally:
        loader.dispose()
    return data, positions


def _walk(node: yaml.Node, path: KeyPath, file: str, out: dict[KeyPath, Pos], loader: RecipeLoader) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, Pos] = {}
        for key_node, value_node in node.value:
            # the key as the data holds it (`1:` is the int 1, `~:` is None), so a problem's path finds its position
            key = (
                loader.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            )
            pos = Pos(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                raise YamlProblem(
                    pos,
                    f"{'.'.join(map(str, path + (key,)))}: duplicate key (first at line {seen[key].line}); keep one",
                )
            seen[key] = pos
            out[path + (key,)] = pos
            _walk(value_node, path + (key,), file, out, loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = Pos(file, item.start_mark.line + 1, item.start_mark.column + 1)
            _walk(item, path + (i,), file, out, loader)


def read_text_bounded(path: Path, what: str = "recipe") -> str:
    """A file's UTF-8 text, refusing files over MAX_BYTES; problems are YamlProblems located in the file."""
    if path.exists() and not path.is_file():  # a folder, or a pipe that would block the read
        raise YamlProblem(Pos(str(path), 0, 0), f"not a {what} file (a regular file holding YAML)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise YamlProblem(Pos(str(path), 0, 0), "file not found") from None
    except (OSError, ValueError) as exc:
        raise YamlProblem(Pos(str(path), 0, 0), f"cannot read {what}: {_short(exc)}") from None
    if len(raw) > MAX_BYTES:
        raise YamlProblem(Pos(str(path), 0, 0), f"larger than {MAX_BYTES // 1024} KiB; a {what} is a few KB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem(
            Pos(str(path), line, col), f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, Pos]]:
    return load_with_positions(read_text_bounded(path), str(path))
