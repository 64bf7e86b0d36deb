"""The Merkle tree of RFC 9162 §2.1 (Certificate Transparency 2.0), with its proofs.

Hashes (SHA-256):

* leaf: ``SHA-256(0x00 || leaf)``; interior node: ``SHA-256(0x01 || left || right)``;
  the empty tree: ``SHA-256()``.
* The tree over ``n`` leaves splits at ``k``, the largest power of two below ``n``:
  ``MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))``. Every subtree that occurs is
  either *complete* (``2**level`` leaves starting at a multiple of ``2**level``, named
  ``(level, index)``) or the right edge of the tree, which is the right-to-left fold
  of the complete subtrees its range decomposes into.

This module is pure: proofs are computed from a *node source* (a function that
returns the hashes of the complete subtrees a proof needs), so the same code serves
the in-memory tree of a test, the node table of a SQL ledger and a verifier holding
only a receipt. Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency) step by step.

In the dosewise ledger, leaf ``i`` is the 32-byte chain hash (``Event.hash``) of the
event with ``seq = i + 1``; that hash covers the event's canonical JSON, including
``prev_hash``, so a leaf commits to the event and to its place in the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "Node",
    "ProofError",
    "consistency_nodes",
    "consistency_proof",
    "decompose",
    "inclusion_nodes",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_from_leaves",
    "root_nodes",
    "verify_consistency",
    "verify_inclusion",
]

Node = tuple[int, int]
"""A complete subtree: ``(level, index)`` covers leaves ``[index << level, (index + 1) << level)``."""

NodeSource = Callable[[Sequence[Node]], Mapping[Node, bytes]]
"""Returns the hash of each requested complete subtree."""

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
"""The root of the empty tree (RFC 9162 §2.1.1)."""


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof can exist for."""


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def decompose(lo: int, hi: int) -> list[Node]:
    """The complete subtrees, left to right, that the tree's range ``[lo, hi)`` is made of.

    Valid for every range that occurs in the RFC recursion (``lo`` a multiple of a power of
    two at least ``hi - lo``): the largest complete subtree first, then the rest.
    """
    out: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo & ((1 << level) - 1):
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees: fold from the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash(lo: int, hi: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[lo:hi]) from the hashes of :func:`decompose` ``(lo, hi)``."""
    return _fold([nodes[n] for n in decompose(lo, hi)])


def _path_ranges(m: int, lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    # RFC 9162 §2.1.3.1: PATH(m, D[n]) — leaf side first, root side last
    if hi - lo <= 1:
        return
    k = _split(hi - lo)
    if m < k:
        _path_ranges(m, lo, lo + k, out)
        out.append((lo + k, hi))
    else:
        _path_ranges(m - k, lo + k, hi, out)
        out.append((lo, lo + k))


def _subproof_ranges(m: int, lo: int, hi: int, whole: bool, out: list[tuple[int, int]]) -> None:
    # RFC 9162 §2.1.4.1: SUBPROOF(m, D[n], b)
    n = hi - lo
    if m == n:
        if not whole:
            out.append((lo, hi))
        return
    k = _split(n)
    if m <= k:
        _subproof_ranges(m, lo, lo + k, whole, out)
        out.append((lo + k, hi))
    else:
        _subproof_ranges(m - k, lo + k, hi, False, out)
        out.append((lo, lo + k))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make up the inclusion proof of leaf ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    _path_ranges(index, 0, size, out)
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make up the consistency proof from size ``old`` to ``new``."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    out: list[tuple[int, int]] = []
    if 0 < old < new:
        _subproof_ranges(old, 0, new, True, out)
    return out


def _needed(ranges: Iterable[tuple[int, int]]) -> list[Node]:
    seen: dict[Node, None] = {}
    for lo, hi in ranges:
        for node in decompose(lo, hi):
            seen[node] = None
    return list(seen)


def inclusion_nodes(index: int, size: int) -> list[Node]:
    """Every complete subtree an inclusion proof needs (to prefetch them in one query)."""
    return _needed(inclusion_ranges(index, size))


def consistency_nodes(old: int, new: int) -> list[Node]:
    """Every complete subtree a consistency proof needs."""
    return _needed(consistency_ranges(old, new))


def root_nodes(size: int) -> list[Node]:
    """The complete subtrees the root of a tree of ``size`` folds."""
    return decompose(0, size)


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
    ranges = inclusion_ranges(index, size)
    nodes = source(_needed(ranges))
    return [range_hash(lo, hi, nodes) for lo, hi in ranges]


def consistency_proof(old: int, new: int, source: NodeSource) -> list[bytes]:
    """The proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
    ranges = consistency_ranges(old, new)
    nodes = source(_needed(ranges))
    return [range_hash(lo, hi, nodes) for lo, hi in ranges]


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """MTH of raw leaves (a reference implementation, used by tests and small trees)."""
    f = Frontier()
    for leaf in leaves:
        f.append_hash(leaf_hash(leaf))
    return f.root()


class Frontier:
    """The right edge of a growing tree (one complete subtree per set bit of its size).

    Appending a leaf costs one leaf hash plus one node hash per carry; :meth:`root`
    folds the edge. Used to recompute the root at any size while walking the events.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self) -> None:
        self._levels: list[int] = []
        self._hashes: list[bytes] = []
        self.size = 0

    def append_hash(self, h: bytes) -> None:
        levels, hashes = self._levels, self._hashes
        level = 0
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
        levels.append(level)
        hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def nodes(self) -> list[tuple[Node, bytes]]:
        """The complete subtrees of the edge, left to right, with their hashes."""
        out: list[tuple[Node, bytes]] = []
        start = 0
        for level, h in zip(self._levels, self._hashes, strict=True):
            out.append(((level, start >> level), h))
            start += 1 << level
        return out


def _lsb(x: int) -> int:
    return x & 1


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise :class:`ProofError` unless ``leaf`` (a leaf *hash*) is leaf
    ``index`` of the tree of ``size`` whose root is ``root``."""
    if index >= size or index < 0:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    if any(len(p) != 32 for p in proof) or len(leaf) != 32 or len(root) != 32:
        raise ProofError("hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise :class:`ProofError` unless the tree of ``old`` leaves with root
    ``old_root`` is a prefix of the tree of ``new`` leaves with root ``new_root``."""
    if old < 0 or new < old:
        raise ProofError(f"tree size went down from {old} to {new}")
    if any(len(p) != 32 for p in proof):
        raise ProofError("hashes must be 32 bytes")
    if old == new:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old}")
        return
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if _lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not _lsb(fn):
                while not (_lsb(fn) or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root (the log was rewritten or forked)")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
