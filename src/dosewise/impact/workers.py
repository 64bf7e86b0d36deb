"""How many processes a stacked engine run may be split over.

Participants do not infect each other in the model and every participant's result is the same
whichever block or process integrates it (see :func:`dosewise.impact.engine.simulate`), so a
stacked run can be split into parts and run in worker processes with the results of one run.
The optimiser's closed loop does so (:mod:`dosewise.optimize.model`); :func:`engine_workers` is
the one place that decides how many processes it may use.

Parallelism is turned off (one process, the caller's) by ``DOSEWISE_WORKERS=1`` in the
environment or ``workers=1`` where a function takes it, and always:

* inside a worker process (a ``multiprocessing`` child: a Dask worker, a process pool's worker,
  or one of these engine workers, which also set ``DOSEWISE_WORKERS=1`` for anything they start),
  so process pools are never nested;
* off the main thread (a web server's request threads, Dask's threaded scheduler), where forking
  a process is unsafe.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from dosewise.errors import InputError

ENV = "DOSEWISE_WORKERS"
"""Environment variable: the largest number of worker processes (1 turns parallelism off)."""
KIND_ENV = "DOSEWISE_WORKER_KIND"
"""Environment variable: ``processes`` (default: forked worker processes) or ``threads`` (threads of
this process; NumPy releases the GIL in its array loops, but the engine's many small calls hold it
often, so processes are faster where they can be used)."""
MAX_WORKERS = 8


def available_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def engine_workers(requested: int | None = None) -> int:
    """Worker processes for a stacked engine run: ``requested``, else ``$DOSEWISE_WORKERS``, else
    one per available core (at most :data:`MAX_WORKERS`); 1 inside a worker process or off the
    main thread (see the module docstring). ``fork`` must be available (POSIX), else 1.

    >>> engine_workers(1)
    1
    """
    if requested is None:
        raw = os.environ.get(ENV, "").strip()
        if raw:
            try:
                requested = int(raw)
            except ValueError:
                raise InputError(f"{ENV} must be a whole number of processes", field=ENV, value=raw) from None
        else:
            requested = min(available_cores(), MAX_WORKERS)
    if requested < 1:
        raise InputError("the number of worker processes must be at least 1", field="workers", value=requested)
    if requested == 1:
        return 1
    if multiprocessing.parent_process() is not None or threading.current_thread() is not threading.main_thread():
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return 1
    return int(requested)


def worker_kind() -> str:
    """``processes`` or ``threads``, from ``$DOSEWISE_WORKER_KIND`` (default ``processes``).

    >>> worker_kind() in ("processes", "threads")
    True
    """
    raw = os.environ.get(KIND_ENV, "").strip().lower() or "processes"
    if raw not in ("processes", "threads"):
        raise InputError(f"{KIND_ENV} must be processes or threads", field=KIND_ENV, value=raw)
    return raw
