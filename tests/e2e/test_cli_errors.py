"""`baker` commands that talk to the Brain API, against no API and against a server that is not
Baker: a clear error naming the URL and exit 2, never a traceback."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from services.cli.app import main


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("BAKER_API_URL", url)
    return url


@pytest.mark.parametrize(
    "argv",
    [
        ["dispatch", "command", "echo hi"],
        ["cancel", "job-1"],
        ["health"],
        ["extensions", "--json"],
        ["handoff"],
        ["events", "--type", "JobFailed"],
    ],
)
def test_an_unreachable_api_is_a_clear_error_and_exit_2(
    argv: list[str], no_api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich may wrap the line
    assert f"the Brain API at {no_api} is unreachable" in err
    assert "Traceback" not in err


def test_an_answer_that_is_not_json_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NotBaker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotBaker) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("BAKER_API_URL", url)
        try:
            code = main(["health"])
        finally:
            server.shutdown()
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"the Brain API at {url} answered 200 with something that is not a JSON object" in err
