"""The Merkle tree against the RFC 6962/9162 reference vectors of the certificate-transparency project.

Vectors: transparency-dev/merkle, proof/verify_test.go (leaves, roots of the trees of 1..8 leaves,
inclusion and consistency proofs), the same data as certificate-transparency's merkle tree tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    Node,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
# (leaf number, 1-based as in the vectors; tree size; proof)
INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (1, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def source_for(leaves: Sequence[bytes]) -> Callable[[Sequence[Node]], Mapping[Node, bytes]]:
    hashes = [leaf_hash(x) for x in leaves]

    def node(level: int, index: int) -> bytes:
        if level == 0:
            return hashes[index]
        return node_hash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))

    def source(wanted: Sequence[Node]) -> Mapping[Node, bytes]:
        return {n: node(*n) for n in wanted}

    return source


def test_empty_tree_root() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_reference(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_reference(leaf: int, size: int, proof: list[str]) -> None:
    got = inclusion_proof(leaf - 1, size, source_for(LEAVES[:size]))
    assert [p.hex() for p in got] == proof
    verify_inclusion(leaf - 1, size, leaf_hash(LEAVES[leaf - 1]), got, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_reference(old: int, new: int, proof: list[str]) -> None:
    got = consistency_proof(old, new, source_for(LEAVES[:new]))
    assert [p.hex() for p in got] == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], got)


def _inclusion_probes(i: int, n: int, proof: list[bytes], root: bytes, leaf: bytes) -> list[tuple[object, ...]]:
    probes: list[tuple[object, ...]] = [
        (i - 1, n, root, leaf, proof), (i + 1, n, root, leaf, proof), (i ^ 2, n, root, leaf, proof),
        (i, n * 2, root, leaf, proof), (i, n // 2, root, leaf, proof),
        (i, n, root, leaf_hash(b"WrongLeaf"), proof), (i, n, EMPTY_ROOT, leaf, proof), (i, n, SOME_HASH, leaf, proof),
        (i, n, root, leaf, [*proof, root]), (i, n, root, leaf, [root, *proof]),
    ]
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
        probes.append((i, n, root, leaf, bad))
    if proof:
        probes.append((i, n, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((i, n, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION[:4])
def test_corrupted_inclusion_proofs_fail(leaf: int, size: int, proof: list[str]) -> None:
    good = [bytes.fromhex(p) for p in proof]
    for i, n, root, lh, pr in _inclusion_probes(leaf - 1, size, good, ROOTS[size - 1], leaf_hash(LEAVES[leaf - 1])):
        with pytest.raises(ProofError):
            verify_inclusion(i, n, lh, pr, root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    good = [bytes.fromhex(p) for p in proof]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, r1, r2, good), (old + 1, new, r1, r2, good), (old ^ 2, new, r1, r2, good),
        (old, new * 2, r1, r2, good), (old, new // 2, r1, r2, good),
        (old, new, SOME_HASH, r2, good), (old, new, r1, SOME_HASH, good), (old, new, r2, r1, good),
        (old, new, r1, r2, []), (old, new, r1, r2, [*good, r1]), (old, new, r1, r2, [*good, r2]),
        (old, new, r1, r2, [r1, *good]), (old, new, r1, r2, [r2, *good]), (old, new, r1, r2, [good[0], *good]),
        (old, new, r1, r2, good[:-1]),
    ]
    for k in range(len(good)):
        bad = list(good)
        bad[k] = bytes([bad[k][0] ^ 16]) + bad[k][1:]
        probes.append((old, new, r1, r2, bad))
    for o, n, a, b, pr in probes:
        if (o, n, a, b) == (old, new, r1, r2) and pr == good:
            continue
        if o == n and a == b and not pr:
            continue  # equal sizes and roots with an empty proof are consistent
        with pytest.raises(ProofError):
            verify_consistency(o, n, a, b, pr)


def test_trivial_consistency_cases() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(ProofError):
        verify_consistency(4, 3, ROOTS[3], ROOTS[2], [])
    with pytest.raises(ProofError):
        verify_consistency(1, 1, ROOTS[0], ROOTS[0], [EMPTY_ROOT])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_proof_of_a_random_tree_verifies(n: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(n)]
    source = source_for(leaves)
    roots = [root_from_leaves(leaves[:k]) for k in range(n + 1)]
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(0, n))
    verify_inclusion(i, n, leaf_hash(leaves[i]), inclusion_proof(i, n, source), roots[n])
    verify_consistency(m, n, roots[m], roots[n], consistency_proof(m, n, source))
    if 0 < m < n:
        other = [*leaves[: m - 1], b"forged", *leaves[m:]]
        with pytest.raises(ProofError):
            verify_consistency(m, n, root_from_leaves(other[:m]), roots[n], consistency_proof(m, n, source))
