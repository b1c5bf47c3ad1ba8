"""Fixtures of the browser tests: a throwaway JupyterLab server on a copy of the course, headless
Chromium driven by Playwright, and a folder of screenshots per test.

Nothing here writes to the repository except ``build/browser-screenshots/`` (git-ignored), and
nothing is downloaded: the browser is Debian's Chromium, never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "browser-screenshots"
INSTALL_HINT = "apt-get install chromium (Playwright drives Debian's Chromium; never `playwright install`)"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SERVER_START_TIMEOUT_S = 120
#: What the lab needs, copied into the temporary root. course/jupytext.toml is what pairs
#: course/*.ipynb with its .py twin (the notebooks carry no jupytext.formats metadata).
#: The .ipynb is copied before its .py so the text file is the newer one, as after `make sync`.
LAB_FILES = [
    "course/jupytext.toml",
    "course/00_orientation.ipynb",
    "course/00_orientation.py",
    "exercises/00_orientation/00_orientation.ipynb",
]
#: nbgrader reads nbgrader_config.py from the server's working directory. Validate needs none;
#: this one keeps the Assignment List's exchange inside the temporary folder (the default,
#: /srv/nbgrader/exchange, would be created on the machine when the server runs as root) and
#: gives a slow first `import torch` time to finish on a busy machine.
NBGRADER_CONFIG = """\
c = get_config()  # noqa: F821
c.Exchange.root = {exchange!r}
c.Execute.timeout = 120
"""
#: What the course ships for JupyterLab and `make setup` installs into the environment (defaults
#: without the news pop-up; the contents manager that opens notebooks unmodified): shipped file,
#: installed path. The server reads them from there, as `make lab` does.
SHIPPED_CONFIG = {
    REPO / "jupyter" / "overrides.json5": Path(sys.prefix, "share/jupyter/lab/settings/overrides.d/mlcraft.json5"),
    REPO / "jupyter" / "jupyter_server_config.json": Path(sys.prefix, "etc/jupyter/jupyter_server_config.json"),
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep each phase's report on the item (the page fixture screenshots a failure), and name the
    screenshot folder in the report of a failed browser test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    folder = getattr(item, "screenshot_folder", None)
    if report.failed and folder is not None:
        report.sections.append(("browser screenshots", f"screenshots of this test: {folder}"))
    return report


@dataclass(frozen=True)
class LabServer:
    """A running ``jupyter lab`` on a copy of the course."""

    root: Path
    port: int
    token: str
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self) -> str:
        """The lab with a fresh layout (``reset``): no tab left open by an earlier test."""
        return f"{self.base_url}/lab?reset&token={self.token}"

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Shots:
    """Numbered screenshots of one test, in ``build/browser-screenshots/<test name>/``."""

    folder: Path
    count: int = 0

    def take(self, page: Page, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return path


def _jupyter() -> Path:
    """The venv's ``jupyter`` (beside this interpreter), so its extensions and kernel are the ones used."""
    for candidate in (Path(sys.executable).with_name("jupyter"), REPO / ".venv" / "bin" / "jupyter"):
        if candidate.is_file():
            return candidate
    pytest.skip("jupyter is not installed in the virtual environment (make setup)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(process: subprocess.Popen[bytes], server: LabServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    status_url = f"{server.base_url}/api/status?token={server.token}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {process.returncode}; its log:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(status_url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"jupyter lab did not answer {status_url} within {SERVER_START_TIMEOUT_S} s; its log:\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes], server: LabServer) -> None:
    """Shut down every kernel the server started, then the server: SIGTERM, SIGKILL after 10 s."""
    try:
        for kernel in server.api("GET", "/api/kernels"):
            server.api("DELETE", f"/api/kernels/{kernel['id']}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        pass  # the server is gone already; SIGTERM below takes what is left of its group
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # Anything still in the server's own process group (a kernel it could not shut down).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` on a temporary copy of the files the tests open: the repository is never written."""
    jupyter = _jupyter()
    root = tmp_path_factory.mktemp("lab")
    home = tmp_path_factory.mktemp("lab-home")  # Jupyter's own state, outside the served folder
    for name in LAB_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    (home / "exchange").mkdir()
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(exchange=str(home / "exchange")), encoding="utf-8")
    for shipped, installed in SHIPPED_CONFIG.items():
        if not installed.is_file() or installed.read_bytes() != shipped.read_bytes():
            pytest.fail(f"{installed} is missing or older than {shipped}: run `make setup`")
    settings = home / "lab-settings"  # a learner's own settings: none yet

    server = LabServer(root=root, port=_free_port(), token=secrets.token_hex(24), log=home / "lab.log")
    env = {
        **os.environ,
        # The user's Jupyter config and data (and ~/.jupyter's servers) stay out; the extensions and
        # the python3 kernel live in the venv's sys-prefix paths, which are still searched.
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "MLCRAFT_GRADING_DIR": str(home / "grading"),
        # one intra-op thread per kernel: the machine is small and shared
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [
        str(jupyter),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={server.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={server.token}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    if os.getuid() == 0:
        command.append("--allow-root")
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(process, server)
        yield server
    finally:
        _stop(process, server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium; the tests are skipped where it or Playwright is missing."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip(f"Playwright is not installed (pip install playwright; then {INSTALL_HINT})")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(f"Chromium is not installed: {INSTALL_HINT}")
    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        except Error as error:
            pytest.skip(f"Chromium at {chromium} does not start ({error}); {INSTALL_HINT}")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """An empty screenshot folder named after the test."""
    folder = SCREENSHOTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    request.node.screenshot_folder = folder
    return Shots(folder)


@pytest.fixture
def page(browser: Browser, lab_server: LabServer, shots: Shots, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new browser tab on the lab, its file browser listing the course; screenshotted if the test fails."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        page.goto(lab_server.lab_url(), wait_until="domcontentloaded", timeout=60_000)
        page.locator(".jp-DirListing-content").get_by_text("course", exact=True).wait_for(timeout=60_000)
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            try:
                shots.take(page, "failure")
            except Exception as error:  # the page may be what broke
                print(f"no failure screenshot: {error}", file=sys.stderr)
            print(f"jupyter lab log (tail):\n{lab_server.log_tail()}", file=sys.stderr)
        context.close()
