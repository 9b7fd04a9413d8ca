"""A gunicorn worker that answers while it scores, and scores on its main thread.

Azure ML v2 admits ``2 × max_concurrent_requests_per_instance`` scoring requests per instance and
answers 429 beyond (:mod:`releasetest.endpoint.server.app`). A sync worker, as azmlinfsrv runs
them, cannot answer anything while ``run()`` runs: a request beyond the limit would wait in the
listen backlog instead of being refused. gunicorn's threaded worker reads and answers requests
on its threads, but it would also call ``run()`` on them, where azmlinfsrv's scoring timeout
(``SIGALRM``, main thread only) does nothing and a model that is not thread-safe would be shared.
So this worker keeps gthread's event loop and request threads, and hands every call of the app to
the main thread, one at a time, as a sync worker would make it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from gunicorn.workers.gthread import ThreadWorker

T = TypeVar("T")

#: The main thread's job queue in a :class:`MainThreadWorker`; None elsewhere (calls run in place).
_jobs: queue.SimpleQueue[Callable[[], None]] | None = None


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` on this worker's main thread, waiting for its result (in place outside the worker)."""
    if _jobs is None:
        return fn()
    done: Future[T] = Future()

    def job() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:  # the waiting request thread re-raises it
            done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # SystemExit from gunicorn's quit signal ends the worker, as in a sync worker

    _jobs.put(job)
    return done.result()


class MainThreadWorker(ThreadWorker):
    """gthread's loop on a helper thread; the main thread runs the app calls it hands over."""

    def run(self) -> None:
        global _jobs
        jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        _jobs = jobs
        loop = threading.Thread(target=super().run, name="releasetest-gthread-loop", daemon=True)
        loop.start()
        while loop.is_alive():
            try:
                job = jobs.get(timeout=1.0)
            except queue.Empty:
                continue
            job()
        while not jobs.empty():  # handed over while the loop shut down: answer rather than strand them
            jobs.get_nowait()()
