"""Bad recipes never crash, hang or run away with memory: they validate, or fail with exit 2 and located errors.

The first two tests mutate valid recipes and feed arbitrary text to the loader in this process. The rest generate
the hostile classes (deep nesting, recursive and exploding aliases, huge integers, bad tags, NaN and infinities,
unusable regexes, NUL bytes and over-long names in paths, endless extends chains) and run the real CLI in a
sandboxed child (time and memory limits, tests/cli_sandbox.py), asserting the exact location of each error, exit
code 2, and that nothing was written.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iris_recipes.errors import RecipeError
from iris_recipes.recipe import load_recipe
from iris_recipes.recipe.loader import resolve
from iris_recipes.recipe.merge import MAX_EXTENDS
from iris_recipes.recipe.schema import _resolve, load_schema
from iris_recipes.recipe.yamlpos import MAX_DEPTH, MAX_VALUES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_sandbox import tree  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EXAMPLES = int(os.environ.get("IRIS_FUZZ_EXAMPLES", 12))  # per hostile class; CI keeps it small, raise it to dig

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["q4_k_m", "lora", "cosine", "all-linear", "~", "{", "]"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated(draw):
    source = draw(st.sampled_from(RECIPES))
    data, _ = resolve(source)
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(values)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutations_validate_or_fail_cleanly(tmp_path, data):
    path = tmp_path / "mutant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        load_recipe(path)
    except RecipeError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(str(path)) or line.startswith("<override"), line
            assert ": " in line


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("t") / "r.yaml"
    path.write_text(text)
    try:
        load_recipe(path)
    except RecipeError as exc:
        assert all(line.startswith(str(path)) for line in exc.problems)


# -- hostile recipes, through the CLI in a sandbox -------------------------------------------------------------
BASE = "name: tiny\nbase_model: org/model\nchat_template: chatml\ndataset: {name: arith-steps}\ntrain: {max_steps: 3}\n"
BASE_LINES = BASE.count("\n")


class Case:
    """Files to write, command-line overrides, and the exact stderr lines `validate -q` must print."""

    def __init__(self, recipe: str, expected, *, overrides=(), files=None):
        self.recipe, self.expected, self.overrides, self.files = recipe, expected, list(overrides), files or {}

    def __repr__(self) -> str:  # hypothesis prints failing examples; keep them readable
        text = self.recipe if len(self.recipe) < 300 else self.recipe[:300] + f"... ({len(self.recipe)} chars)"
        return f"Case({text!r}, overrides={[o[:100] for o in self.overrides]})"


def pos(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def validate_case(sandbox, case: Case) -> None:
    """Write the case into a fresh folder, validate it in the sandbox, compare stderr line for line."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        root = Path(tmp).resolve()
        recipe = root / "r.yaml"
        recipe.write_text(case.recipe, encoding="utf-8")
        for name, text in case.files.items():
            (root / name).write_text(text, encoding="utf-8")
        before = tree(root)
        result = sandbox.run(["validate", "-q", str(recipe), *case.overrides], cwd=root, timeout=30)
        result.assert_clean_failure()
        expected = [line.replace("FILE", str(recipe)).replace("DIR", str(root)) for line in case.expected]
        assert result.problems() == expected, result.describe()
        assert tree(root) == before, "validate wrote files"


def nesting_case(kind: str, n: int) -> Case:
    """`n` levels of flow lists, flow mappings or block mappings under axolotl.x."""
    prefix = BASE + "axolotl:\n  x: "
    # the root mapping is level 1, axolotl: 2, x's value 3: the first node past MAX_DEPTH is opener MAX_DEPTH - 1
    if kind == "block":
        n = min(n, 400)  # block nesting grows quadratically in bytes; past 1 MiB the size limit speaks first
        head = prefix.rstrip(" ")
        text = head + "".join("\n" + "  " * (i + 2) + "a:" for i in range(n)) + " 1\n"
        at = len(head)
        for _ in range(MAX_DEPTH - 2):  # keys: the key of mapping k sits at level k + 1
            at = text.index("a:", at + 1)
    elif kind == "[":
        text = prefix + "[" * n + "1" + "]" * n + "\n"
        at = len(prefix) + MAX_DEPTH - 2
    else:  # in a mapping the key comes first: the key of mapping MAX_DEPTH - 2 is one level deeper
        text = prefix + "{a: " * n + "1" + "}" * n + "\n"
        at = len(prefix) + 4 * (MAX_DEPTH - 3) + 1
    return Case(text, [f"FILE:{pos(text, at)}: nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep"])


def override_label(item: str) -> str:
    return f"<override 1: {item if len(item) <= 80 else item[:77] + '...'}>"


def nesting_override(n: int) -> Case:
    """The same through an override: its value is a document of its own (the outer list is level 1)."""
    item = "axolotl.x=" + "[" * n + "1" + "]" * n
    return Case(
        BASE,
        [f"{override_label(item)}: axolotl.x: nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep"],
        overrides=[item],
    )


def key_path_override(n: int, depth: int) -> Case:
    """A key path of `n` keys whose value nests `depth` levels: the value must not land below level MAX_DEPTH."""
    dotted = "axolotl." + "a." * (n - 2) + "b"
    item = f"{dotted}=" + "[" * (depth - 1) + "1" + "]" * (depth - 1)
    shown = dotted if len(dotted) <= 60 else dotted[:57] + "..."
    return Case(
        BASE,
        [f"{override_label(item)}: {shown}: nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep"],
        overrides=[item],
    )


@st.composite
def deep_key_path(draw):
    n = draw(st.integers(2, 20_000))
    depth = draw(st.integers(max(1, MAX_DEPTH + 1 - n), MAX_DEPTH))
    return key_path_override(n, depth)


# Flow or block nesting past MAX_DEPTH, up to the sizes that crashed libyaml's composer (50,000+ levels).
_levels = st.one_of(st.integers(MAX_DEPTH, 3000), st.sampled_from([60_000, 200_000]))
deep_nesting = st.one_of(
    st.builds(nesting_case, kind=st.sampled_from(["[", "{a: ", "block"]), n=_levels),
    st.builds(nesting_override, n=st.one_of(st.integers(MAX_DEPTH + 1, 3000), _levels)),
    deep_key_path(),
)


@st.composite
def recursive_alias(draw):
    """An alias inside the node its anchor names (`tags: &a [*a]`): a structure that never ends."""
    name = draw(st.text("abcxyz_", min_size=1, max_size=6))
    depth = draw(st.integers(0, 3))
    inner, close = "", ""
    for _ in range(depth):
        inner, close = inner + "[", close + "]"
    flow_map = draw(st.booleans())
    value = f"&{name} " + ("{k: " if flow_map else "[1, ") + inner + f"*{name}" + close + ("}" if flow_map else "]")
    message = (
        f"alias *{name} refers to a node that contains it (a structure that never ends); write the value out instead"
    )
    if draw(st.booleans()):
        item = f"card.tags={value}"
        return Case(BASE, [f"{override_label(item)}: card.tags: {message}"], overrides=[item])
    text = BASE + f"card:\n  tags: {value}\n"
    return Case(text, [f"FILE:{pos(text, text.index('*' + name))}: {message}"])


@st.composite
def alias_bomb(draw):
    """A billion laughs: each level holds `fan` aliases of the level before."""
    fan = draw(st.integers(2, 12))
    levels = max(2, math.ceil(math.log(MAX_VALUES * 2) / math.log(fan))) + draw(st.integers(0, 3))
    lines = [f"l0: &l0 [{', '.join(['x'] * fan)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]")
    text = "\n".join(lines) + "\n" + BASE
    # the loader counts values in document order: root 1, then per line a key, a list and its items
    total, size, where = 1, 0, None
    for i, line in enumerate(lines):
        start = text.index(line)
        total += 2
        for j in range(fan):
            total += 1 if i == 0 else size
            if total > MAX_VALUES:
                where = pos(text, start + line.index("[") + 1 + j * (len(f"*l{i - 1}, ") if i else 3))
                break
        if where:
            break
        size = 1 + fan * (1 if i == 0 else size)
    return Case(
        text,
        [
            f"FILE:{where}: the document holds more than {MAX_VALUES} values once its aliases (*name) "
            "are expanded; a recipe holds a few hundred"
        ],
    )


@st.composite
def huge_integer(draw):
    digits = draw(st.one_of(st.integers(41, 20_000), st.integers(20, 40)))
    value = draw(st.sampled_from(["", "-", "+"])) + "9" * digits
    if digits > 40:
        message = f"integer of {len(value)} characters is out of range (at most 64 bits)"
    else:  # 20+ nines are past 2**64 either way
        message = f"integer {int(value)} is out of range (at most 64 bits)"
    if draw(st.booleans()):  # in the file
        text = BASE + f"eval:\n  samples: {value}\n"
        return Case(text, [f"FILE:{pos(text, text.index(value, len(BASE)))}: {message}"])
    item = f"eval.samples={value}"
    return Case(BASE, [f"{override_label(item)}: eval.samples: {message}"], overrides=[item])


BAD_TAGS = [
    ("!!int abc", "'abc' is not a valid !!int value"),
    ("!!int 0x", "'0x' is not a valid !!int value"),
    ("!!float abc", "'abc' is not a valid !!float value"),
    ("!!timestamp x", "'x' is not a valid !!timestamp value"),
    ("!!timestamp 2024-13-45", "'2024-13-45' is not a valid !!timestamp value"),
    ("!!bool maybe", "'maybe' is not a valid !!bool value"),
    ("!!binary 'a=b'", "failed to decode base64 data: Incorrect padding"),
    ("!!set [1]", "expected a mapping node, but found sequence"),
    ("!foo bar", "could not determine a constructor for the tag '!foo'"),
    (
        "!!python/object:os.system {}",
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
    ),
]


@st.composite
def bad_tag(draw):
    token, message = draw(st.sampled_from(BAD_TAGS))
    if draw(st.booleans()):
        item = f"card.tags=[{token}]"
        return Case(BASE, [f"{override_label(item)}: card.tags: invalid YAML: {message}"], overrides=[item])
    where = draw(st.sampled_from(["card:\n  tags: [{}]\n", "eval:\n  samples: {}\n", "axolotl:\n  k:\n  - {}\n"]))
    text = BASE + where.format(token)
    return Case(text, [f"FILE:{pos(text, text.index(token, len(BASE)))}: invalid YAML: {message}"])


def _numeric_keys(schema=None, prefix=()):
    """Every number or integer key of the recipe schema (a new one is covered automatically)."""
    schema = _resolve(schema if schema is not None else load_schema())
    out = []
    parts = [schema, *[_resolve(p) for p in schema.get("allOf", [])]]
    for part in parts:
        for key, sub in part.get("properties", {}).items():
            if not isinstance(sub, dict):
                continue
            sub = _resolve(sub)
            if sub.get("type") in ("number", "integer"):
                out.append(prefix + (key,))
            elif sub.get("type") == "array" and _resolve(sub.get("items", {})).get("type") in ("number", "integer"):
                out.append(prefix + (key, 0))
            elif sub.get("type") == "array" and key == "mix":
                out += [p for p in _numeric_keys(sub["items"], prefix + (key, 0))]
            elif "properties" in sub or "allOf" in sub:
                out += _numeric_keys(sub, prefix + (key,))
    return list(dict.fromkeys(out))


NUMERIC_KEYS = _numeric_keys()
NON_FINITE = {
    ".nan": ".nan",
    ".NaN": ".nan",
    ".NAN": ".nan",
    ".inf": ".inf",
    ".Inf": ".inf",
    "+.inf": ".inf",
    "-.inf": "-.inf",
    "-.INF": "-.inf",
}


def test_numeric_keys_cover_the_schema():
    assert {
        ("train", "learning_rate"),
        ("train", "epochs"),
        ("dataset", "val_size"),
        ("eval", "seeds", 0),
        ("dataset", "mix", 0, "weight"),
        ("space", "temperature"),
    } <= set(NUMERIC_KEYS)


@st.composite
def non_finite(draw):
    """NaN or an infinity for any number the schema has, in the file or as an override."""
    key = draw(st.sampled_from(NUMERIC_KEYS))
    token = draw(st.sampled_from(sorted(NON_FINITE)))
    dotted = ".".join(map(str, key))
    message = f"{NON_FINITE[token]} is not a usable number; give a finite value"
    data = yaml.safe_load(BASE)
    if key[:2] == ("dataset", "mix"):
        data["dataset"]["mix"] = [{"name": "arith-steps", "weight": 1.0}]
    if draw(st.booleans()):
        node = data
        for k, nxt in zip(key[:-1], key[1:]):
            if isinstance(nxt, int):
                node = node.setdefault(k, [None])
            elif isinstance(node, list):
                node = node[k]
            else:
                node = node.setdefault(k, {})
        node[key[-1]] = "@VALUE@"
        text = yaml.safe_dump(data, sort_keys=False).replace("'@VALUE@'", token).replace("@VALUE@", token)
        at = text.index(token)
        line_start = text.rfind("\n", 0, at) + 1
        if isinstance(key[-1], int):  # a list item: located at the item
            where = pos(text, at)
        else:
            where = pos(text, line_start + len(text[line_start:at]) - len(text[line_start:at].lstrip(" -")))
        return Case(text, [f"FILE:{where}: {dotted}: {message}"])
    text = yaml.safe_dump(data, sort_keys=False)
    if isinstance(key[-1], int):
        item = f"{'.'.join(map(str, key[:-1]))}=[{token}]"
    else:
        item = f"{dotted}={token}"
    if key[:2] == ("dataset", "mix"):
        item, dotted = f"dataset.mix=[{{name: arith-steps, weight: {token}}}]", "dataset.mix.0.weight"
    return Case(text, [f"<override 1: {item}>: {dotted}: {message}"], overrides=[item])


@st.composite
def bad_regex(draw):
    kind = draw(st.sampled_from(["deep", "overflow", "digits"]))
    if kind == "deep":
        n = draw(st.integers(1000, 20_000))
        group = draw(st.sampled_from(["(", "(?:", "(?P<g>"]))
        regex, reason = group * n + "a" + ")" * n, "it nests groups too deeply"
        if group == "(?P<g>":
            regex = "".join(f"(?P<g{i}>" for i in range(n)) + "a" + ")" * n
    elif kind == "overflow":
        regex = f"a{{{draw(st.integers(2**32 - 1, 2**70))}}}"
        reason = "the repetition number is too large"
    else:  # a repeat count of thousands of digits: more than Python reads as an integer
        digits = draw(st.integers(4301, 50_000))
        number = str(draw(st.integers(1, 9))) + "0" * (digits - 1)
        regex = draw(st.sampled_from(["a{%s}", "a{%s,}", "a{1,%s}", "(ab){2,%s}?"])) % number
        reason = f"it holds a number of {digits:,} digits (a repeat count is at most 4,294,967,294)"
    head = BASE + "eval:\n  metrics: [format_regex]\n  "
    text = head + f"format_regex: '{regex}'\n"
    return Case(text, [f"FILE:{pos(text, len(head))}: eval.format_regex: not a usable regular expression: {reason}"])


def _describe(value: str) -> str:
    """How a schema error shows a value (json, cut at 40 characters)."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@st.composite
def bad_path(draw):
    """NUL bytes and over-long names in every path a recipe gives: extends, dataset path/name, mix."""
    flaw = draw(st.sampled_from(["nul", "long name", "long path"]))
    stem = draw(st.text("abcxyz", min_size=1, max_size=8))
    if flaw == "nul":
        value, problem = stem + "\0x", "contains a NUL character"
    elif flaw == "long name":
        value = stem + "a" * draw(st.integers(256, 4000))
        problem = "has a part longer than 255 bytes (the limit for one file name)"
    else:
        value, problem = "a/" * draw(st.integers(2049, 4000)) + stem, "is longer than 4096 bytes"
    where = draw(
        st.sampled_from(
            ["extends", "dataset.path", "dataset.name", "dataset.mix.0.path", "dataset.mix.0.name", "base_model"]
        )
    )
    field = where.rsplit(".", 1)[-1]
    suffix = {"extends": ".yaml", "path": ".jsonl", "name": "", "base_model": ""}[field]
    quoted = json.dumps(value + suffix)  # a YAML double-quoted scalar: \0 is the NUL character
    if where == "extends":
        text = f"extends: {quoted}\n" + BASE
        return Case(text, [f"FILE:1:1: extends: the path {problem}; give the relative path of a base recipe"])
    if where == "base_model":
        text = BASE.replace("org/model", quoted)
        return Case(
            text, [f"FILE:2:1: base_model: {problem}; give a hub id (org/name), a local directory or builtin:NAME"]
        )
    if field == "name" and flaw != "long name":  # the schema's name pattern refuses it first
        message = f"{_describe(value)} does not match ^[a-z0-9][a-z0-9._-]*$"
    elif field == "path":
        message = f"the path {problem}; give the path of a local data file"
    else:
        message = f"the name {problem}; give the name of a folder in datasets/"
    block = f"{field}: {quoted}" + (", format: messages" if field == "path" else "")
    if where.startswith("dataset.mix"):
        block = f"name: arith-steps, mix: [{{{block}, weight: 0.5}}]"
    text = BASE.replace("{name: arith-steps}", "{" + block + "}")
    return Case(text, [f"FILE:{pos(text, text.index(f'{field}: {quoted}'))}: {where}: {message}"])


@pytest.mark.parametrize("kind", ["[", "{a: ", "block"])
def test_nesting_that_crashed_libyaml(cli_sandbox, kind):
    validate_case(cli_sandbox, nesting_case(kind, 200_000))


@pytest.mark.parametrize(
    "strategy",
    [lambda: deep_nesting, recursive_alias, alias_bomb, huge_integer, bad_tag, non_finite, bad_regex, bad_path],
    ids=lambda s: s.__name__.replace("<lambda>", "deep_nesting"),
)
def test_hostile_recipes_fail_with_located_errors(cli_sandbox, strategy):
    @settings(FUZZ, max_examples=EXAMPLES)
    @given(case=strategy())
    def check(case):
        validate_case(cli_sandbox, case)

    check()


def test_extends_chain_of_1500_files(cli_sandbox, tmp_path):
    root = tmp_path.resolve()
    for i in range(1500):
        (root / f"f{i}.yaml").write_text(f"extends: f{i + 1}.yaml\n" if i < 1499 else BASE)
    before = tree(root)
    result = cli_sandbox.run(["validate", "-q", str(root / "f0.yaml")], cwd=root)
    result.assert_clean_failure()
    stop = MAX_EXTENDS - 1
    assert result.problems() == [
        f"{root}/f{stop}.yaml:1:1: extends: the chain is longer than {MAX_EXTENDS} files; "
        "extend a recipe nearer the base"
    ]
    assert tree(root) == before
    # a chain within the limit is fine
    (root / f"f{MAX_EXTENDS - 2}.yaml").write_text(BASE)
    assert cli_sandbox.run(["validate", "-q", str(root / "f0.yaml")], cwd=root).rc == 0


def test_limits_leave_real_recipes_room(tmp_path):
    """Just under each limit is a valid recipe: the limits refuse only what no recipe needs."""
    plain = tmp_path / "plain.yaml"
    plain.write_text(BASE)
    deepest = "axolotl." + "a." * (MAX_DEPTH - 3) + "b"  # MAX_DEPTH - 1 keys: a scalar value sits at MAX_DEPTH
    assert load_recipe(plain, [f"{deepest}=1"], check_data=False)
    with pytest.raises(RecipeError):
        load_recipe(plain, [f"{deepest}=[1]"], check_data=False)
    nest = "[" * (MAX_DEPTH - 3) + "1" + "]" * (MAX_DEPTH - 3)
    path = tmp_path / "r.yaml"
    path.write_text(
        BASE + f"axolotl:\n  x: {nest}\ncard:\n  tags: &t [a, b]\n  language: *t\neval:\n  samples: {2**63 - 1}\n"
    )
    recipe = load_recipe(path)
    assert recipe.get("card.language") == ["a", "b"] and recipe.get("eval.samples") == 2**63 - 1


def test_oversized_recipe_and_non_utf8(cli_sandbox, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "description: '" + "x" * (1 << 20) + "'\n")
    result = cli_sandbox.run(["validate", "-q", str(big)])
    result.assert_clean_failure()
    assert result.problems() == [f"{big}: larger than 1024 KiB; a recipe is a few KB"]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(BASE.encode() + b"description: caf\xe9\n")
    result = cli_sandbox.run(["validate", "-q", str(latin)])
    result.assert_clean_failure()
    assert result.problems() == [f"{latin}:{BASE_LINES + 1}:17: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


def test_nul_character_in_the_text(cli_sandbox, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE + "description: a\0b\n")
    result = cli_sandbox.run(["validate", "-q", str(path)])
    result.assert_clean_failure()
    assert result.problems() == [
        f"{path}:{BASE_LINES + 1}:15: invalid YAML: character U+0000: control characters are not allowed"
    ]


def test_symlink_loops_and_pipes(cli_sandbox, tmp_path):
    """Paths that make the file system raise (a symlink loop) or block (a pipe) are errors, not a traceback or a
    hang."""
    root = tmp_path.resolve()
    (root / "loop.jsonl").symlink_to("loop.jsonl")
    (root / "loop.yaml").symlink_to("loop.yaml")
    os.mkfifo(root / "pipe.yaml")
    data = root / "data.yaml"
    data.write_text(BASE.replace("{name: arith-steps}", "{path: loop.jsonl, format: messages}"))
    child = root / "child.yaml"
    child.write_text("extends: loop.yaml\n" + BASE)
    cases = {
        data: f"{data}:4:11: dataset.path: file not found: {root / 'loop.jsonl'} (paths are relative to the recipe "
        "file)",
        child: f"{child}:1:1: extends: {root / 'loop.yaml'} does not exist; the path is relative to {root}",
        root / "pipe.yaml": f"{root / 'pipe.yaml'}: not a recipe file (a regular file holding YAML)",
        root: f"{root}: not a recipe file (a regular file holding YAML)",
    }
    for path, expected in cases.items():
        result = cli_sandbox.run(["validate", "-q", str(path)], cwd=root, timeout=20)
        result.assert_clean_failure()
        assert result.problems() == [expected]
