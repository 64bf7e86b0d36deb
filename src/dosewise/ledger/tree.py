"""The Merkle tree of a store's events: node cache, roots and proofs.

Leaf ``i`` is the 32-byte chain hash of the event ``seq = i + 1`` (see
:mod:`dosewise.ledger.merkle`). Proofs need hashes of complete subtrees; for speed a
SQL ledger keeps those of level >= :data:`STORED_LEVEL` (16 leaves and more) in the
append-only table ``ledger_merkle_nodes`` (a memory store in a dict), so an
inclusion or consistency proof in a tree of a million events reads about forty
stored hashes and at most a few dozen event hashes. The cache is extended by
:func:`sync` (called by every checkpoint) and shared by every process that opens the
database; whatever it does not cover yet is computed from the events. ``verify``
never trusts it: it recomputes the tree from the events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import sqlalchemy as sa

from dosewise.errors import LedgerError
from dosewise.ledger import merkle
from dosewise.ledger.memory import MemoryStore
from dosewise.ledger.merkle import Node
from dosewise.ledger.schema import MERKLE_NODES
from dosewise.ledger.store import Store

__all__ = ["STORED_LEVEL", "TreeView", "consistency_proof", "inclusion_proof", "open_view", "root", "sync"]

STORED_LEVEL = 4
"""Complete subtrees of this level and above (2**4 = 16 leaves) are kept in the node cache."""
_CHUNK = 1 << STORED_LEVEL
_IN_CHUNK = 400


class Backend(Protocol):
    def size(self) -> int: ...
    def leaves(self, lo: int, hi: int) -> list[bytes]: ...
    def stored(self, keys: Sequence[Node]) -> dict[Node, bytes]: ...
    def covered(self) -> int: ...
    def put(self, nodes: Mapping[Node, bytes]) -> None: ...


class _MemoryBackend:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def size(self) -> int:
        return len(self.store._rows)

    def leaves(self, lo: int, hi: int) -> list[bytes]:
        return [bytes.fromhex(r[13]) for r in self.store._rows[lo:hi]]

    def stored(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        nodes = self.store.merkle_nodes
        return {k: nodes[k] for k in keys if k in nodes}

    def covered(self) -> int:
        top = [i for (lv, i) in self.store.merkle_nodes if lv == STORED_LEVEL]
        return (max(top) + 1) * _CHUNK if top else 0

    def put(self, nodes: Mapping[Node, bytes]) -> None:
        for k, v in nodes.items():
            self.store.merkle_nodes.setdefault(k, v)


class _SQLBackend:
    def __init__(self, conn: sa.Connection, has_nodes: bool = True) -> None:
        self.conn = conn
        self.has_nodes = has_nodes
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"

    def size(self) -> int:
        return int(self.conn.exec_driver_sql("SELECT COALESCE(MAX(seq), 0) FROM ledger_events").scalar() or 0)

    def leaves(self, lo: int, hi: int) -> list[bytes]:
        m = self.mark
        rows = self.conn.exec_driver_sql(
            f"SELECT seq, hash FROM ledger_events WHERE seq > {m} AND seq <= {m} ORDER BY seq", (lo, hi)).all()
        if len(rows) != hi - lo or (rows and (int(rows[0][0]) != lo + 1 or int(rows[-1][0]) != hi)):
            raise LedgerError(f"events seq {lo + 1}..{hi} are not all in the ledger (deleted rows?)")
        try:
            return [bytes.fromhex(h) for _, h in rows]
        except ValueError as exc:
            raise LedgerError(f"an event hash between seq {lo + 1} and {hi} is not hex") from exc

    def stored(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        if not self.has_nodes or not keys:
            return {}
        out: dict[Node, bytes] = {}
        by_level: dict[int, list[int]] = {}
        for lv, i in keys:
            by_level.setdefault(lv, []).append(i)
        parts, params = [], []
        for lv, idxs in by_level.items():
            for j in range(0, len(idxs), _IN_CHUNK):
                chunk = idxs[j:j + _IN_CHUNK]
                parts.append(f"(level = {int(lv)} AND idx IN ({', '.join([self.mark] * len(chunk))}))")
                params.extend(chunk)
        q = f"SELECT level, idx, hash FROM ledger_merkle_nodes WHERE {' OR '.join(parts)}"
        for lv, i, h in self.conn.exec_driver_sql(q, tuple(params)):
            out[(int(lv), int(i))] = bytes(h)
        return out

    def covered(self) -> int:
        if not self.has_nodes:
            return 0
        top = self.conn.exec_driver_sql(
            f"SELECT MAX(idx) FROM ledger_merkle_nodes WHERE level = {STORED_LEVEL}").scalar()
        return (int(top) + 1) * _CHUNK if top is not None else 0

    def put(self, nodes: Mapping[Node, bytes]) -> None:
        if not nodes:
            return
        verb = "INSERT OR IGNORE INTO" if self.conn.dialect.name == "sqlite" else "INSERT INTO"
        tail = "" if self.conn.dialect.name == "sqlite" else " ON CONFLICT DO NOTHING"
        m = self.mark
        self.conn.exec_driver_sql(f"{verb} ledger_merkle_nodes (level, idx, hash) VALUES ({m}, {m}, {m}){tail}",
                                  [(lv, i, h) for (lv, i), h in nodes.items()])


class TreeView:
    """The tree over a store's events as seen through one connection (or the memory store)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._covered: int | None = None

    @property
    def covered(self) -> int:
        if self._covered is None:
            self._covered = self.backend.covered()
        return self._covered

    def size(self) -> int:
        return self.backend.size()

    # -- resolving complete subtrees -------------------------------------------------------------
    def _plan(self, node: Node, stored: set[Node], ranges: list[tuple[int, int]]) -> None:
        level, idx = node
        lo, hi = idx << level, (idx + 1) << level
        if level >= STORED_LEVEL and hi <= self.covered:
            stored.add(node)
        elif level <= STORED_LEVEL or lo >= self.covered:
            ranges.append((lo, hi))
        else:
            self._plan((level - 1, 2 * idx), stored, ranges)
            self._plan((level - 1, 2 * idx + 1), stored, ranges)

    def nodes(self, wanted: Sequence[Node]) -> dict[Node, bytes]:
        """Hashes of complete subtrees: from the cache where it covers them, else from the events."""
        stored: set[Node] = set()
        ranges: list[tuple[int, int]] = []
        for node in wanted:
            self._plan(node, stored, ranges)
        known = self.backend.stored(sorted(stored))
        if len(known) != len(stored):
            raise LedgerError("the Merkle node cache lacks nodes it should hold (ledger_merkle_nodes tampered?)")
        leaves: dict[int, bytes] = {}
        for lo, hi in _merge(ranges):
            for i, raw in enumerate(self.backend.leaves(lo, hi), start=lo):
                leaves[i] = merkle.leaf_hash(raw)

        def node_of(n: Node) -> bytes:
            h = known.get(n)
            if h is None:
                level, idx = n
                h = leaves[idx] if level == 0 else merkle.node_hash(node_of((level - 1, 2 * idx)),
                                                                      node_of((level - 1, 2 * idx + 1)))
                known[n] = h
            return h

        return {n: node_of(n) for n in wanted}

    # -- roots and proofs ------------------------------------------------------------------------
    def root(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        return merkle.range_hash(0, size, self.nodes(merkle.root_nodes(size)))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.nodes)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, self.nodes)

    # -- extending the cache ---------------------------------------------------------------------
    def sync(self, target: int) -> int:
        """Add to the cache every complete subtree (level >= 4) inside the first ``target`` leaves;
        returns the number of nodes written."""
        start = self.covered
        stop = target // _CHUNK * _CHUNK
        if stop <= start:
            return 0
        leaves = self.backend.leaves(start, stop)
        new: dict[Node, bytes] = {}
        level_hashes: list[bytes] = []
        for c in range(0, stop - start, _CHUNK):
            f = merkle.Frontier()
            for raw in leaves[c:c + _CHUNK]:
                f.append_hash(merkle.leaf_hash(raw))
            level_hashes.append(f.root())
        level, first = STORED_LEVEL, start // _CHUNK
        for k, h in enumerate(level_hashes):
            new[(level, first + k)] = h
        while len(level_hashes) > 0:
            if first % 2:  # the left sibling of the first new node is already stored
                left = self.backend.stored([(level, first - 1)]).get((level, first - 1))
                if left is None:
                    raise LedgerError("the Merkle node cache is incomplete (ledger_merkle_nodes tampered?)")
                level_hashes = [left, *level_hashes]
                first -= 1
            parents = [merkle.node_hash(level_hashes[j], level_hashes[j + 1])
                       for j in range(0, len(level_hashes) - 1, 2)]
            level, first, level_hashes = level + 1, first // 2, parents
            for k, h in enumerate(parents):
                new[(level, first + k)] = h
        self.backend.put(new)
        self._covered = stop
        return len(new)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _has_nodes_table(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(MERKLE_NODES.name)


@contextlib.contextmanager
def open_view(store: Store, *, write: bool = False) -> Iterator[TreeView]:
    """A :class:`TreeView` of ``store``; ``write=True`` holds the append lock (for :func:`sync`
    and checkpoints) so that the head does not move meanwhile."""
    if isinstance(store, MemoryStore):
        with store._lock:
            yield TreeView(_MemoryBackend(store))
        return
    from dosewise.ledger.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise LedgerError(f"no Merkle tree support for {type(store).__name__}")
    if write:
        with store._locked() as conn:
            yield TreeView(_SQLBackend(conn))
        return
    with store.engine.connect() as conn:
        revision = getattr(store, "revision", None)
        has_nodes = _has_nodes_table(conn) if revision is None or revision < "0002" else True
        try:
            yield TreeView(_SQLBackend(conn, has_nodes=has_nodes))
        finally:
            conn.rollback()


def root(store: Store, size: int | None = None) -> tuple[int, bytes]:
    """(tree size, root hash) of the first ``size`` events (default: all)."""
    with open_view(store) as view:
        n = view.size() if size is None else size
        return n, view.root(n)


def inclusion_proof(store: Store, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` (event seq ``index + 1``) in the tree of the first ``size`` events."""
    with open_view(store) as view:
        return view.inclusion(index, size)


def consistency_proof(store: Store, old: int, new: int) -> list[bytes]:
    """Proof that the tree of the first ``old`` events is a prefix of the tree of the first ``new``."""
    with open_view(store) as view:
        return view.consistency(old, new)


def sync(store: Store) -> int:
    """Bring the node cache up to the head; returns the number of nodes written."""
    with open_view(store, write=True) as view:
        return view.sync(view.size())

