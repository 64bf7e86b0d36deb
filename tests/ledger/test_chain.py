"""Hash-chain properties: any edit, deletion or swap is caught at the right seq."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.ledger import MemoryStore, NewEvent
from dosewise.ledger.events import row_hash, verify_rows

N = 12


def _ledger() -> MemoryStore:
    store = MemoryStore()
    store.append([
        NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id=f"O{i}",
                 participant=["BTN", "MDV", "MNE", "PRK"][i % 4],
                 payload={"doses": 2400 * (i + 1), "note": "ü"})
        for i in range(N)
    ])
    return store


def test_untouched_chain_verifies() -> None:
    report = _ledger().verify()
    assert report.ok and report.checked == N and report.head_seq == N and report.first_bad_seq is None


@given(index=st.integers(0, N - 1), pos=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_any_single_byte_edit_of_a_payload_is_caught(index: int, pos: int, byte: int) -> None:
    store = _ledger()
    row = list(store._rows[index])
    raw = bytearray(row[7].encode("utf-8"))
    pos %= len(raw)
    if raw[pos] == byte:
        byte = (byte + 1) % 256
    raw[pos] = byte
    row[7] = raw.decode("utf-8", errors="replace")
    store._rows[index] = tuple(row)
    report = store.verify()
    assert not report.ok
    assert report.first_bad_seq == index + 1
    assert "edited" in (report.problem or "")
    assert report.checked == index


@given(index=st.integers(0, N - 2))
def test_any_deletion_is_caught(index: int) -> None:
    store = _ledger()
    del store._rows[index]
    report = store.verify()
    assert not report.ok and report.first_bad_seq == index + 1
    assert "missing" in (report.problem or "")


@given(pair=st.lists(st.integers(0, N - 1), min_size=2, max_size=2, unique=True))
def test_any_swap_of_two_events_is_caught(pair: list[int]) -> None:
    i, j = sorted(pair)
    store = _ledger()
    store._rows[i], store._rows[j] = store._rows[j], store._rows[i]
    report = store.verify()
    assert not report.ok and report.first_bad_seq == i + 1


@given(pair=st.lists(st.integers(0, N - 1), min_size=2, max_size=2, unique=True))
def test_exchanging_seq_values_is_caught(pair: list[int]) -> None:
    # the SQL form of reordering: rows stay sorted by seq, but their seq values were exchanged
    i, j = sorted(pair)
    store = _ledger()
    a, b = list(store._rows[i]), list(store._rows[j])
    a[0], b[0] = b[0], a[0]
    store._rows[i], store._rows[j] = tuple(b), tuple(a)
    report = store.verify()
    assert not report.ok and report.first_bad_seq == i + 1


@settings(max_examples=30)
@given(index=st.integers(0, N - 2))
def test_edit_with_recomputed_hash_breaks_the_next_link(index: int) -> None:
    store = _ledger()
    row = list(store._rows[index])
    row[7] = row[7].replace('"doses":', '"doses":1')
    row[13] = row_hash(row)
    store._rows[index] = tuple(row)
    report = store.verify()
    assert not report.ok and report.first_bad_seq == index + 2
    assert "broken link" in (report.problem or "")


def test_truncation_is_caught_against_a_recorded_head() -> None:
    store = _ledger()
    head = store.head()
    assert head is not None
    del store._rows[-1]
    assert store.verify().ok  # a shorter chain is still a valid chain ...
    report = verify_rows(store._rows, expected_head=(head.seq, head.hash))
    assert not report.ok and report.first_bad_seq == N  # ... but not the one published
