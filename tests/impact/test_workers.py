"""How many worker processes a stacked engine run may use: asked, from the environment, and never
nested (inside a worker process or off the main thread)."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from dosewise.errors import InputError
from dosewise.impact.workers import ENV, KIND_ENV, engine_workers, worker_kind


def test_asked_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert engine_workers(1) == 1
    assert engine_workers(3) == 3
    assert engine_workers() >= 1
    monkeypatch.setenv(ENV, "1")
    assert engine_workers() == 1
    monkeypatch.setenv(ENV, "2")
    assert engine_workers() == 2
    assert engine_workers(1) == 1  # an argument wins over the environment


@pytest.mark.parametrize("raw", ["two", "1.5", "0", "-3"])
def test_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(ENV, raw)
    with pytest.raises(InputError) as err:
        engine_workers()
    assert err.value.field in (ENV, "workers")


def test_one_process_off_the_main_thread() -> None:
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(engine_workers(4)))
    t.start()
    t.join()
    assert got == [1]


def _in_child(q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    q.put(engine_workers(4))


def test_one_process_inside_a_worker_process() -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_in_child, args=(q,))
    p.start()
    got = q.get(timeout=30)
    p.join(timeout=30)
    assert got == 1


def test_worker_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KIND_ENV, raising=False)
    assert worker_kind() == "processes"
    monkeypatch.setenv(KIND_ENV, "Threads")
    assert worker_kind() == "threads"
    monkeypatch.setenv(KIND_ENV, "gpu")
    with pytest.raises(InputError):
        worker_kind()
