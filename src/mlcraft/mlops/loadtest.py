"""A real uvicorn server on loopback for tests and notebooks, and a bounded load test against it.

:func:`serve_in_background` binds a socket on ``127.0.0.1`` (port 0: the OS picks a free one, so
there is no race between finding a port and using it), runs ``uvicorn.Server`` on it in a
thread (uvicorn supports this: it installs signal handlers only in the main thread) and stops it
on exit, forcing the exit if a graceful shutdown does not finish in time.

:func:`run_load_test` is bounded in both request count and wall time, with ``concurrency``
closed-loop workers (each sends its next request when the previous one is answered), in the
spirit of ``hey``/``wrk``. It refuses targets outside the loopback range unless told otherwise:
load tests belong on machines you own.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from mlcraft.mlops.timing import LatencySummary, summarize_latencies
from mlcraft.utils.logging import get_logger

__all__ = [
    "BackgroundServer",
    "LoadTestReport",
    "RunningServer",
    "ServerProcess",
    "free_port",
    "is_loopback",
    "run_load_test",
    "serve_in_background",
    "serve_in_subprocess",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`serve_in_background`."""

    host: str
    port: int
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_in_background(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 30.0,
    shutdown_timeout: float = 10.0,
    log_level: str = "warning",
) -> Iterator[RunningServer]:
    """Run ``app`` (an ASGI app) under uvicorn in a daemon thread while the ``with`` block runs.

    Start-up (including the app's lifespan, e.g. loading a model) must finish within
    ``startup_timeout`` seconds, else ``RuntimeError``. On exit the server is asked to stop
    (open connections are closed after in-flight requests) and, after ``shutdown_timeout``,
    forced; the thread is joined, so nothing is left running.
    """
    import uvicorn

    if not is_loopback(host):
        raise ValueError(f"serve_in_background binds loopback addresses only, got {host!r}")
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on a connection only when its socket says
    # it is TCP, and a plain socket(AF_INET, SOCK_STREAM) has proto 0. Without TCP_NODELAY, Nagle's
    # algorithm holds the second write of a response (body after headers) until the client's
    # delayed ACK: every request then takes ~40 ms more on Linux. Set on the listening socket too.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host=host, port=bound_port, log_level=log_level, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    exit_codes: list[object] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except SystemExit as stop:  # uvicorn exits with code 3 when the app's start-up fails
            exit_codes.append(stop.code)

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                code = exit_codes[0] if exit_codes else None
                raise RuntimeError(
                    f"uvicorn on {host}:{bound_port} exited during start-up (exit code {code}; see its log)"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on {host}:{bound_port} did not start within {startup_timeout} s")
            time.sleep(0.02)
        log.info("server started", url=f"http://{host}:{bound_port}")
        yield RunningServer(host, bound_port, thread)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(shutdown_timeout)
        sock.close()
        if thread.is_alive():  # pragma: no cover - uvicorn ignored both requests
            raise RuntimeError(f"uvicorn on {host}:{bound_port} did not stop within {2 * shutdown_timeout} s")
        log.info("server stopped", url=f"http://{host}:{bound_port}")


class BackgroundServer:
    """:func:`serve_in_background` for code that cannot hold a ``with`` block open, such as a
    notebook whose server spans several cells: ``start()``, use ``url``, ``stop()``. Stopping
    twice is harmless, and the thread is a daemon, so a kernel that exits does not hang on it.
    """

    def __init__(self, app: Any, **options: Any) -> None:
        self.app, self.options = app, options
        self._stack: ExitStack | None = None
        self.server: RunningServer | None = None

    def start(self) -> RunningServer:
        if self._stack is not None:
            raise RuntimeError("server already started; stop() it first")
        stack = ExitStack()
        self.server = stack.enter_context(serve_in_background(self.app, **self.options))
        self._stack = stack
        return self.server

    @property
    def url(self) -> str:
        if self.server is None or self._stack is None:
            raise RuntimeError("server not running; call start()")
        return self.server.url

    @property
    def running(self) -> bool:
        return self._stack is not None

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS's pick for port 0). Another process could take it
    before you bind it; :func:`serve_in_background` avoids that race by keeping its socket."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerProcess:
    """A uvicorn process started by :func:`serve_in_subprocess`."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: str  # the server's stdout and stderr (deleted when the server stops)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_in_subprocess(
    factory: str,
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    startup_timeout: float = 120.0,
    shutdown_timeout: float = 10.0,
) -> Iterator[ServerProcess]:
    """Run ``uvicorn --factory <factory>`` (e.g. ``"mlcraft.mlops.serving:app_from_env"``) in its own
    process on a free loopback port, with ``env`` added to this process's environment.

    Ready when ``GET /health`` answers 200 (else ``RuntimeError`` with the end of the server's log).
    On exit: SIGTERM (uvicorn shuts down gracefully), then SIGKILL after ``shutdown_timeout``.
    A separate process is what a benchmark wants: the client's threads do not share its GIL.
    """
    if not is_loopback(host):
        raise ValueError(f"serve_in_subprocess binds loopback addresses only, got {host!r}")
    port = free_port(host)
    log_file = tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", host, "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = ServerProcess(host, port, process, log_file.name)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {process.returncode}:\n{_tail(log_file.name)}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn did not answer /health within {startup_timeout} s:\n{_tail(log_file.name)}"
                )
            time.sleep(0.1)
        log.info("server process started", url=server.url, pid=process.pid)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(shutdown_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(shutdown_timeout)
        log_file.close()
        os.unlink(log_file.name)
        log.info("server process stopped", url=server.url, returncode=process.returncode)


def _tail(path: str, lines: int = 30) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LoadTestReport:
    """Outcome of a bounded load test. ``latency`` covers every answered request, errors included."""

    url: str
    concurrency: int
    requests: int  # requests sent (answered or failed)
    ok: int  # answered with a 2xx status
    errors: int  # non-2xx answers plus transport failures (timeouts, refused connections)
    status_counts: dict[int, int]
    failures: dict[str, int]  # exception type name -> count
    duration_s: float
    stopped_by_deadline: bool
    latency: LatencySummary | None  # None when nothing was answered

    @property
    def rps(self) -> float:
        """Requests answered successfully per second of wall time."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def __str__(self) -> str:
        lat = f"p50 {self.latency.p50_ms:.2f} ms, p99 {self.latency.p99_ms:.2f} ms" if self.latency else "no answers"
        return (
            f"{self.requests} requests, concurrency {self.concurrency}, {self.duration_s:.2f} s: "
            f"{self.rps:.0f} ok/s, {lat}, errors {self.errors} ({self.error_rate:.1%})"
        )


def run_load_test(
    url: str,
    payloads: Sequence[Mapping[str, Any]] | Callable[[int], Mapping[str, Any]],
    *,
    n_requests: int = 200,
    concurrency: int = 4,
    max_seconds: float = 10.0,
    timeout_s: float = 5.0,
    allow_non_loopback: bool = False,
) -> LoadTestReport:
    """POST JSON ``payloads`` (cycled, or ``payloads(i)`` for request ``i``) to ``url``.

    Payloads are serialized with ``json.dumps``, so NaN and infinities go out as the non-standard
    ``NaN``/``Infinity`` tokens (useful to check that a server rejects them).

    Stops after ``n_requests`` requests or ``max_seconds`` seconds, whichever comes first; each
    request times out after ``timeout_s``. Workers keep their connection open (HTTP keep-alive).

    Raises:
        ValueError: bad bounds, no payloads, or a non-loopback host without ``allow_non_loopback``.
    """
    if n_requests < 1 or concurrency < 1 or max_seconds <= 0 or timeout_s <= 0:
        raise ValueError(
            f"need n_requests >= 1, concurrency >= 1, max_seconds > 0, timeout_s > 0; got "
            f"{n_requests}, {concurrency}, {max_seconds}, {timeout_s}"
        )
    host = urlsplit(url).hostname or ""
    if not allow_non_loopback and not is_loopback(host):
        raise ValueError(f"load tests target loopback addresses only (127.0.0.0/8, ::1), got host {host!r}")
    payload_for: Callable[[int], Mapping[str, Any]]
    if callable(payloads):
        payload_for = payloads
    else:
        if len(payloads) == 0:
            raise ValueError("payloads is empty")
        fixed = list(payloads)

        def payload_for(i: int) -> Mapping[str, Any]:
            return fixed[i % len(fixed)]

    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    start = time.perf_counter()
    deadline = start + max_seconds
    hit_deadline = threading.Event()

    def worker() -> None:
        with httpx.Client(timeout=timeout_s) as client:
            while True:
                with lock:
                    index = next(counter)
                if index >= n_requests:
                    return
                if time.perf_counter() >= deadline:
                    hit_deadline.set()
                    return
                sent = time.perf_counter()
                try:
                    # json.dumps writes NaN/Infinity tokens, as careless clients do; httpx's json= refuses them.
                    body = json.dumps(payload_for(index))
                    response = client.post(url, content=body, headers={"content-type": "application/json"})
                except Exception as err:  # a failed request is counted, never kills the worker
                    with lock:
                        failures[type(err).__name__] += 1
                    continue
                elapsed = time.perf_counter() - sent
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] += 1

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + timeout_s + 5.0)
    duration = time.perf_counter() - start
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    sent_total = sum(statuses.values()) + sum(failures.values())
    report = LoadTestReport(
        url=url,
        concurrency=concurrency,
        requests=sent_total,
        ok=ok,
        errors=sent_total - ok,
        status_counts=dict(sorted(statuses.items())),
        failures=dict(failures),
        duration_s=duration,
        stopped_by_deadline=hit_deadline.is_set(),
        latency=summarize_latencies(latencies) if latencies else None,
    )
    log.info("load test", url=url, requests=report.requests, errors=report.errors, rps=round(report.rps, 1))
    return report
