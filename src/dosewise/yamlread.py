"""Strict YAML reading: safe types only, no duplicate keys, bounded size, depth and values, one clear
:class:`~dosewise.errors.InputError` naming the file and line for every problem.

PyYAML (on libyaml) is the reference reader. Large texts in the plain block style ``yaml.safe_dump``
writes (100,000 inline units) are read by ``yaml_rs`` when they pass a screen that guarantees the same
document (:func:`_read_fast`), and a scenario's large uniform ``participants.units`` list is handed on
column by column (:func:`read_scenario_yaml`). Imports neither pydantic nor pandas: a process that only
reads a scenario file (:mod:`dosewise.cli._reader`) starts fast.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dosewise.errors import InputError
from dosewise.units import CheckedUnits, UnitColumns, units_from_records

MAX_SCENARIO_BYTES = 16 * 1024 * 1024
"""A scenario file larger than this is refused (its text is recorded in the ledger when a round opens;
participants by the hundred thousand belong in a units file)."""
MAX_YAML_NODES = 2_000_000
"""YAML values after expanding aliases; more is refused (an alias bomb is a few hundred bytes)."""
MAX_YAML_DEPTH = 50


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 1 MB scalars in ms


class _StrictLoader(_Base):  # type: ignore[misc]
    """Safe YAML that refuses duplicate keys (a later key would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _timestamp_or_text(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
    """A date that does not exist (``2021-02-30``) stays text, so that validation names its field and value."""
    try:
        return loader.construct_yaml_timestamp(node)  # type: ignore[no-untyped-call]
    except (ValueError, OverflowError):
        return str(node.value)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _node_limits(root: yaml.Node) -> tuple[int, int]:
    """(values after expanding aliases, depth) of a composed YAML document, in one pass over its
    distinct nodes (an alias is the same node object, counted as often as it is used)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = min(1 + sum(size.get(id(k), 1) for k in kids), MAX_YAML_NODES + 1)
            depth[key] = 1 + max((depth.get(id(k), 1) for k in kids), default=0)
            continue
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > MAX_YAML_NODES:
            return MAX_YAML_NODES + 1, 0
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in seen)
    return size.get(id(root), 1), depth.get(id(root), 1)


class _Fallback(Exception):
    """The document uses something the event reader leaves to the node reader (anchors, aliases,
    tags on collections, merge keys, complex keys, several documents)."""


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
"""Integers that YAML 1.1's constructor reads exactly as :func:`int` does (no ``_``, octal, hex, ``:``)."""
_PLAIN_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?")
"""Floats that YAML 1.1's constructor reads exactly as :func:`float` does."""
_NO_KEY = object()


def _limits_error(file: str | None, *, depth: bool) -> InputError:
    if depth:
        return InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file)
    return InputError(f"more than {MAX_YAML_NODES:,} values once aliases are expanded", file=file)


def _read_events(loader: Any, file: str | None) -> Any:
    """Build the document straight from libyaml's event stream, in one pass that counts values and
    levels (refusing past :data:`MAX_YAML_NODES` or :data:`MAX_YAML_DEPTH` at once) and refuses
    duplicate keys: no node graph, no second walk. Scalars resolve with the loader's own implicit
    resolvers and constructors (the common ones inlined), so the values are those
    ``construct_document`` gives. Raises :class:`_Fallback` for what only the node reader handles."""
    if loader.yaml_path_resolvers:
        raise _Fallback
    get = loader.get_event
    resolvers = loader.yaml_implicit_resolvers
    if None in resolvers:
        raise _Fallback
    resolve = loader.resolve
    bools = loader.bool_values
    plain_int, plain_float = _PLAIN_INT.fullmatch, _PLAIN_FLOAT.fullmatch
    scalar_ev, map_start, map_end = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent
    seq_start, seq_end = yaml.SequenceStartEvent, yaml.SequenceEndEvent
    get()  # StreamStartEvent
    event = get()
    if isinstance(event, yaml.StreamEndEvent):
        return None
    # the open collection (container, whether a mapping, its pending key or _NO_KEY, its mark), and
    # those around it on the stack
    stack: list[tuple[Any, bool, Any, Any]] = []
    container: Any = None
    in_map = False
    pending: Any = _NO_KEY
    mark: Any = None
    root: Any = None
    count = 0
    duplicate: yaml.constructor.ConstructorError | None = None
    while True:
        event = get()
        cls = event.__class__
        if cls is scalar_ev:
            if event.anchor is not None:
                raise _Fallback
            count += 1
            value = event.value
            tag = event.tag
            if tag is None and not (event.implicit[0] and (not value or value[0] in resolvers)):
                obj: Any = value  # quoted, or plain that no implicit resolver can claim: a string
            else:
                if tag is None or tag == "!":
                    tag = resolve(yaml.ScalarNode, value, event.implicit)
                if tag == _STR_TAG:
                    obj = value
                elif tag == _FLOAT_TAG and plain_float(value):
                    obj = float(value)
                elif tag == _INT_TAG and plain_int(value):
                    obj = int(value)
                elif tag == _NULL_TAG:
                    obj = None
                elif tag == _BOOL_TAG:
                    obj = bools[value.lower()]
                elif tag == _MERGE_TAG:
                    raise _Fallback
                else:
                    obj = loader.construct_object(yaml.ScalarNode(tag, value, event.start_mark, event.end_mark,
                                                                  event.style), deep=True)
            if in_map:
                if pending is _NO_KEY:
                    try:
                        seen = obj in container
                    except TypeError:
                        raise _Fallback from None
                    if seen and duplicate is None:
                        duplicate = yaml.constructor.ConstructorError(
                            "while reading a mapping", mark, f"duplicate key {obj!r}", event.start_mark)
                    pending = obj
                else:
                    container[pending] = obj
                    pending = _NO_KEY
            elif container is not None:
                container.append(obj)
            else:
                root = obj
            if len(stack) >= MAX_YAML_DEPTH:
                raise _limits_error(file, depth=True)
        elif cls is map_start or cls is seq_start:
            if event.anchor is not None or event.tag not in (None, "!", _MAP_TAG if cls is map_start else _SEQ_TAG):
                raise _Fallback
            count += 1
            if len(stack) >= MAX_YAML_DEPTH:
                raise _limits_error(file, depth=True)
            new: Any = {} if cls is map_start else []
            if in_map:
                if pending is _NO_KEY:
                    raise _Fallback  # a collection as a key
                container[pending] = new
                pending = _NO_KEY
            elif container is not None:
                container.append(new)
            else:
                root = new
            stack.append((container, in_map, pending, mark))
            container, in_map, pending, mark = new, cls is map_start, _NO_KEY, event.start_mark
        elif cls is map_end or cls is seq_end:
            container, in_map, pending, mark = stack.pop()
        elif cls is yaml.DocumentEndEvent:
            if not isinstance(get(), yaml.StreamEndEvent):
                raise _Fallback  # several documents: the node reader says so
            break
        else:  # an alias
            raise _Fallback
        if count > MAX_YAML_NODES:
            raise _limits_error(file, depth=False)
    if duplicate is not None:
        raise duplicate
    return root


FAST_YAML_MIN_CHARS = 256 * 1024
"""Texts at least this long are first offered to the Rust reader (``yaml_rs``, see :func:`_read_fast`):
below it PyYAML's event reader takes a few milliseconds and the screen would cost as much as it saves
(every hand-written scenario is far smaller; 100,000 inline units are about 5.7 MB)."""

_SPECIAL_WORD = r"(?i:yes|no|on|off|y|n|true|false|null|nan|inf|infinity)"
_PLAIN_CHAR = r"A-Za-z0-9_,.()/+\-';\"$^"
_QUOTED = r"""'(?:[\x20-\x26\x28-\x7e]|'')*'|"[\x20\x21\x23-\x5b\x5d-\x7e]*\""""
_FAST_VALUE = (
    r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+(?:e[-+][0-9]{1,3})?)?|-?\.inf|\.nan"  # numbers as safe_dump writes them
    r"|true|True|TRUE|false|False|FALSE|null|Null|NULL|~|\[\]|\{\}"
    f"|{_QUOTED}"
    f"|(?!{_SPECIAL_WORD}(?: *$| +#))[A-Za-z][{_PLAIN_CHAR} ]*"  # text starting with a letter
    f"|[0-9][{_PLAIN_CHAR}]*(?: +[{_PLAIN_CHAR}]+)+"  # words starting with a digit ("100,000 units")
)
_FAST_LINE = (
    r" *(?:-(?: +|$))*"  # indentation, sequence entries
    # key: value (a key's first character but "_" is a letter: yaml_rs reads "_1", "_1.5" as numbers)
    f"(?:(?:(?!{_SPECIAL_WORD}:)_*[A-Za-z][A-Za-z0-9_.\\-]*|{_QUOTED}):(?: +(?:{_FAST_VALUE}))?"
    f"|(?:{_FAST_VALUE}))?"
    r"(?: +#[\x20-\x7e]*)? *"  # a comment
    r"|#[\x20-\x7e]*")
"""One line of the block-style YAML both readers read alike (see :func:`_fast_screen`), in ASCII."""
_FAST_NON_ASCII_REFUSED = (
    "[\x80-\xa0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ud800-\udfff\ufeff\ufff0-\uffff]")
"""Characters outside ASCII that send a text to PyYAML: not printable for YAML 1.1 (C1 controls, NEL,
surrogates, U+FFFE/U+FFFF), line and paragraph separators, byte-order marks, and the no-break and
other Unicode spaces and format characters a reader might take for whitespace."""
_SHAPE = bytes.maketrans(b"23456789" + bytes(range(0x80, 0x100)), b"11111111" + b"Q" * 0x80)
"""Digits 2-9 become ``1`` and every byte of a character outside ASCII ``Q`` (a letter in no YAML 1.1
boolean or null word): the line grammar treats each group alike, ``0`` stays (leading zeros)."""


@functools.cache
def _fast_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(_FAST_LINE), re.compile(_FAST_NON_ASCII_REFUSED)


def _fast_screen(text: str) -> bool:
    """Whether ``text`` passes :func:`_screened_shapes` (every line in the subset both readers read alike)."""
    return _screened_shapes(text) is not None


def _screened_shapes(text: str) -> set[bytes] | None:
    """The distinct line shapes of ``text`` (:data:`_SHAPE`) when every line keeps to the subset of block-style
    YAML on which ``yaml_rs`` (YAML 1.2, saphyr) and PyYAML's safe loader (YAML 1.1, with dosewise's
    constructors) give identical documents: plain keys that are no YAML 1.1 boolean or null word and start with
    a letter after any ``_`` (yaml_rs reads ``_1`` or ``_1.5`` as a number, dropping the underscore); values that
    are decimal numbers as ``yaml.safe_dump`` writes them (no octal, hex, ``_``, sexagesimal, exponent without
    sign: ``1e3`` is text for PyYAML and a number for yaml_rs), ``true``/``false``/``null`` in the three
    spellings both read alike, quoted text without escapes, plain text of safe characters starting with a letter
    (no ``yes``/``no``/``on``/``off``, which are booleans only in YAML 1.1) or several words starting with a
    digit; comments. Anything else (flow collections but ``[]`` and ``{}``, unquoted dates and times, anchors,
    aliases, tags, directives, ``<<``, ``=``, ``?`` keys, block scalars, several documents, tabs, carriage
    returns, control characters, Unicode line breaks and spaces) sends the text to PyYAML. Over-approximates by
    design: a line refused only costs time.

    Lines are checked once per distinct shape (:data:`_SHAPE`): 100,000 units make about a hundred. None when a
    line is outside the subset."""
    line, refused = _fast_patterns()
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return None
    if not raw.isascii() and refused.search(text):
        return None
    match = line.fullmatch
    shapes = set(raw.translate(_SHAPE).split(b"\n"))
    return shapes if all(match(shape.decode("ascii")) for shape in shapes) else None


def _surely_within_limits(text: str, shapes: set[bytes]) -> bool:
    """Whether a text of these screened line shapes must stay inside :data:`MAX_YAML_NODES` values and
    :data:`MAX_YAML_DEPTH` levels, read from the text alone (no walk over the document).

    In the screened subset every value PyYAML counts sits on its own line: a sequence is opened by a
    ``-``, a mapping by a line with a key, and each line adds at most a key (before a ``:``) and a
    value (after a ``:`` or a ``-``); so there are at most ``1 + 2 × (count of "-") + 3 × (count of
    ":")`` values, whatever else those characters are. Levels: a nested mapping starts at least one
    column to the right, a sequence under a key may start in the key's column but its items' content
    starts two columns on, so each column of indentation and ``- `` markers adds at most two levels,
    plus the root, an empty ``[]`` or ``{}`` and a scalar."""
    values = 1 + 2 * text.count("-") + 3 * text.count(":")
    return values < MAX_YAML_NODES and _levels_at_most(shapes) < MAX_YAML_DEPTH - 1


def _levels_at_most(shapes: set[bytes]) -> int:
    """How deep a text of these screened line shapes may nest (see :func:`_surely_within_limits`)."""
    widest = max(len(shape) - len(shape.lstrip(b" -")) for shape in shapes)
    return 2 * widest + 3


_FAST_MAX_LEVELS = 2 * MAX_YAML_DEPTH
"""A screened text that may nest deeper is not offered to ``yaml_rs`` at all: its reader recurses once
per level, and a text nested deep enough (100,000 ``- `` on a line, 200 KB) overflows the thread's
stack and ends the process; PyYAML refuses it past :data:`MAX_YAML_DEPTH`. At 100 levels the Rust
reader keeps inside a 128 KiB thread stack."""


def _within_limits(root: Any) -> bool:
    """Whether a document yaml_rs built has only string keys and stays clearly inside :data:`MAX_YAML_NODES`
    values (keys, values and collections, counted as the PyYAML reader counts them) and
    :data:`MAX_YAML_DEPTH` levels. One walk over the collections, a level at a time, with the per-item
    work in C (``map``, ``chain``): 100,000 units take a few tens of milliseconds."""
    count = 1
    level: list[Any] = [root]
    depth = 1
    while level:
        if depth >= MAX_YAML_DEPTH - 1:
            return False
        kinds = set(map(type, level))
        dicts = level if kinds == {dict} else [c for c in level if type(c) is dict]
        lists = [] if kinds == {dict} else [c for c in level if type(c) is not dict]
        count += 2 * sum(map(len, dicts)) + sum(map(len, lists))
        if count >= MAX_YAML_NODES or not set(map(type, itertools.chain.from_iterable(dicts))) <= {str}:
            return False
        values = [*itertools.chain.from_iterable(map(dict.values, dicts)), *itertools.chain.from_iterable(lists)]
        kinds = set(map(type, values))
        if not kinds <= _FAST_TYPES:
            return False
        level = [v for v in values if type(v) is dict or type(v) is list] if kinds & {dict, list} else []
        depth += 1
    return True


_FAST_TYPES = {str, int, float, bool, type(None), dict, list}
"""What a document read by PyYAML's safe loader from the screened subset may hold."""


_NO_FAST_RESULT = object()


def _rust_reader(text: str, min_chars: int | None) -> Any:
    """The ``yaml_rs`` module when ``text`` is at least ``min_chars`` long (default :data:`FAST_YAML_MIN_CHARS`)
    and the module imports, else None (the PyYAML reader is the reference anyway)."""
    if len(text) < (FAST_YAML_MIN_CHARS if min_chars is None else min_chars):
        return None
    try:
        import yaml_rs
    except Exception:  # missing or broken
        return None
    return yaml_rs


def _screened_for_rust(text: str) -> set[bytes] | None:
    """The line shapes of ``text`` (:func:`_screened_shapes`) when it may go to ``yaml_rs``: every line in the
    subset and nothing that may nest past :data:`_FAST_MAX_LEVELS` levels; else None."""
    shapes = _screened_shapes(text)
    return None if shapes is None or _levels_at_most(shapes) > _FAST_MAX_LEVELS else shapes


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """The cyclic collector paused while ``yaml_rs`` builds hundreds of thousands of containers, none in a
    cycle (no collection would find anything to free); resumed after if it ran before."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _read_fast(text: str, *, min_chars: int | None = None) -> Any:
    """The document ``yaml_rs`` reads from ``text``, or :data:`_NO_FAST_RESULT` when the PyYAML reader must
    read it instead: text shorter than ``min_chars`` (default :data:`FAST_YAML_MIN_CHARS`), ``yaml_rs``
    not installed, anything outside :func:`_fast_screen`'s subset or indented so far that it may nest past
    :data:`_FAST_MAX_LEVELS` levels, any error (PyYAML then gives its own
    message with line and column), a result beyond the limits or with keys or values PyYAML would not
    give. Never a different document."""
    yaml_rs = _rust_reader(text, min_chars)
    shapes = None if yaml_rs is None else _screened_for_rust(text)
    if shapes is None:
        return _NO_FAST_RESULT
    try:
        with _no_collections():
            data = yaml_rs.loads(text, parse_datetime=False, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except Exception:
        return _NO_FAST_RESULT
    if type(data) is not dict and type(data) is not list:
        return _NO_FAST_RESULT
    if _surely_within_limits(text, shapes):  # keys and values of the screened subset are of PyYAML's types
        return data
    return data if _within_limits(data) else _NO_FAST_RESULT


_MAX_SIMPLE_KEY = 1024
"""YAML refuses a plain key longer than this; the column reader never shows the keys to a YAML reader, so it
declines them itself."""
_UNITS_LINE = re.compile(r"( *)units: *$", re.MULTILINE)
_UNIT_ITEM = re.compile(r"( *)- ([A-Za-z][A-Za-z0-9_]*): ")
_UNIT_KEY = re.compile(r" *([A-Za-z][A-Za-z0-9_]*): ")


def _read_unit_columns(text: str, *, min_chars: int | None = None) -> Any:
    """The document ``text`` holds, read as :func:`_read_fast` reads it but with a large ``participants.units``
    list handed on as :class:`~dosewise.units.UnitColumns` (column by column, no mapping per unit); or
    :data:`_NO_FAST_RESULT` when that list is not in the plain form below or anything else does not hold.

    The form is the one ``yaml.safe_dump`` writes: a block sequence whose every item gives the same keys
    in the same order, one ``key: value`` per line (``- id: U1`` then ``  population: 5000`` …), no
    comments, nothing nested. The whole text must pass :func:`_screened_shapes` and surely stay inside the
    limits (:func:`_surely_within_limits`); the lines of the block are then checked by counting (every line
    of the j-th key, joined, starts with that key's prefix exactly ``n`` times); each key's values are read
    by ``yaml_rs`` as a sequence (``- value`` per line: the same plain or quoted scalar in the same block
    context, so the same value); the rest of the document, with the block replaced by a marker, is read by
    ``yaml_rs`` too and the marker must come back at ``participants.units``. Same values, types and order
    as the mappings PyYAML would give; any doubt falls back. Texts shorter than ``min_chars`` (default
    :data:`FAST_YAML_MIN_CHARS`) are declined."""
    yaml_rs = _rust_reader(text, min_chars)
    if yaml_rs is None:
        return _NO_FAST_RESULT
    heads = []
    at = text.find("units:")
    while at >= 0:  # a literal search, then the line around it (a regex tried at every position is slower)
        head = _UNITS_LINE.match(text, text.rfind("\n", 0, at) + 1)
        if head is not None and _UNIT_ITEM.match(text, head.end() + 1):
            heads.append(head)
        at = text.find("units:", at + 6)
    if len(heads) != 1:
        return _NO_FAST_RESULT
    head = heads[0]
    first = _UNIT_ITEM.match(text, head.end() + 1)
    assert first is not None
    indent = first.group(1)
    if len(indent) < len(head.group(1)):
        return _NO_FAST_RESULT
    start = first.start()
    stop = re.compile(rf"\n(?!{indent}- |{indent}  )").search(text, start)
    end = len(text) if stop is None else stop.start()
    block = text[start:end]
    if "#" in block or "\r" in block:
        return _NO_FAST_RESULT
    lines = block.split("\n")
    keys = [first.group(2)]
    for line in lines[1:]:
        if not line.startswith(indent + "  "):
            break
        found = _UNIT_KEY.match(line)
        if found is None or len(found.group(0)) - len(found.group(1)) - 2 != len(indent) + 2:
            return _NO_FAST_RESULT
        keys.append(found.group(1))
    k = len(keys)
    n, extra = divmod(len(lines), k)
    if extra or len(set(keys)) != k or max(map(len, keys)) > _MAX_SIMPLE_KEY:
        return _NO_FAST_RESULT
    shapes = _screened_for_rust(text)
    if shapes is None or not _surely_within_limits(text, shapes):
        return _NO_FAST_RESULT
    marker = "dosewiseunitsblock"  # a plain word; a text holding it is read the other way
    if marker in text:
        return _NO_FAST_RESULT
    try:
        with _no_collections():
            columns: dict[str, list[Any]] = {}
            for j, key in enumerate(keys):
                prefix = f"{indent}{'- ' if j == 0 else '  '}{key}: "
                joined = "\n".join(lines[j::k])
                if not joined.startswith(prefix) or joined.count("\n" + prefix) != n - 1:
                    return _NO_FAST_RESULT
                values = yaml_rs.loads("- " + joined[len(prefix):].replace("\n" + prefix, "\n- "),
                                       parse_datetime=False)
                if type(values) is not list or len(values) != n:
                    return _NO_FAST_RESULT
                columns[key] = values
            rest = f"{text[:head.start()]}{head.group(1)}units: {marker}{text[end:]}"
            data = yaml_rs.loads(rest, parse_datetime=False, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except Exception:
        return _NO_FAST_RESULT
    part = data.get("participants") if type(data) is dict else None
    if type(part) is not dict or part.get("units") != marker:
        return _NO_FAST_RESULT
    part["units"] = UnitColumns(columns, n)
    return data


def read_scenario_yaml(text: str, *, file: str | None = None) -> Any:
    """:func:`read_yaml` for a scenario text: the same document, but a large uniform ``participants.units``
    list may come as :class:`~dosewise.units.UnitColumns` (see :func:`_read_unit_columns`), which
    :func:`parse_scenario` reads as it reads the list."""
    if len(text) <= MAX_SCENARIO_BYTES:
        data = _read_unit_columns(text)
        if data is not _NO_FAST_RESULT:
            return data
    return read_yaml(text, file=file)


def read_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML strictly: safe types only, no duplicate keys, at most :data:`MAX_YAML_NODES` values
    after expanding aliases and :data:`MAX_YAML_DEPTH` levels. Problems are one clear
    :class:`~dosewise.errors.InputError` naming the file and line.

    Large texts in the plain block style ``yaml.safe_dump`` writes (100,000 inline units) are read by
    ``yaml_rs`` when they pass a screen that guarantees the same document (:func:`_read_fast`); every
    other text, and any that screen or reader declines, is read by PyYAML, which stays the reference
    (values, errors and their messages). Documents without anchors, aliases or tagged collections
    (every scenario dosewise writes) are built in one pass over libyaml's events; the others go
    through the composed node graph, whose distinct nodes are counted before anything is built (an
    alias bomb is refused in milliseconds)."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise InputError(f"file larger than {MAX_SCENARIO_BYTES // (1024 * 1024)} MiB; put participants in a "
                         "units file", file=file, value=f"{len(text):,} characters")
    try:
        data = _read_fast(text)
        if data is not _NO_FAST_RESULT:
            return data
        loader = _StrictLoader(text)
        try:
            return _read_events(loader, file)
        except _Fallback:
            pass
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()  # type: ignore[no-untyped-call]
            if node is None:
                return None
            count, levels = _node_limits(node)
            if count > MAX_YAML_NODES:
                raise _limits_error(file, depth=False)
            if levels > MAX_YAML_DEPTH:
                raise InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file, value=levels)
            return loader.construct_document(node)  # type: ignore[no-untyped-call]
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    except RecursionError:
        raise InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file) from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"not a valid value: {exc}", file=file) from None


def read_text_file(p: Path, kind: str, max_bytes: int, too_large: str) -> str:
    """The UTF-8 text of the ``kind`` file (``"scenario"``, ``"sweep"``) at ``p``, or one clear
    :class:`InputError` naming it: missing, a folder, larger than ``max_bytes`` (``too_large``
    says so), not UTF-8, unreadable, or holding NUL bytes."""
    try:
        if p.stat().st_size > max_bytes:
            raise InputError(too_large, file=str(p), value=f"{p.stat().st_size:,} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{kind} file not found", file=str(p)) from None
    except IsADirectoryError:
        raise InputError(f"a folder, not a {kind} file", file=str(p)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})",
                         file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read {kind} file: {exc.strerror or exc}", file=str(p)) from None
    if "\x00" in text:
        raise InputError("not a text file (it contains NUL bytes)", file=str(p))
    return text


def read_scenario_file(p: Path) -> Any:
    """The document in the scenario file at ``p`` (:func:`read_text_file`, then :func:`read_scenario_yaml`),
    with a uniform inline units list already checked column by column (:class:`~dosewise.units.CheckedUnits`)."""
    text = read_text_file(p, "scenario", MAX_SCENARIO_BYTES, f"file larger than "
                          f"{MAX_SCENARIO_BYTES // (1024 * 1024)} MiB; put participants in a units file")
    data = read_scenario_yaml(text, file=str(p))
    part = data.get("participants") if type(data) is dict else None
    if type(part) is dict and type(part.get("units")) is UnitColumns:
        part["units"] = CheckedUnits(*units_from_records(part["units"]))
    return data
