"""Processes that the MONAI Label tests start: the gcis-label server, Orthanc, and Chromium through chromedriver.

Every server listens on 127.0.0.1 at a free port and runs niced, with a 32 MiB stack limit
(MONAI imports Holoscan, which warns about smaller stacks). The gcis-label server also runs
with a network guard: a ``sitecustomize`` module that makes every connection to an address
other than loopback fail and records it, so a test can assert that the server never tried.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "apps" / "gcis"
STACK_BYTES = 32 * 1024 * 1024
NICENESS = 15
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")

NETWORK_GUARD = '''
"""Test network guard: connections to non-loopback addresses fail and are recorded."""
import os
import socket
import traceback

_RECORD = os.environ["GCIS_TEST_BLOCKED_LOG"]
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def _is_loopback(host):
    return host in _LOOPBACK_NAMES or str(host).startswith("127.")


def _record(action):
    with open(_RECORD, "a", encoding="utf-8") as handle:
        handle.write(f"pid {os.getpid()}: {action}\\n{''.join(traceback.format_stack(limit=15))}\\n")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        _record(f"connect {address}")
        raise OSError(101, "network blocked by the test guard")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        _record(f"connect_ex {address}")
        return 101
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        _record(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test guard")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


def limit_child() -> None:
    """Run in the child before exec: lower the priority and raise the stack limit to 32 MiB."""
    os.nice(NICENESS)
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    soft = STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gcis_label_command() -> str:
    """Return the path of the gcis-label command of this Python environment."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    command = shutil.which("gcis-label", path=search)
    if command is None:
        raise RuntimeError("gcis-label not found; install the project with 'pip install -e .'")
    return command


def log_tail(path: Path, lines: int = 60) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class LabelServer:
    """One `gcis-label start_server` process of the gCIS app, started in its own work folder."""

    def __init__(self, work: Path, studies: str, weights: Path, model_dir: Path, conf: dict[str, str] | None = None):
        self.work = work
        self.studies = studies
        self.weights = weights
        self.model_dir = model_dir
        self.conf = conf or {}
        self.port = free_port()
        self.log = work / "server.log"
        self.blocked_log = work / "blocked_connections.log"
        self.process: subprocess.Popen | None = None

        guard = work / "network_guard"
        guard.mkdir(parents=True, exist_ok=True)
        (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
        (work / "home").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(work / "home"),
            "PYTHONPATH": os.pathsep.join(p for p in [str(guard), os.environ.get("PYTHONPATH", "")] if p),
            "GCIS_TEST_BLOCKED_LOG": str(self.blocked_log),
            "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",
            "MONAI_LABEL_SESSION_PATH": str(work / "sessions"),
            "MONAI_LABEL_DICOMWEB_CACHE_PATH": str(work / "dicomweb_cache"),
        }

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def command(self) -> list[str]:
        command = [
            gcis_label_command(), "start_server",
            "--app", str(APP_DIR),
            "--studies", self.studies,
            "--conf", "models", "gcis",
            "--conf", "weights", str(self.weights),
            "--conf", "model_dir", str(self.model_dir),
            "--port", str(self.port),
        ]
        for key, value in self.conf.items():
            command += ["--conf", key, value]
        return command

    def start(self, timeout: float = 300.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_child
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gcis-label exited with code {self.process.returncode}:\n{log_tail(self.log)}")
            try:
                if requests.get(self.url("/info/"), timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        self.stop()
        raise TimeoutError(f"gcis-label did not answer /info/ within {timeout:.0f} s:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def blocked_connections(self) -> str:
        return self.blocked_log.read_text() if self.blocked_log.is_file() else ""


class Orthanc:
    """An Orthanc DICOMweb server with its own configuration and storage folder under `work`."""

    def __init__(self, work: Path):
        self.work = work
        self.port = free_port()
        self.log = work / "orthanc.log"
        self.process: subprocess.Popen | None = None
        self.config = {
            "Name": "gcis-test",
            "StorageDirectory": str(work / "storage"),
            "IndexDirectory": str(work / "storage"),
            "HttpPort": self.port,
            # Orthanc 1.10 has no listen-address setting; it refuses every client but this machine.
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "ConcurrentJobs": 1,
            "Plugins": [str(ORTHANC_PLUGINS / "libOrthancDicomWeb.so")],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
        }

    @staticmethod
    def executable() -> str | None:
        return shutil.which("Orthanc")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self, timeout: float = 60.0) -> None:
        config = self.work / "orthanc.json"
        config.write_text(json.dumps(self.config, indent=2))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.executable(), str(config)], cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=limit_child,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.process.returncode}:\n{log_tail(self.log)}")
            try:
                if requests.get(f"{self.url}/system", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"Orthanc did not start within {timeout:.0f} s:\n{log_tail(self.log)}")

    def upload(self, path: Path) -> dict:
        response = requests.post(f"{self.url}/instances", data=path.read_bytes(), timeout=60)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


class HeadlessChromium:
    """Chromium driven through chromedriver's W3C WebDriver HTTP API, reachable only on loopback."""

    ARGUMENTS = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--window-size=1280,800",
        # WebGL through SwiftShader: OHIF's cornerstone renders with WebGL and there is no GPU.
        "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
        # Resolve no host name but loopback, so the page cannot reach the internet (web fonts, for one).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]

    def __init__(self, work: Path):
        self.work = work
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.session: str | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("chromedriver") and (shutil.which("chromium") or shutil.which("chromium-browser")))

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("chromedriver"), f"--port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit_child,
        )
        base = f"http://127.0.0.1:{self.port}"
        for _ in range(60):
            try:
                if requests.get(f"{base}/status", timeout=5).json()["value"]["ready"]:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        arguments = [*self.ARGUMENTS, f"--user-data-dir={self.work / 'chromium-profile'}"]
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {"binary": binary, "args": arguments}}
        response = requests.post(f"{base}/session", json={"capabilities": {"alwaysMatch": capabilities}}, timeout=180)
        response.raise_for_status()
        self.session = response.json()["value"]["sessionId"]
        self.base = f"{base}/session/{self.session}"

    def open(self, url: str) -> None:
        requests.post(f"{self.base}/url", json={"url": url}, timeout=180).raise_for_status()

    def screenshot(self) -> bytes:
        response = requests.get(f"{self.base}/screenshot", timeout=120)
        response.raise_for_status()
        return base64.b64decode(response.json()["value"])

    def console_errors(self) -> list[str]:
        response = requests.post(f"{self.base}/se/log", json={"type": "browser"}, timeout=60)
        if response.status_code != 200:
            return []
        return [entry["message"] for entry in response.json()["value"] if entry["level"] == "SEVERE"]

    def stop(self) -> None:
        if self.session is not None:
            try:
                requests.delete(self.base, timeout=60)
            except requests.RequestException:
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
