"""Load generator: open model (constant arrival rate) and closed model (N clients), in its own thread.

Why hand-written rather than requests/aiohttp/Locust in-process: on a small CI box the generator
shares the CPU with the server under test, so every microsecond it spends per request is taken
from the server and shows up as latency. This is a single-threaded event loop
over raw non-blocking sockets, sending pre-serialised HTTP/1.1 requests (headers and body built
once, before the run) and parsing only the status line and ``Content-Length`` of each answer.
It polls with ``epoll`` directly (``selectors`` costs a few microseconds of bookkeeping per
call, a tenth of the budget). It keeps connections alive when the server allows it and reconnects when the server closes
them (gunicorn's sync workers, as azmlinfsrv runs them, close after every response). During the
run it only stores timestamps; latencies and the histogram are computed afterwards
(:mod:`releasetest.checks.load.latency`).

Open model: request ``i`` is due at ``schedule[i]`` (constant rate, optional linear ramp). Due
requests wait in a FIFO for a free connection (at most ``concurrency`` in flight, like the
front end queueing in front of a container), and latency is measured from the due time, so
time spent queued behind a stall counts (coordinated omission corrected). Closed model: each of
``concurrency`` clients sends its next request when the previous one answered; latency from the
actual send, as wrk and Locust report it.

No interpreter patching (no gevent): it runs in a plain thread the caller joins, so pytest's
own thread and anything else in the process keep working.
"""

from __future__ import annotations

import _socket
import errno
import json
import math
import select
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from releasetest.checks.load.latency import LoadResult, summarize
from releasetest.endpoint.formats import Wire
from releasetest.errors import ConfigError
from releasetest.progress import Event, Progress, silent

#: Status codes used internally for requests without an HTTP answer.
TIMEOUT = -1
CONN_ERROR = 0
#: How often in-flight requests are checked against their deadline.
TIMEOUT_CHECK_S = 0.005
RECV_BYTES = 65536
#: Non-blocking from creation where the platform allows it (one system call fewer).
_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
_SOCK_TYPE = _socket.SOCK_STREAM | _NONBLOCK


@dataclass(frozen=True)
class Profile:
    """One run: model, rate, bounds. ``max_requests`` bounds the count whatever the rate."""

    mode: str = "open"  # "open" | "closed"
    rate: float = 20.0
    duration_s: float = 10.0
    warmup_s: float = 2.0
    ramp_s: float = 0.0
    concurrency: int = 16
    timeout_s: float = 30.0
    max_requests: int = 1_000_000


def open_schedule(rate: float, duration_s: float, ramp_s: float = 0.0, max_requests: int = 1_000_000) -> list[float]:
    """Due times (s from start) for a rate that rises linearly from 0 over ``ramp_s``, then holds.

    With a ramp the cumulative count is ``N(t) = rate t^2 / (2 ramp)`` until ``ramp_s``, so request
    ``n`` is due at ``sqrt(2 ramp n / rate)``; after it, one every ``1/rate`` seconds.
    """
    if rate <= 0 or duration_s <= 0:
        return []
    out: list[float] = []
    ramp_s = min(ramp_s, duration_s)
    in_ramp = rate * ramp_s / 2.0
    n = 0
    while n < max_requests:
        t = math.sqrt(2.0 * ramp_s * n / rate) if n < in_ramp else ramp_s + (n - in_ramp) / rate
        if t >= duration_s:
            break
        out.append(t)
        n += 1
    return out


def build_requests(
    uri: str, headers: Mapping[str, str], bodies: Sequence[bytes],
) -> tuple[tuple[str, int], list[bytes]]:
    """Address and complete HTTP/1.1 POST requests (head + body), serialised once before the run."""
    parts = urlsplit(uri)
    if parts.scheme != "http":
        raise ConfigError(None, "load.engine", f"the built-in generator speaks plain HTTP; {uri} is {parts.scheme}",
                          "use engine = \"locust\" in [load] for an https endpoint")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
            "Connection: keep-alive", "User-Agent: releasetest-load"]
    head += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("content-type", "host")]
    prefix = "\r\n".join(head)
    reqs = [f"{prefix}\r\nContent-Length: {len(b)}\r\n\r\n".encode("latin-1") + b for b in bodies]
    if not reqs:
        raise ConfigError(None, "data.holdout", "no request bodies to send", "the holdout needs at least one row")
    return (host, port), reqs


_READ = select.POLLIN | select.POLLPRI
_WRITE = select.POLLOUT
_FAIL = select.POLLERR | select.POLLHUP


class _Poller:
    """``epoll`` where it exists, ``poll`` elsewhere; timeouts in seconds either way."""

    def __init__(self) -> None:
        self._epoll = getattr(select, "epoll", None)
        self.impl: Any = self._epoll() if self._epoll else select.poll()
        self.register, self.modify = self.impl.register, self.impl.modify

    def forget(self, fd: int) -> None:
        """Before closing ``fd``: epoll drops a closed descriptor by itself (saves a syscall)."""
        if not self._epoll:
            self.impl.unregister(fd)

    def poll(self, timeout_s: float) -> list[tuple[int, int]]:
        if self._epoll:
            return self.impl.poll(timeout_s)
        return self.impl.poll(timeout_s * 1000.0)

    def close(self) -> None:
        if self._epoll:
            self.impl.close()


def request_bodies(rows: Sequence[Sequence[float]], rows_per_request: int = 1, limit: int = 1024,
                   wire: Wire | None = None) -> list[bytes]:
    """JSON bodies in the release's format (``wire``; default ``{"data": rows}``) cut from the
    holdout in order, so the server sees varied real inputs rather than one repeated body; at
    most ``limit``, reused round-robin. A release's ``batch_size`` caps the rows per request."""
    wire = wire or Wire()
    rows_per_request = min(rows_per_request, wire.batch_size or rows_per_request)
    out: list[bytes] = []
    n = len(rows)
    for start in range(0, min(n, limit * rows_per_request), rows_per_request):
        chunk = [rows[(start + k) % n] for k in range(rows_per_request)]
        out.append(json.dumps(wire.body(chunk)).encode())
    return out


class _Slot:
    """One connection slot: at most one request in flight on it."""

    __slots__ = ("sock", "fd", "req", "out", "buf", "need", "close_after", "chunked", "registered", "mask")

    def __init__(self) -> None:
        self.sock: _socket.socket | None = None
        self.fd = -1
        self.req = -1
        self.out = memoryview(b"")
        self.buf: bytes | bytearray = b""  # a bytearray once an answer spans several reads
        self.need = -1  # total bytes of the answer once its head is parsed
        self.close_after = False
        self.chunked = False
        self.registered = False
        self.mask = 0  # the events ``fd`` is registered for


class Generator:
    """Runs one profile against one address; timestamps in, :class:`LoadResult` out."""

    def __init__(self, address: tuple[str, int], requests: Sequence[bytes], profile: Profile):
        if profile.mode not in ("open", "closed"):
            raise ValueError(f"mode {profile.mode!r}: use 'open' or 'closed'")
        self.address = address
        self.requests = list(requests)
        self.profile = profile
        self.stop = threading.Event()
        self.poller = _Poller()
        self.by_fd: dict[int, _Slot] = {}
        self.intended = array("d")
        self.sent = array("d")
        self.done = array("d")
        self.status = array("i")
        self.t0 = 0.0
        self.inflight: dict[int, _Slot] = {}  # request index -> slot
        self.idle: deque[_Slot] = deque(_Slot() for _ in range(max(1, profile.concurrency)))

    # -- socket plumbing --------------------------------------------------------------------------

    def _drop(self, slot: _Slot) -> None:
        if slot.sock is not None:
            if slot.registered:
                self.poller.forget(slot.fd)
            slot.sock.close()
            del self.by_fd[slot.fd]
        slot.sock, slot.fd, slot.registered = None, -1, False

    def _finish(self, slot: _Slot, code: int, now: float) -> None:
        # Close before any bookkeeping: gunicorn closes gracefully (shuts down its side, then
        # reads until the client closes), so a single sync worker is idle until our close lands.
        if code <= 0 or slot.close_after:
            self._drop(slot)
        i = slot.req
        self.done[i] = now
        self.status[i] = code
        del self.inflight[i]
        slot.req, slot.buf, slot.need = -1, b"", -1
        self.idle.append(slot)

    def _start(self, slot: _Slot, i: int, now: float) -> None:
        slot.req = i
        self.sent[i] = now
        self.inflight[i] = slot
        slot.out = memoryview(self.requests[i % len(self.requests)])
        slot.close_after = slot.chunked = False
        if slot.sock is None:
            # The C-level socket type: socket.socket's Python __init__/close wrappers and a
            # separate setblocking() call cost more per connection than the rest of the loop.
            sock = _socket.socket(_socket.AF_INET, _SOCK_TYPE)
            if not _NONBLOCK:
                sock.setblocking(False)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            slot.sock, slot.fd = sock, sock.fileno()
            self.by_fd[slot.fd] = slot
            err = sock.connect_ex(self.address)
            if err not in (0, errno.EINPROGRESS):
                self._finish(slot, CONN_ERROR, now)
                return
            # No wait for writability: on loopback the handshake has completed by the time
            # connect returns, so sending at once saves a poll round trip (two system calls) per
            # connection; where it has not, send fails with EAGAIN and _send waits for POLLOUT.
        self._send(slot, now)

    def _send(self, slot: _Slot, now: float) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            n = sock.send(slot.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._finish(slot, CONN_ERROR, now)
            return
        slot.out = slot.out[n:]
        event = _WRITE if len(slot.out) else _READ
        if not slot.registered:
            self.poller.register(slot.fd, event)
            slot.registered, slot.mask = True, event
        elif slot.mask != event:  # a kept-alive connection is already waiting to read
            self.poller.modify(slot.fd, event)
            slot.mask = event

    def _recv(self, slot: _Slot, now: float) -> None:
        sock = slot.sock
        assert sock is not None
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(slot, CONN_ERROR, now)
            return
        buf = slot.buf
        if not data:  # peer closed: complete only if the answer had no length and ended with the close
            if slot.need == -2:
                slot.close_after = True
                self._finish(slot, int(buf[9:12]), now)
            else:
                self._finish(slot, CONN_ERROR, now)
            return
        if buf:
            buf += data  # a bytearray: see below
        else:  # the usual case, the whole answer in one read: parse it without copying
            buf = data
        if slot.need == -1:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].lower()
                slot.close_after = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    slot.need = end + 4 + int(head[at + 17: stop if stop >= 0 else len(head)])
                elif b"\r\ntransfer-encoding: chunked" in head:
                    slot.chunked, slot.need = True, 0
                else:
                    slot.need = -2  # read until the server closes
        if slot.need >= 0 and (
                buf.endswith(b"\r\n0\r\n\r\n") or buf.endswith(b"\n0\r\n\r\n") if slot.chunked
                else len(buf) >= slot.need):
            self._finish(slot, int(buf[9:12]), now)
        elif buf is data:
            slot.buf = bytearray(data)

    def _expire(self, now: float) -> None:
        """In-flight requests past their deadline become timeouts (their socket is dropped)."""
        timeout = self.profile.timeout_s
        late = [i for i in self.inflight if now - self.intended[i] >= timeout]
        for i in late:
            self._finish(self.inflight[i], TIMEOUT, now)

    def _wait(self, until: float) -> None:
        """Handle socket events for at most ``until - now`` seconds."""
        events = self.poller.poll(max(0.0, until - (time.perf_counter() - self.t0)))
        # One timestamp for the batch: every event in it was ready when poll returned.
        now = time.perf_counter() - self.t0
        by_fd = self.by_fd
        for fd, mask in events:
            slot = by_fd.get(fd)
            if slot is None:
                continue
            if slot.req < 0:  # an idle keep-alive connection became readable: the server closed it
                self._drop(slot)
                continue
            if mask & _READ or (mask & _FAIL and not slot.out):
                self._recv(slot, now)
            else:
                self._send(slot, now)

    # -- the two models ---------------------------------------------------------------------------

    def run_open(self, schedule: Sequence[float]) -> None:
        n = len(schedule)
        nan = math.nan
        self.intended = array("d", schedule)
        self.sent = array("d", [nan]) * n
        self.done = array("d", [nan]) * n
        self.status = array("i", [TIMEOUT]) * n
        timeout = self.profile.timeout_s
        nxt = 0
        self.t0 = time.perf_counter()
        next_check = 0.0
        while not self.stop.is_set():
            now = time.perf_counter() - self.t0
            while nxt < n and schedule[nxt] + timeout <= now:  # waited its whole timeout in the queue
                self.done[nxt] = schedule[nxt] + timeout
                nxt += 1
            while self.idle and nxt < n and schedule[nxt] <= now:
                self._start(self.idle.popleft(), nxt, now)
                nxt += 1
            if now >= next_check:
                self._expire(now)
                next_check = now + TIMEOUT_CHECK_S
            if nxt >= n and not self.inflight:
                break
            until = next_check
            if self.idle and nxt < n:
                until = min(until, schedule[nxt])
            self._wait(until)
        self._close_all()

    def run_closed(self) -> None:
        p = self.profile
        self.t0 = time.perf_counter()
        next_check = 0.0
        count = 0
        while not self.stop.is_set():
            now = time.perf_counter() - self.t0
            while self.idle and now < p.duration_s and count < p.max_requests:
                self.intended.append(now)
                self.sent.append(now)
                self.done.append(math.nan)
                self.status.append(TIMEOUT)
                self._start(self.idle.popleft(), count, now)
                count += 1
            if now >= next_check:
                self._expire(now)
                next_check = now + TIMEOUT_CHECK_S
            if not self.inflight and (now >= p.duration_s or count >= p.max_requests):
                break
            self._wait(next_check)
        self._close_all()

    def _close_all(self) -> None:
        now = time.perf_counter() - self.t0
        for slot in list(self.inflight.values()):
            self._finish(slot, TIMEOUT, now)  # only reached when stopped early
        for slot in self.idle:
            self._drop(slot)
        self.poller.close()

    def reading(self) -> tuple[float, int, float | None, int]:
        """Seconds run, requests answered, p99 latency so far (ms, from the intended start) and
        errors so far; read from the calling thread while the generator runs (copies, no locks)."""
        if not self.t0:
            return 0.0, 0, None, 0
        elapsed = time.perf_counter() - self.t0
        done, intended, status = self.done[:], self.intended[:], self.status[:]
        n = min(len(done), len(intended), len(status))
        finished = [i for i in range(n) if not math.isnan(done[i])]
        latencies = sorted(done[i] - intended[i] for i in finished)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else None
        errors = sum(1 for i in finished if not 200 <= status[i] < 300)
        return elapsed, len(finished), p99, errors

    def result(self) -> LoadResult:
        p = self.profile
        return summarize(
            mode=p.mode, intended=self.intended, sent=self.sent, done=self.done, status=self.status,
            warmup_s=p.warmup_s, end_s=p.duration_s, concurrency=p.concurrency,
            target_rps=p.rate if p.mode == "open" else None, timeout_status=TIMEOUT, conn_error_status=CONN_ERROR)


def run_load(uri: str, headers: Mapping[str, str], bodies: Sequence[bytes], profile: Profile,
             on_warm: Callable[[], None] | None = None, progress: Progress = silent) -> LoadResult:
    """Run one profile in a worker thread and return its figures.

    The calling thread only waits (in short joins, so Ctrl-C still interrupts, and stops the
    generator cleanly). ``on_warm`` is called from it once, as the warm-up ends, so a caller can
    take a reading (e.g. the server's memory) that covers exactly the measured requests; once a
    second it reports the rate, p99 so far and errors to ``progress``.
    """
    address, reqs = build_requests(uri, headers, bodies)
    gen = Generator(address, reqs, profile)
    target = gen.run_open if profile.mode == "open" else gen.run_closed
    args = (open_schedule(profile.rate, profile.duration_s, profile.ramp_s, profile.max_requests),) \
        if profile.mode == "open" else ()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=body, name="releasetest-loadgen", daemon=True)
    worker.start()
    what = f"{profile.rate:g} req/s open" if profile.mode == "open" else f"{profile.concurrency} clients closed"
    progress(Event(f"load: {what} for {profile.duration_s:g} s ({profile.warmup_s:g} s warm-up)"))
    next_tick, answered_before = time.monotonic() + 1.0, 0
    try:
        while worker.is_alive():
            if time.monotonic() >= next_tick:
                next_tick += 1.0
                elapsed, answered, p99, failed = gen.reading()
                p99_text = f"{p99:.1f} ms" if p99 is not None else "-"
                progress(Event(f"load {elapsed:4.0f}/{profile.duration_s:g} s: {answered - answered_before} req/s, "
                               f"p99 so far {p99_text}, {failed} errors", live=True))
                answered_before = answered
            wait = min(0.25, max(0.01, next_tick - time.monotonic()))
            if on_warm is not None:
                # t0 is 0.0 until the generator thread has started its clock.
                wait = min(wait, gen.t0 + profile.warmup_s - time.perf_counter()) if gen.t0 else 0.01
                if wait <= 0:
                    on_warm()
                    on_warm = None
                    continue
            worker.join(wait)
    except BaseException:
        gen.stop.set()
        worker.join(5.0)
        raise
    if errors:
        raise errors[0]
    result = gen.result()
    progress(Event(f"load done: {result.brief()}"))
    return result
