"""Start each grading process without paying for its imports: a fork server.

A grading process (:mod:`mlcraft.classroom.grading.worker`) imports nbgrader, nbconvert, the
judge and PyTorch before it grades anything: about 2 s of CPU, which used to be paid once per
submission. ``python -m mlcraft.classroom.grading.launcher TARGET`` imports ``TARGET``
(``module:function``) once and then waits for job files, one path per line on its standard
input. For each it forks a child that becomes the grading process: a new session (killed as one
group), standard input and output on ``/dev/null``, standard error in :data:`STDERR_FILE` beside
the job file, the job file's folder as working directory, then ``function([JOB_FILE])`` and its
return value as exit code. The server itself never runs a job, so every child starts from the
same state: still one fresh process per submission, with the imports already done.

The server answers each job with two lines on its standard output, ``started PID`` once the
child exists and ``exit CODE`` once it has been reaped (``-N`` when killed by signal N). It
serves one job at a time; a run uses one server per parallel worker (:class:`ForkServerPool`).
The server dies with the process that started it, and each child with its server (Linux
``PR_SET_PDEATHSIG``), so killing a grading run leaves no grading process behind; the kernel
dies with its grading process (the sandbox's ``--die-with-parent``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path

from mlcraft.utils.logging import get_logger

__all__ = ["STDERR_FILE", "ForkServer", "ForkServerPool", "JobOutcome", "ServerGoneError", "kill_group"]

log = get_logger(__name__)

STDERR_FILE = "worker.stderr"
WORKER_TARGET = "mlcraft.classroom.grading.worker:main"
# Seconds a server may take to import its target (a cold disk, a loaded machine).
_READY_TIMEOUT_S = 300.0
_PR_SET_PDEATHSIG = 1


class ServerGoneError(ConnectionError):
    """The server stopped before it started the job: the job can be given to another."""


def kill_group(pid: int) -> None:
    """SIGKILL process group ``pid``; quiet when it is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits; nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: the pipes still end the server
        pass


def _resolve(target: str) -> Callable[[list[str]], int]:
    module_name, _, function = target.partition(":")
    if not module_name or not function:
        raise ValueError(f"target must be 'module:function', got {target!r}")
    function_obj: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), function)
    return function_obj


def _child(function: Callable[[list[str]], int], job_file: str) -> None:
    """Become the grading process for ``job_file``; never returns."""
    code = 1
    try:
        os.setsid()
        parent = os.getppid()
        _die_with_parent()
        if os.getppid() != parent:  # the server died before the request took effect
            os._exit(1)
        workspace = Path(job_file).parent
        os.chdir(workspace)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(workspace / STDERR_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.closerange(3, 65536)  # nothing of the server's (its pipes to the classroom) stays open
        code = int(function([job_file]) or 0)
    except SystemExit as stop:
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(target: str) -> int:
    """The server's loop (see the module docstring)."""
    _die_with_parent()
    function = _resolve(target)  # the imports, done once
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for raw in sys.stdin.buffer:
        job_file = raw.decode("utf-8", "surrogateescape").rstrip("\n")
        if not job_file:
            continue
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(function, job_file)
        out.write(f"started {pid}\n".encode())
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        out.flush()
    return 0


class JobOutcome:
    """What became of one job: its exit code (``None`` when stopped at the limit) and the tail of
    its standard error."""

    def __init__(self, code: int | None, stderr: str) -> None:
        self.code = code
        self.stderr = stderr


class ForkServer:
    """One server process and the pipes to it; runs one job at a time."""

    def __init__(self, target: str = WORKER_TARGET, env: Mapping[str, str] | None = None) -> None:
        self.target = target
        # A file, not a pipe: nobody reads the server's stderr while it runs, and a full pipe would block it.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlcraft.classroom.grading.launcher", target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # Ctrl-C in the terminal reaches the classroom only
            bufsize=0,
        )
        self._buffer = b""
        self._ready = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _line(self, deadline: float | None) -> str | None:
        """The server's next line, or ``None`` at ``deadline`` (``time.monotonic()``)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise ConnectionError(f"the grading server stopped: {self._stderr_tail()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _stderr_tail(self) -> str:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(timeout=5)
            self._errors.seek(0)
            err = self._errors.read().decode("utf-8", "replace").strip()
            return err[-2000:] or f"exit {self.proc.returncode}"
        return "no output"

    def wait_ready(self) -> None:
        """Block until the server has done its imports.

        Raises:
            ConnectionError: if it stopped (a broken installation) or took too long.
        """
        if self._ready:
            return
        try:
            line = self._line(time.monotonic() + _READY_TIMEOUT_S)
        except ConnectionError as err:
            raise ServerGoneError(str(err)) from None
        if line != "ready":
            raise ServerGoneError(f"the grading server did not start: {line or self._stderr_tail()}")
        self._ready = True

    def run(self, job_file: Path, limit: float, on_start: Callable[[int], None] | None = None) -> JobOutcome:
        """Run ``job_file`` in a fresh child; kill its process group after ``limit`` seconds.

        Raises:
            ConnectionError: if the server is gone (the job did not run to an end).
        """
        self.wait_ready()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(str(job_file).encode("utf-8", "surrogateescape") + b"\n")
        except OSError as err:
            raise ServerGoneError(f"the grading server stopped: {err}") from None
        deadline = time.monotonic() + limit
        try:
            started = self._line(deadline + 60)
        except ConnectionError as err:
            raise ServerGoneError(str(err)) from None
        if started is None or not started.startswith("started "):
            raise ServerGoneError(f"the grading server did not start the job: {started}")
        pid = int(started.split()[1])
        if on_start is not None:
            on_start(pid)
        stopped = False
        try:
            answer = self._line(deadline)
            if answer is None:  # over the limit: the whole group goes
                stopped = True
                kill_group(pid)
                answer = self._line(time.monotonic() + 60)
            if answer is None or not answer.startswith("exit "):
                raise ConnectionError(f"the grading server did not report job {pid}: {answer}")
        finally:
            kill_group(pid)  # anything the job left behind
        code = None if stopped else int(answer.split()[1])
        return JobOutcome(code, _tail_of(job_file.parent / STDERR_FILE))

    def close(self) -> None:
        """Stop the server (its idle children are none; a running one dies with it)."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._errors.close()


def _tail_of(path: Path, lines: int = 5) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class ForkServerPool:
    """``size`` servers started at once (their imports overlap); a job borrows one.

    A server that stops (killed, out of memory) is replaced by a fresh one for the next job.
    """

    def __init__(self, size: int, target: str = WORKER_TARGET, env: Mapping[str, str] | None = None) -> None:
        self.target, self.env = target, env
        self._idle: queue.SimpleQueue[ForkServer] = queue.SimpleQueue()
        self._all: list[ForkServer] = []
        self._lock = threading.Lock()
        self._closed = False
        # Linux ties a child's "die with parent" to the *thread* that started it: every server is
        # started by this one thread, which lives as long as the pool, so a server outlives
        # neither the pool nor the process, whichever thread (a Dask task's) asked for it.
        self._requests: queue.SimpleQueue[Future[ForkServer] | None] = queue.SimpleQueue()
        self._spawner = threading.Thread(target=self._spawn_loop, name="mlcraft-fork-servers", daemon=True)
        self._spawner.start()
        for _ in range(size):
            self._idle.put(self._start())

    def _spawn_loop(self) -> None:
        while (request := self._requests.get()) is not None:
            try:
                request.set_result(ForkServer(self.target, self.env))
            except BaseException as err:
                request.set_exception(err)

    def _start(self) -> ForkServer:
        request: Future[ForkServer] = Future()
        self._requests.put(request)
        server = request.result()
        with self._lock:
            self._all.append(server)
        return server

    @contextlib.contextmanager
    def server(self) -> Iterator[ForkServer]:
        server = self._idle.get()
        healthy = True
        try:
            yield server
        except ConnectionError:
            healthy = False
            raise
        finally:
            if healthy and server.proc.poll() is None:
                self._idle.put(server)
            else:
                server.close()
                with self._lock:
                    closed = self._closed
                if not closed:
                    log.warning("grading server replaced", exit=server.proc.returncode)
                    self._idle.put(self._start())

    def run(self, job_file: Path, limit: float, on_start: Callable[[int], None] | None = None) -> JobOutcome:
        """Run one job on an idle server (waiting for one if need be); a job that a stopped
        server never started is given to a fresh server, once.

        Raises:
            ConnectionError: if the job could not be run to an end.
        """
        try:
            with self.server() as server:
                return server.run(job_file, limit, on_start)
        except ServerGoneError:
            with self.server() as server:
                return server.run(job_file, limit, on_start)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            servers = list(self._all)
        for server in servers:
            server.close()
        self._requests.put(None)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m mlcraft.classroom.grading.launcher MODULE:FUNCTION", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve(sys.argv[1]))
