"""Real HTTP servers standing in for Kaggle and Zalando's mirror, so tests run the production
clients (KaggleApi, pooch) unchanged; nothing is mocked. Both serve from a background thread of the
test process, so a subprocess (e.g. `dvc repro`) can talk to them too.

Kaggle: kaggle 2.2.4 reads KAGGLE_API_ENVIRONMENT when it is *imported*; LOCALHOST sends every call to
http://localhost (port 80, fixed in kagglesdk; its TEST setting, localhost:7777, is ignored by
KaggleApi, and no variable names another host or port). What the client does honour, like any
`requests` user, is HTTP_PROXY: the fake Kaggle listens on a free port of 127.0.0.1 and is named as
the proxy for http://localhost, so the client's requests reach it in proxy form (absolute URL) and
no test needs root or port 80. A download is
  POST http://localhost/api/v1/datasets.DatasetApiService/DownloadDataset  {"ownerSlug", "datasetSlug"[, "fileName"]}
answered by a 302 to a blob URL that requests follows with a GET, as on kaggle.com.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import io
import json
import secrets
import socket
import sys
import tempfile
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

KAGGLE_HOST = "localhost"  # kagglesdk's LOCAL endpoint, http://localhost
DOWNLOAD_PATH = "/api/v1/datasets.DatasetApiService/DownloadDataset"
# Proxies configured in CI must not swallow requests meant for the fakes.
NO_PROXY_ENV = {"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake Kaggle received; the Authorization header is checked, never kept."""

    method: str
    path: str
    body: dict[str, Any]
    authorized: bool  # carried exactly the fake username/key as HTTP Basic auth
    host: str  # the host the client meant to reach (the proxy-form URL's)


@dataclass
class FakeKaggle:
    """What `fake_kaggle` yields: env vars for the client side and the requests seen so far."""

    env: dict[str, str]
    username: str
    key: str
    requests: list[RecordedRequest] = field(default_factory=list)

    def download_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == DOWNLOAD_PATH]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not block shutdown


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class _FileHandler(_QuietHandler, SimpleHTTPRequestHandler):
    pass


@contextlib.contextmanager
def _serving(servers: list[ThreadingHTTPServer]) -> Iterator[None]:
    threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@contextlib.contextmanager
def fake_http_server(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 (a free port); yields the base URL ending in '/'."""
    handler = functools.partial(_FileHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    with _serving([server]):
        yield f"http://127.0.0.1:{server.server_address[1]}/"


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                bundle.write(path, path.name)
    return buffer.getvalue()


class _KaggleHandler(_QuietHandler):
    server: Any  # a _QuietServer carrying the attributes set in fake_kaggle

    def _target(self) -> tuple[str, str]:
        """(host, path) of the request: the client talks to its proxy with absolute URLs."""
        url = urllib.parse.urlsplit(self.path)
        return url.hostname or "", url.path

    def _record(self, body: dict[str, Any]) -> None:
        expected = "Basic " + base64.b64encode(f"{self.server.fake.username}:{self.server.fake.key}".encode()).decode()
        authorized = hmac.compare_digest(self.headers.get("Authorization", ""), expected)
        host, path = self._target()
        self.server.fake.requests.append(RecordedRequest(self.command, path, body, authorized, host))

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str) -> None:
        # Kaggle's error shape: JSON with code and message, which kagglesdk turns into HTTPError.
        body = json.dumps({"code": status, "message": message}).encode()
        self._send(status, body, "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        self._record(body)
        host, path = self._target()
        if host != KAGGLE_HOST or path != DOWNLOAD_PATH:
            return self._error(404, f"no such endpoint {self.path}")
        if self.server.fail_status:
            return self._error(self.server.fail_status, "Permission denied (fake Kaggle told to fail)")
        if not self.server.fake.requests[-1].authorized:
            return self._error(401, "Unauthenticated")
        if f"{body.get('ownerSlug')}/{body.get('datasetSlug')}" != self.server.dataset:
            return self._error(404, "Dataset not found")
        blob = body.get("fileName") or f"{body['datasetSlug']}.zip"
        if blob not in self.server.blobs:
            return self._error(404, f"no file {blob} in the dataset")
        self._send(302, b"", "text/plain", {"Location": f"/blobs/{blob}"})

    def do_GET(self) -> None:
        self._record({})
        host, path = self._target()
        blob = path.removeprefix("/blobs/")
        if host != KAGGLE_HOST or not path.startswith("/blobs/") or blob not in self.server.blobs:
            return self._error(404, "not found")
        content_type = "application/zip" if blob.endswith(".zip") else "text/csv"
        self._send(200, self.server.blobs[blob], content_type)


def _check_kaggle_not_imported_for_prod() -> None:
    module = sys.modules.get("kaggle.api.kaggle_api_extended")
    if module is not None and "--local" not in module.KaggleApi.args:
        raise RuntimeError(
            "kaggle was imported in this process before KAGGLE_API_ENVIRONMENT=LOCALHOST was set, "
            "so it would call the real api.kaggle.com; set the env before the first import"
        )


@contextlib.contextmanager
def fake_kaggle(
    csv_dir: Path,
    *,
    dataset: str = "zalando-research/fashionmnist",
    fail_status: int | None = None,
) -> Iterator[FakeKaggle]:
    """A fake Kaggle for http://localhost, on a free port of 127.0.0.1, serving `dataset` as a zip
    of the files in csv_dir (each file also downloadable alone). fail_status (e.g. 403) answers
    every API call with that error.

    Yields a FakeKaggle whose `env` the client side must use (os.environ / monkeypatch / a
    subprocess's env): KAGGLE_API_ENVIRONMENT=LOCALHOST, fresh fake KAGGLE_USERNAME and KAGGLE_KEY,
    KAGGLE_API_TOKEN="" (kaggle treats empty as unset), KAGGLE_CONFIG_DIR and HOME in a temporary
    folder (so real credentials on the machine are neither used nor sent), the fake as the HTTP
    proxy and NO_PROXY for 127.0.0.1 only (so every other local server is still reached directly).
    """
    _check_kaggle_not_imported_for_prod()
    csv_dir = Path(csv_dir)
    blobs = {path.name: path.read_bytes() for path in csv_dir.iterdir() if path.is_file()}
    blobs[f"{dataset.split('/')[1]}.zip"] = _zip_folder(csv_dir)
    username, key = "fake-user", secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fake-kaggle-home-") as home:
        server = _QuietServer(("127.0.0.1", 0), _KaggleHandler)
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        no_proxy = "127.0.0.1,::1"  # not localhost: that is the host the client asks for
        fake = FakeKaggle(
            env={
                "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
                "KAGGLE_USERNAME": username,
                "KAGGLE_KEY": key,
                "KAGGLE_API_TOKEN": "",
                "KAGGLE_CONFIG_DIR": str(Path(home) / ".kaggle"),
                "HOME": home,
                # Both spellings: requests lets the lower-case one win where both are set.
                "HTTP_PROXY": proxy, "http_proxy": proxy,
                "NO_PROXY": no_proxy, "no_proxy": no_proxy,
            },
            username=username,
            key=key,
        )
        server.fake = fake
        server.dataset, server.fail_status, server.blobs = dataset, fail_status, blobs
        with _serving([server]):
            yield fake


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers:
    a hung tracking server, the case a client's read timeout must catch. Yields http://host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class _HealthOnlyHandler(_QuietHandler):
    """/health says OK, every API call answers 503: a server whose database went away."""
    server: Any  # a _QuietServer carrying `api_requests`, the paths of the API calls seen

    def _answer(self) -> None:
        if self.path == "/health":
            status, body = 200, b"OK"
        else:
            self.server.api_requests.append(self.path)
            status, body = 503, b"database unavailable"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@dataclass
class BrokenServer:
    """What `broken_tracking_server` yields: its URI and the API calls it has failed so far."""

    uri: str
    api_requests: list[str]


@contextlib.contextmanager
def broken_tracking_server() -> Iterator[BrokenServer]:
    """A tracking server that passes the health check and then fails every request."""
    server = _QuietServer(("127.0.0.1", 0), _HealthOnlyHandler)
    server.api_requests = []
    with _serving([server]):
        yield BrokenServer(f"http://127.0.0.1:{server.server_address[1]}", server.api_requests)
