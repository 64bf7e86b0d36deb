"""The Merkle tree of a store: node cache, roots and proofs equal the reference computation."""

from __future__ import annotations

import pytest

from dosewise.errors import LedgerError
from dosewise.ledger import NewEvent, Store
from dosewise.ledger import tree as ledger_tree
from dosewise.ledger.merkle import ProofError, leaf_hash, root_from_leaves, verify_consistency, verify_inclusion
from dosewise.ledger.sql import SQLStore


def _fill(store: Store, n: int, start: int = 0) -> None:
    store.append([NewEvent(type="offer.made", actor="secretariat", offer_id=f"O{start + i}",
                           payload={"doses": 100 * (start + i)}) for i in range(n)])


def _leaves(store: Store) -> list[bytes]:
    return [bytes.fromhex(e.hash) for e in store.read()]


def test_roots_and_proofs_match_the_reference_as_the_log_grows(store: Store) -> None:
    sizes = [1, 2, 15, 16, 17, 33, 64, 100, 129]
    done = 0
    for step, size in enumerate(sizes):
        _fill(store, size - done, done)
        done = size
        if step % 2:
            ledger_tree.sync(store)  # the cache covers some sizes and lags behind at others
        leaves = _leaves(store)
        for n in sorted({1, size // 2 or 1, size - 1 or 1, size}):
            expected = root_from_leaves(leaves[:n])
            assert ledger_tree.root(store, n) == (n, expected)
            for i in {0, n // 3, n - 1}:
                verify_inclusion(i, n, leaf_hash(leaves[i]), ledger_tree.inclusion_proof(store, i, n), expected)
            for m in {0, 1, n // 2, n}:
                verify_consistency(m, n, root_from_leaves(leaves[:m]), expected,
                                   ledger_tree.consistency_proof(store, m, n))


def test_cache_is_written_once_and_only_for_complete_subtrees(sql_store: Store) -> None:
    _fill(sql_store, 100)
    written = ledger_tree.sync(sql_store)
    # 100 leaves: 6 complete chunks of 16 (level 4), 3 of 32, 1 of 64
    assert written == 6 + 3 + 1
    assert ledger_tree.sync(sql_store) == 0
    _fill(sql_store, 28, 100)  # 128 leaves: chunks 7 and 8, then 4 at level 5, 2 at 6, 1 at 7
    assert ledger_tree.sync(sql_store) == 2 + 1 + 1 + 1
    assert isinstance(sql_store, SQLStore)
    with sql_store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_merkle_nodes").scalar()
    assert count == 8 + 4 + 2 + 1


def test_a_tampered_cache_is_noticed(sql_store: Store) -> None:
    _fill(sql_store, 64)
    ledger_tree.sync(sql_store)
    assert isinstance(sql_store, SQLStore)
    with sql_store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER ledger_merkle_nodes_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE ledger_merkle_nodes DISABLE TRIGGER USER")
        conn.exec_driver_sql("DELETE FROM ledger_merkle_nodes WHERE level = 4 AND idx = 1")
    leaves = _leaves(sql_store)
    proof = ledger_tree.inclusion_proof(sql_store, 40, 64)  # does not need the deleted node
    verify_inclusion(40, 64, leaf_hash(leaves[40]), proof, root_from_leaves(leaves))
    with pytest.raises(LedgerError, match="cache"):
        ledger_tree.inclusion_proof(sql_store, 0, 32)  # needs it


def test_proof_for_events_that_are_not_there_is_refused(store: Store) -> None:
    _fill(store, 5)
    with pytest.raises(ProofError):
        ledger_tree.inclusion_proof(store, 5, 5)
    with pytest.raises((LedgerError, KeyError)):
        ledger_tree.root(store, 9)
