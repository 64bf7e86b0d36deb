"""A large uniform ``participants.units`` list read column by column (:func:`dosewise.yamlread._read_unit_columns`)
is only an accelerator: it declines, or it gives exactly the values PyYAML gives for those units (types
included), and the scenario built from it, every refusal and its message, are those of the list read unit
by unit."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.core.test_yaml_fast import (
    assert_pyyamls,
    friendly_scalars,
    pyyaml,
    safe_scalars,
    scalars,
    units_scenario,
)

from dosewise.errors import InputError, ScenarioError
from dosewise.scenario import parse_scenario, parse_scenario_text
from dosewise.units import CheckedUnits, UnitColumns
from dosewise.yamlread import (
    _NO_FAST_RESULT,
    FAST_YAML_MIN_CHARS,
    _read_unit_columns,
    read_scenario_file,
    read_scenario_yaml,
)


def as_records(doc: Any) -> Any:
    """``doc`` with its :class:`UnitColumns` turned back into the list of mappings it stands for."""
    units = doc["participants"]["units"]
    assert isinstance(units, UnitColumns)
    names = list(units.columns)
    records = [dict(zip(names, row, strict=True)) for row in zip(*units.columns.values(), strict=True)]
    assert len(records) == units.n
    return {**doc, "participants": {**doc["participants"], "units": records}}


def check(text: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """The column reader declines ``text`` or gives what PyYAML gives; whether it took it."""
    fast = _read_unit_columns(text, min_chars=0)
    if fast is _NO_FAST_RESULT:
        return False
    assert_pyyamls(as_records(fast), text, monkeypatch)
    return True


plain_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
odd_keys = st.sampled_from(["on", "no", "y", "true", "null", "_x", "'q'", "a b", "1", "id ", "a-b", "é"])


@st.composite
def unit_block_documents(draw: st.DrawFn) -> str:
    """A scenario-like text with a ``participants.units`` block: half the time the uniform form the reader
    takes (values it reads, in every layout), half the time with odd keys, values, separators and irregular
    items, blank, comment or nested lines among them."""
    odd = draw(st.booleans())
    keys = draw(st.lists(st.one_of(*[plain_keys] * 6, odd_keys) if odd else plain_keys, min_size=1, max_size=4,
                         unique=True))
    n = draw(st.integers(1, 6))
    values = st.one_of(*[friendly_scalars] * 4, scalars) if odd else safe_scalars
    dash = " " * draw(st.sampled_from([2, 2, 4, 3]))  # the sequence under `  units:`: indentless or indented
    lines: list[str] = []
    for _ in range(n):
        order = list(keys)
        if odd and draw(st.integers(0, 4)) == 0:  # an irregular item: a key left out or moved
            order = draw(st.permutations(order))[: draw(st.integers(1, len(order)))]
        for j, key in enumerate(order):
            lead = f"{dash}- " if j == 0 else f"{dash}  "
            sep = draw(st.sampled_from([": ", ": ", ":", ":  "])) if odd else ": "
            line = f"{lead}{key}{sep}{draw(values)}"
            lines.append(line.rstrip() if sep == ":" else line)
        if odd and draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", f"{dash}# a comment", f"{dash}  nested:", f"{dash}    - x"])))
    before = draw(st.sampled_from(["", "name: many\n", "lots: []\n", "participants_note: x\nunits: 3\n"]))
    inside_before = draw(st.sampled_from(["", "  group: AMC92\n", "  include:\n  - KEN\n"]))
    inside_after = draw(st.sampled_from(["", "", "  group: AMC92\n", "  units_file: x.csv\n", "  units:\n"]))
    after = draw(st.sampled_from(["", "", "policy:\n  buffer: 0.05\n", "tail: [1]\n", "other:\n  units:\n  - id: 1\n"]))
    text = f"{before}participants:\n{inside_before}  units:\n" + "\n".join(lines) + "\n" + inside_after + after
    return text if draw(st.integers(0, 3)) else text.rstrip("\n")  # the last line without its line break


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=unit_block_documents())
def test_columns_are_pyyamls_values_or_declined(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    check(text, monkeypatch)


def test_the_plain_forms_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The property above is not vacuous: the forms ``yaml.safe_dump`` and a person write are read by columns."""
    units = [{"id": f"U{i}", "population": 1000.5 + i, "parent": "KEN", "name": f"Unit {i}", "accepts": []}
             for i in range(5)]
    dumped = yaml.safe_dump({"name": "x", "participants": {"units": units}, "policy": {"buffer": 0.1}},
                            sort_keys=False)
    indented = yaml.dump({"participants": {"group": "AMC92", "units": units}}, Dumper=_Indented, sort_keys=False)
    for text in (dumped, indented, units_scenario(50), dumped.rstrip("\n")):
        assert check(text, monkeypatch), text


class _Indented(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@pytest.mark.parametrize("change", [
    ("    parent: KEN\n  - id: U1", "    parent: KEN\n\n  - id: U1"),  # a blank line
    ("    parent: KEN\n  - id: U1", "    parent: KEN # note\n  - id: U1"),  # a comment
    ("  - id: U1\n    population: 1001.0\n    parent: KEN", "  - id: U1\n    parent: KEN\n    population: 1001.0"),
    ("  - id: U1\n    population: 1001.0\n    parent: KEN", "  - id: U1\n    population: 1001.0"),  # a key left out
    ("  - id: U1\n    population: 1001.0\n", "  - id: U1\n    population: 1001.0\n    population: 5\n"),
    ("    parent: KEN\n  - id: U1", "    parent: KEN\n    extra:\n    - a\n  - id: U1"),  # nested under a unit
    ("    parent: KEN\n  - id: U1", "    parent: KEN\n  - id: U1\n    population: 2\n    parent: dosewiseunitsblock"
     "\n  - id: U1b"),  # the marker's word in the text
    ("participants:\n", "participants:\n  note: 1e3\n"),  # a line outside the screened subset
    ("    parent: KEN\n  - id: U1", "    parent: KEN\n  - id: U1\n\tparent: x"),
])
def test_irregular_blocks_are_declined_and_read_as_pyyaml_reads_them(change: tuple[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base = ("participants:\n  units:\n" + "".join(f"  - id: U{i}\n    population: {1000.0 + i}\n    parent: KEN\n"
                                                  for i in range(3)))
    assert check(base, monkeypatch)
    old, new = change
    assert old in base
    text = base.replace(old, new, 1)
    assert not check(text, monkeypatch), text


def test_two_unit_blocks_are_declined(monkeypatch: pytest.MonkeyPatch) -> None:
    block = "  units:\n  - id: U1\n    population: 5.0\n"
    assert not check(f"participants:\n{block}other:\n{block}", monkeypatch)


def test_the_benchmark_scenario_is_read_by_columns(tmp_path: Any) -> None:
    text = units_scenario(100_000)
    assert len(text) > FAST_YAML_MIN_CHARS
    doc = read_scenario_yaml(text)
    units = doc["participants"]["units"]
    assert isinstance(units, UnitColumns) and units.n == 100_000 and list(units.columns) == ["id", "population",
                                                                                              "parent"]
    path = tmp_path / "big.yaml"
    path.write_text(text, encoding="utf-8")
    checked = read_scenario_file(path)["participants"]["units"]
    assert isinstance(checked, CheckedUnits) and len(checked.table) == 100_000 and not checked.problems


def _scenario_text(units: list[str]) -> str:
    return ("lots:\n- id: L0\n  product: CoronaVac\n  doses: 5000000\n  available: '2021-08-30'\n"
            "  expiry: '2022-02-28'\nparticipants:\n  units:\n" + "".join(units))


def _unit(i: int, population: str = "", parent: str = "KEN", extra: str = "") -> str:
    return f"  - id: U{i:05d}\n    population: {population or 1000.0 + i}\n    parent: {parent}\n{extra}"


@pytest.mark.parametrize("bad", [
    {3: ("abc", "KEN")}, {7: ("-5.0", "KEN")}, {2: ("0.0", "KEN"), 9: ("", "ZZZ")}, {4: ("1000.0", "'ken '")},
    {5: ("1.0e+20", "KEN")}, {0: (".nan", "KEN")}, {6: ("true", "null")}, {8: ("'12'", "KEN")},
])
def test_a_scenario_read_by_columns_is_the_scenario_read_unit_by_unit(bad: dict[int, tuple[str, str]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scenario, or the same refusal word for word, whichever way the units were read."""
    units = [_unit(i, *bad.get(i, ("", "KEN"))) for i in range(12)]
    text = _scenario_text(units)
    assert check(text, monkeypatch)

    def outcome(columns: bool) -> Any:
        try:
            if columns:
                sc = parse_scenario(_read_unit_columns(text, min_chars=0), file="s.yaml")
            else:
                sc = parse_scenario(pyyaml(text, monkeypatch), file="s.yaml")
        except ScenarioError as exc:
            return ("refused", str(exc), exc.problems)
        return ("scenario", {k: v.tolist() for k, v in sc.participants.units.columns.items()},
                sc.model_dump_json(exclude={"participants"}))

    assert outcome(True) == outcome(False)


def test_an_extra_key_is_named_at_the_first_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _scenario_text([_unit(i, extra="    colour: blue\n") for i in range(4)])
    assert check(text, monkeypatch)
    with pytest.raises(ScenarioError) as columns:
        parse_scenario(_read_unit_columns(text, min_chars=0), file="s.yaml")
    with pytest.raises(ScenarioError) as records:
        parse_scenario(pyyaml(text, monkeypatch), file="s.yaml")
    assert str(columns.value) == str(records.value)
    assert "participants.units[0].colour" in str(columns.value)


def test_large_scenario_text_is_the_same_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    text = units_scenario(20_000)
    by_columns = parse_scenario_text(text)
    by_records = parse_scenario(pyyaml(text, monkeypatch))
    units_a, units_b = by_columns.participants.units, by_records.participants.units
    assert list(units_a.columns) == list(units_b.columns)
    for name, column in units_a.columns.items():
        assert column.tolist() == units_b.columns[name].tolist(), name
    assert by_columns.model_dump_json(exclude={"participants"}) == by_records.model_dump_json(exclude={"participants"})


@pytest.mark.parametrize("length", [1024, 1025])
def test_keys_as_long_as_yaml_allows_and_no_longer(length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain key longer than 1,024 characters is not YAML; the reader, which never shows keys to a YAML
    reader, declines it, and the refusal is PyYAML's (the key is in every unit)."""
    key = "k" * length
    text = _scenario_text([_unit(i, extra=f"    {key}: 5\n") for i in range(260)])
    assert len(text) >= FAST_YAML_MIN_CHARS  # large enough for the column reader
    taken = check(text, monkeypatch)
    assert taken == (length <= 1024)
    if not taken:
        assert isinstance(pyyaml(text, monkeypatch), InputError)
        with pytest.raises(InputError, match="not valid YAML at line"):
            parse_scenario_text(text)
