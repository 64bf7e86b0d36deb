"""The Rust YAML reader (``yaml_rs``) behind :func:`dosewise.yamlread.read_yaml` is only an accelerator:
for every text it either declines (PyYAML reads it) or gives exactly the document PyYAML's strict
reader gives (same values, same types; ``1``, ``1.0`` and ``True`` told apart, NaN compared by
representation). The texts come from a grammar of the scalars, keys and layouts on which YAML 1.1
(PyYAML) and YAML 1.2 (yaml_rs) readers differ."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.core.test_yaml_reader import typed  # values with their types: 1, 1.0 and True told apart

from dosewise import yamlread
from dosewise.errors import InputError
from dosewise.yamlread import (
    _NO_FAST_RESULT,
    FAST_YAML_MIN_CHARS,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    _fast_screen,
    _read_fast,
    _screened_shapes,
    _surely_within_limits,
    _within_limits,
    read_yaml,
)

ROOT = Path(__file__).resolve().parents[2]


def pyyaml(text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What :func:`read_yaml` gives with the fast path switched off: the document, or the error."""
    with monkeypatch.context() as m:
        m.setattr(yamlread, "FAST_YAML_MIN_CHARS", math.inf)
        try:
            return read_yaml(text)
        except InputError as exc:
            return exc


def assert_pyyamls(document: Any, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast reader's ``document`` for ``text`` is the one PyYAML reads, types included (and PyYAML reads one)."""
    ref = pyyaml(text, monkeypatch)
    assert not isinstance(ref, InputError), f"read fast, refused by PyYAML ({ref}): {text!r}"
    assert typed(document) == typed(ref), text


def assert_same_or_declined(text: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """The fast reader declines ``text`` or gives what PyYAML gives; whether it took it."""
    fast = _read_fast(text, min_chars=0)
    if fast is _NO_FAST_RESULT:
        return False
    assert_pyyamls(fast, text, monkeypatch)
    shapes = _screened_shapes(text)
    assert shapes is not None
    if _surely_within_limits(text, shapes):  # the bound read from the text holds for the document
        assert _within_limits(fast), text
    return True


# --- a grammar of tricky YAML --------------------------------------------------------------------
NUMBERS = ["0", "1", "-1", "+1", "-0", "+0", "00", "01", "010", "08", "0o12", "0O12", "0x1F", "0X1f", "0b101",
           "1_000", "1__0", "0_1", "1e3", "1E3", "1e+3", "1.0e3", "1.0e+3", "1.0E+3", "1.e+3", "1.0e-05", "1e-07",
           ".5", "-.5", "+.5", "1.", "-1.", "00.5", "1.5", "-0.0", "0.", "1.0e+400", "-1.0e-400", "12:30",
           "1:2:3", "-1:30", "190:20:30.15", "1:30.5", ".inf", "-.inf", "+.inf", ".Inf", ".INF", ".NaN", ".nan",
           ".NAN", "nan", "NaN", "inf", "Infinity", "-inf", "123456789012345678", "1234567890123456789",
           "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809",
           "99999999999999999999.0", "1" * 5000, "1,5", "1,000", "100,000", "1 2", "0x", "0b", "1e", "12e",
           "1.2.3", "3.14159265358979323846", "6.8523015e+5", "685.230_15e+03", "1.5e5", "2e-3"]
WORDS = ["yes", "Yes", "YES", "yEs", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N",
         "true", "True", "TRUE", "tRue", "false", "False", "FALSE", "null", "Null", "NULL", "nULL", "~", "=", "<<",
         "-", "?", "x:y", "x: y", "x #c", "a#b", "100,000 units", "no doses", "on hold", "U0000001", "KEN",
         "mRNA-1273", "Ad26.COV2.S", "2021-03-01", "2021-02-30", "2021-3-1", "2021-03-01 x",
         "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-12-14T21:59:43Z", "Côte d'Ivoire",
         "é", "日本", "x\u2028y", "x\u2029y", "x\x85y", "\ufeffx", "a\tb", "x\u00a0", "\u00a0x", "x\u3000", "x\x7f",
         "x\x01", "&a x", "*a", "!!str 1", "!x y", "%x", "@x", "`x", "|", ">", "[]", "{}", "[ ]", "[1, 2]",
         "[1,010]", "{a: 1}", "{1: a, 1.0: b}", "x\r", "'x'", '"x"', "x'y", 'x"y', "a\\b", "a: b: c", "- x",
         "--- x", "... x", "#x", "x ", " x", "x  y", "", " ", "$x", "^x", "(x)", "a/b", "a+b", "_x", "e", "E"]
KEYS = ["a", "id", "population", "parent", "on", "no", "Y", "n", "true", "null", "~", "1", "1.0", "01", "0x1",
        "1e3", "2021-03-01", "<<", "=", "a b", "_x", "é", "'q'", '"q"', "'1'", "''", "? x", "[1, 2]", "a.b-c",
        "nan", ".nan", "-1", "+1", "True", "x:y"]


def quoted(s: str, style: int) -> str:
    if style == 0:
        return s
    if style == 1:
        return "'" + s.replace("'", "''") + "'"
    return json.dumps(s, ensure_ascii=style == 3)


scalars = st.one_of(
    st.tuples(st.sampled_from(NUMBERS + WORDS), st.sampled_from([0, 0, 0, 1, 2, 3])).map(lambda t: quoted(*t)),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: yaml.safe_dump(f).split("\n")[0]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=12).map(lambda s: quoted(s, 1)),
    st.text(max_size=12).map(lambda s: quoted(s, 2)),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), scalars)
plain_word = st.from_regex(r"[A-Za-z][A-Za-z0-9_.,()/+';$^ -]{0,10}", fullmatch=True)
safe_scalars = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats().map(lambda f: yaml.safe_dump(f).split("\n")[0]),
    plain_word, plain_word,
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cc", "Cs", "Zl", "Zp")),
            max_size=8).map(lambda s: quoted(s, 1)),
    st.sampled_from(["true", "False", "NULL", "~", "", "[]", "{}", "'2021-03-01'", "100,000 units", "no doses"]),
)
# mostly what the fast path takes, a tricky scalar now and then: the structure is what is tested
friendly_scalars = st.one_of(*[safe_scalars] * 8, scalars)
friendly_keys = st.one_of(*[st.from_regex(r"[a-z_][a-z0-9_.-]{0,6}", fullmatch=True)] * 8, keys)


@st.composite
def block(draw: st.DrawFn, depth: int = 0, indent: int = 0, friendly: bool = False) -> list[str]:
    """Lines of a block collection at ``indent``, with odd lines and indentation now and then."""
    scalars_ = friendly_scalars if friendly else scalars
    keys_ = friendly_keys if friendly else keys
    pad = " " * indent
    kind = draw(st.sampled_from(["map", "seq"] if depth < 3 else ["map-flat", "seq-flat"]))
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        comment = draw(st.sampled_from(["", "", "", "", "", "", " # note", "  #x:"] if friendly else
                                       ["", "", "", " # note", "  #x", "#x"]))
        trailing = draw(st.sampled_from(["", "", "", "", "", " "] if friendly else ["", "", " ", "\t"]))
        if kind.startswith("map"):
            key = draw(keys_)
            if kind == "map" and draw(st.booleans()):
                child_indent = indent + draw(st.sampled_from([2, 2, 4, 0, 1]))
                lines.append(f"{pad}{key}:{comment}")
                lines += draw(block(depth + 1, child_indent, friendly))
            else:
                lines.append(f"{pad}{key}: {draw(scalars_)}{trailing}{comment}")
        else:
            if kind == "seq" and draw(st.booleans()):
                inner = draw(block(depth + 1, indent + draw(st.sampled_from([2, 2, 3, 1])), friendly))
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {draw(scalars_)}{trailing}{comment}")
    if draw(st.integers(0, 49 if friendly else 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "---", "...", "%YAML 1.1", " "])))
    return lines


documents = block().map(lambda lines: "\n".join(lines) + "\n")
friendly_documents = block(friendly=True).map(lambda lines: "\n".join(lines) + "\n")


@given(documents)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(text="a: 1\nb: 22159.0\nc: '2021-03-01'\nd: 100,000 units\n")
def test_fast_reader_declines_or_gives_what_pyyaml_gives(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_or_declined(text, monkeypatch)


@given(friendly_documents)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_block_layouts_read_alike(text: str) -> None:
    """Mostly scalars the fast path takes, in nested block mappings and sequences, indented in
    several ways (some wrong), with comments and trailing blanks."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_or_declined(text, monkeypatch)


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5) | st.integers() | st.booleans(),
                                                                 inner, max_size=4),
    max_leaves=25), st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_dumped_document(data: Any, unicode: bool) -> None:
    """Whatever ``yaml.safe_dump`` writes (block style, as the benchmark's units are written)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_or_declined(yaml.safe_dump(data, allow_unicode=unicode, sort_keys=False), monkeypatch)


# --- each difference between the two readers declines ---------------------------------------------
@pytest.mark.parametrize("text", [
    "a: 1e3\n", "a: 1.0e3\n", "a: 0o12\n", "a: 12:30\n", "a: 2021-03-01\n", "a: 2021-02-30\n", "a: 010\n",
    "a: 08\n", "a: -.5\n", "a: +.5\n", "a: yes\n", "a: Off\n", "on: 1\n", "a: 'x'\nb: no\n", "{[1, 2]: x}\n",
    "a: 1\n---\nb: 2\n", "a: 1\na: 2\n", "a: {1: x, 1.0: y}\n", "a: x\u2028y\n", "a: x\x85y\n", "\ufeffa: 1\n",
    "a:\t1\n", "a: x\x7f\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "%YAML 1.1\n---\na: 1\n", "? a\n: b\n",
    "a: <<\n", "=: 3\n", "a: [1, 010]\n", "a: |\n  x\n", "a: 1\r\nb: 2\r\n", "a: 1_000\n", "a: .NaN\n",
    "- 2001-12-14 21:59:43.10 -5\n", "a: no \n", "a: 1" + "0" * 30 + "\n",
    # yaml_rs reads a plain scalar of digits with underscores before them as a number: {0: 1}, not {"_0": 1}
    "_0: 1\n", "__1: x\n", "_12_000: x\n", "_1.5: x\n", "_.5: x\n", "_1e3: x\n", "_1E3: x\n", "_1.: x\n",
    "a:\n  - _7: x\n",
])
def test_texts_the_readers_read_differently_are_declined(text: str) -> None:
    assert _read_fast(text, min_chars=0) is _NO_FAST_RESULT


@pytest.mark.parametrize("text", [
    "a: 1\nb: -2\nc: 22159.0\nd: 1.0e-05\ne: 3.0e+20\nf: .inf\ng: -.inf\nh: true\ni: False\nj: null\nk: ~\nl:\n",
    "name: 100,000 units\nlots:\n- id: L0\n  available: '2021-03-01'\n  doses: 50000000\n",
    "a:\n  - x\n  - 'y'\n  - \"z\"\n  -\n  - []\n  - {}\nb: no doses # a comment\n# a line of comment\n",
    "a: Côte d'Ivoire\nb: 日本\n'on': 'yes'\n",
    "_id: x\n__e1: w\n_no: z\n",
])
def test_plain_block_documents_take_the_fast_path(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_same_or_declined(text, monkeypatch)


# --- real files and the benchmark's shape ---------------------------------------------------------
def yaml_files() -> list[Path]:
    found = [*sorted((ROOT / "src" / "dosewise" / "data").glob("*.y*ml")), *sorted((ROOT / "tests").rglob("*.y*ml"))]
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        found += sorted(shared.rglob("*.y*ml"))
    return found


def test_every_yaml_file_reads_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    files = yaml_files()
    assert any(p.name == "demo_amc92.yaml" for p in files)
    for path in files:
        assert_same_or_declined(path.read_text(encoding="utf-8"), monkeypatch)


def units_scenario(n: int, *, dump: bool = False) -> str:
    """As ``benchmarks/units.py`` writes its inline scenario: ``yaml.safe_dump``, block style, dates
    quoted. The units' lines are formatted as safe_dump writes them (``dump=True`` runs safe_dump
    itself, seconds for 100,000 units)."""
    rng = np.random.default_rng(7)
    pops = (rng.lognormal(10, 1.2, n).round() + 100).tolist()
    parents = np.array(["KEN", "UGA", "TZA", "ETH", "NGA"])[rng.integers(0, 5, n)].tolist()
    units = [{"id": f"U{i:07d}", "population": float(p), "parent": c}
             for i, (p, c) in enumerate(zip(pops, parents, strict=True))]
    lots = [{"id": f"L{i}", "product": "AZD1222", "doses": 500 * n * (i + 1), "available": "2021-03-01",
             "expiry": "2021-12-31"} for i in range(3)]
    head = {"name": f"{n:,} units", "lots": lots, "policy": {"buffer": 0.05}}
    if dump:
        return yaml.safe_dump({**head, "participants": {"units": units}}, sort_keys=False)
    return (yaml.safe_dump(head, sort_keys=False) + "participants:\n  units:\n"
            + "".join(f"  - id: {u['id']}\n    population: {u['population']!r}\n    parent: {u['parent']}\n"
                      for u in units))


def test_units_scenario_is_what_safe_dump_writes() -> None:
    assert units_scenario(300) == units_scenario(300, dump=True)


def test_the_benchmark_scenario_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    text = units_scenario(100_000)
    assert len(text) > FAST_YAML_MIN_CHARS and _fast_screen(text)
    fast = _read_fast(text)
    assert fast is not _NO_FAST_RESULT and len(fast["participants"]["units"]) == 100_000
    smaller = units_scenario(20_000)  # the same shape, compared value by value with PyYAML's
    assert len(smaller) > FAST_YAML_MIN_CHARS
    assert typed(read_yaml(smaller)) == typed(pyyaml(smaller, monkeypatch))
    assert _read_fast(smaller) is not _NO_FAST_RESULT


def test_small_texts_take_pyyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    text = units_scenario(10)
    assert _fast_screen(text) and _read_fast(text) is _NO_FAST_RESULT


def test_without_yaml_rs_pyyaml_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    text = units_scenario(5_000)
    assert _read_fast(text) is not _NO_FAST_RESULT
    monkeypatch.setitem(sys.modules, "yaml_rs", None)  # import fails
    assert _read_fast(text) is _NO_FAST_RESULT
    assert typed(read_yaml(text)) == typed(pyyaml(text, monkeypatch))


def test_errors_in_large_texts_are_pyyamls(monkeypatch: pytest.MonkeyPatch) -> None:
    text = units_scenario(5_000)
    dup = text.replace("  - id: U0004000\n", "  - id: U0004000\n    id: X\n")
    with pytest.raises(InputError, match=r"duplicate key 'id'") as exc:
        read_yaml(dup, file="big.yaml")
    assert "line" in str(exc.value) and "big.yaml" in str(exc.value)
    bad = text.replace("  - id: U0004000\n", "  - id: U0004000\n   x: 1\n")
    with pytest.raises(InputError, match=r"not valid YAML at line \d+, column \d+"):
        read_yaml(bad)


def test_limits_decline_and_pyyaml_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _within_limits([0] * MAX_YAML_NODES)
    assert _within_limits([0] * (MAX_YAML_NODES // 2))
    assert not _within_limits({str(i): 0 for i in range(MAX_YAML_NODES // 2)})  # keys count too
    deep: Any = 1
    for _ in range(MAX_YAML_DEPTH):
        deep = {"k": deep}
    assert not _within_limits(deep)
    assert not _within_limits({"a": (1, 2)}) and not _within_limits({(1, 2): "a"})
    nested = "".join(" " * (2 * i) + f"k{i}:\n" for i in range(MAX_YAML_DEPTH + 1)) + " " * 200 + "x: 1\n"
    text = units_scenario(5_000) + nested
    assert _fast_screen(text) and _read_fast(text) is _NO_FAST_RESULT
    shapes = _screened_shapes(text)
    assert shapes is not None and not _surely_within_limits(text, shapes)
    assert _surely_within_limits(units_scenario(5_000), _screened_shapes(units_scenario(5_000)) or set())
    with pytest.raises(InputError, match="nested more than"):
        read_yaml(text)


def test_the_collector_is_left_as_it_was() -> None:
    """The fast read pauses the garbage collector and restores its state, also when it declines."""
    import gc

    text = units_scenario(5_000)
    assert gc.isenabled()
    assert _read_fast(text) is not _NO_FAST_RESULT and gc.isenabled()
    assert _read_fast(text + "a: 1e3\n", min_chars=0) is _NO_FAST_RESULT and gc.isenabled()
    assert _read_fast(text + "- x\n") is _NO_FAST_RESULT and gc.isenabled()  # yaml_rs refuses it
    gc.disable()
    try:
        assert _read_fast(text) is not _NO_FAST_RESULT and not gc.isenabled()
    finally:
        gc.enable()


def test_deep_nesting_never_reaches_the_rust_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A screened text nested far past :data:`MAX_YAML_DEPTH` (here 100,000 ``- `` on one line,
    200 KB) overflowed the Rust reader's stack and killed the process; it is declined from its
    indentation before ``yaml_rs`` reads it, and PyYAML refuses it as too deep. In a fresh
    interpreter, so a crash is a failure and not the end of the test run."""
    import subprocess

    import yaml_rs

    deep = "- " * 100_000 + "x\n" + "# padding\n" * (FAST_YAML_MIN_CHARS // 10)
    assert _fast_screen(deep) and len(deep) >= FAST_YAML_MIN_CHARS
    calls: list[int] = []
    real = yaml_rs.loads

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(yaml_rs, "loads", counted)
    text = "- " * (3 * MAX_YAML_DEPTH) + "x\n" + "# padding\n" * (FAST_YAML_MIN_CHARS // 10)
    assert _read_fast(text) is _NO_FAST_RESULT and not calls, "declined before the Rust reader"
    assert isinstance(pyyaml(text, monkeypatch), InputError)
    shallow = "- " * (MAX_YAML_DEPTH // 4) + "x\n" + "# padding\n" * (FAST_YAML_MIN_CHARS // 10)
    assert _read_fast(shallow) is not _NO_FAST_RESULT and calls  # still read fast
    code = ("import sys; from dosewise.yamlread import read_yaml\n"
            "try:\n    read_yaml(sys.stdin.read())\nexcept Exception as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], input=deep, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == str(pyyaml(deep, monkeypatch)) == f"nested more than {MAX_YAML_DEPTH} levels deep"
