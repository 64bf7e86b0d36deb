"""The strict YAML reader: documents built from libyaml's events equal those PyYAML's safe loader
builds from the node graph (same values, same types), and every limit holds on both paths."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.errors import InputError
from dosewise.yamlread import MAX_YAML_DEPTH, MAX_YAML_NODES, _read_events, _StrictLoader, read_yaml

SCALARS = """a: 1
b: 0o17
c: 017
d: 0x1F
e: 1_000
f: 1:30
g: -0
h: +5
i: 1.5e+3
j: .inf
k: -.NaN
l: 1.
m: 6.8523015e+5
n: 685.230_15e+03
o: 190:20:30.15
p: yes
q: No
r: ~
s: null
t: ''
u:
v: 2021-03-01
w: 2001-12-14t21:59:43.10-05:00
x: !!str 12
y: !!binary aGVsbG8=
z: '12'
aa: "yes"
3: one
2.5: x
false: t
~: n
2021-01-01: d
bb: 1.5e5
cc: [KEN, NGA, ON, Off, 12, "13", 1e3]
"""


def reference(text: str) -> Any:
    """What PyYAML's safe loader (with duplicate keys refused) gives, through the node graph."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def typed(x: Any) -> Any:
    """Values with their types, so 1, 1.0 and True never compare equal."""
    if isinstance(x, dict):
        return {(type(k).__name__, repr(k)): typed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [typed(v) for v in x]
    return type(x).__name__, repr(x)


def from_events(text: str) -> Any:
    loader = _StrictLoader(text)
    try:
        return _read_events(loader, None)
    finally:
        loader.dispose()


@pytest.mark.parametrize("text", [SCALARS, "- [1, 2, {a: b}]\n- {}\n- []\n- - - x\n", "just a scalar", "123",
                                  "---\na: 1\n...\n", "a: 'x'\nb: \"y\"\nc: |\n  block\nd: >\n  folded\n"])
def test_event_reader_gives_what_the_safe_loader_gives(text: str) -> None:
    assert typed(from_events(text)) == typed(reference(text))
    assert typed(read_yaml(text)) == typed(reference(text))


def test_the_types_a_scenario_relies_on() -> None:
    data = from_events(SCALARS)
    assert data["v"] == dt.date(2021, 3, 1) and data["b"] == "0o17" and data["c"] == 15 and data["f"] == 90
    assert data["p"] is True and data["u"] is None and data["bb"] == "1.5e5" and data["x"] == "12"
    assert data["cc"] == ["KEN", "NGA", True, False, 12, "13", "1e3"]


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(), inner,
                                                                 max_size=4),
    max_leaves=20))
@settings(max_examples=150, deadline=None)
def test_any_dumped_document_reads_back_the_same_on_both_paths(data: Any) -> None:
    for style in (False, None, True):
        text = yaml.safe_dump(data, default_flow_style=style, allow_unicode=True)
        assert typed(read_yaml(text)) == typed(reference(text))


@pytest.mark.parametrize("text", ["a: &x 1\nb: *x\n", "a: {<<: {b: 1}, c: 2}\n", "!!set {a, b}\n",
                                  "!!omap [a: 1, b: 2]\n"])
def test_anchors_merges_and_tagged_collections_take_the_node_path(text: str) -> None:
    assert typed(read_yaml(text)) == typed(reference(text))


@pytest.mark.parametrize(("text", "needle"), [
    ("a: 1\n---\nb: 2\n", "another document"),
    ("? [a]\n: b\n", "unhashable"),
    ("=: 3\n", "could not determine a constructor"),
    ("units:\n  - {id: U1, population: 5}\n  - {id: U2, population: 6, id: U3}\n", "duplicate key 'id'"),
    ("a: 1\nb: 2\n1: x\ntrue: y\n", "duplicate key True"),
    ("a: [1, 2\n", "not valid YAML at line 2"),
])
def test_errors_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=None) as exc:
        read_yaml(text, file="s.yaml")
    assert needle in str(exc.value) and "s.yaml" in str(exc.value)


@pytest.mark.parametrize("text", ["v: 2021-02-30\n", "a: &x 2021-02-30\nb: *x\n"])
def test_a_date_that_does_not_exist_stays_text_on_both_paths(text: str) -> None:
    """The scenario's field validation then names the field and the value (not the YAML reader)."""
    assert set(read_yaml(text, file="s.yaml").values()) == {"2021-02-30"}


def test_a_duplicate_key_names_its_line() -> None:
    text = "units:\n" + "".join(f"  - {{id: U{i}, population: 5}}\n" for i in range(100)) + "  - {id: X, id: Y}\n"
    with pytest.raises(InputError, match="line 102"):
        read_yaml(text)


@pytest.mark.parametrize("inner", ["", "1", "{a: 1}"])
def test_depth_limit_is_the_same_on_both_paths(inner: str) -> None:
    def nested(levels: int) -> str:
        # `levels` counts the collections and the value inside the innermost (as the node walk does)
        extra = 0 if inner == "" else (1 if inner == "1" else 2)
        n = levels - extra
        return "[" * n + inner + "]" * n

    assert read_yaml(nested(MAX_YAML_DEPTH)) is not None
    with pytest.raises(InputError, match="nested more than"):
        read_yaml(nested(MAX_YAML_DEPTH + 1))
    with pytest.raises(InputError, match="nested more than"):
        read_yaml("a: &x 1\nb: " + nested(MAX_YAML_DEPTH + 1))  # the node path, through the anchor


def test_value_limit_counts_keys_and_values() -> None:
    n = MAX_YAML_NODES // 2  # a mapping of n pairs is 2n + 1 values
    with pytest.raises(InputError, match="values once aliases are expanded"):
        read_yaml("{" + ", ".join(f"{i}: 0" for i in range(n)) + "}")
    assert len(read_yaml("{" + ", ".join(f"{i}: 0" for i in range(n - 1)) + "}")) == n - 1


def test_alias_bomb_is_refused() -> None:
    text = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True))
    with pytest.raises(InputError, match="aliases are expanded"):
        read_yaml(text)
