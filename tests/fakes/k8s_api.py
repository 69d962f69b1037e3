"""A fake Kubernetes API on 127.0.0.1: `POST /apis/batch/v1/namespaces/{ns}/jobs` and
`DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}`.

It records every Job posted (with its namespace and Authorization header), answers 201 with the
object (plus `metadata.uid`), 401 for a wrong bearer token, 409 for a name that exists, and a
scripted refusal (a K8s `Status` error) when one is set. A DELETE removes the Job and records
(namespace, name, propagationPolicy) in `deleted`; 404 for a Job it does not hold:

    with FakeKubernetes(token="t0k") as api:
        api.refuse(403, "Forbidden", 'jobs.batch is forbidden: User "x" cannot create ...')
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_base import FakeHttpServer, Request, Response


@dataclass(frozen=True)
class Posted:
    namespace: str
    authorization: str | None
    body: dict[str, Any]


def status_error(code: int, reason: str, message: str) -> dict[str, Any]:
    """The API's error body: a `Status` object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubernetes(FakeHttpServer):
    def __init__(self, token: str | None = "test-token") -> None:
        super().__init__()
        self.token = token
        self.jobs: list[Posted] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self._refusal: tuple[int, dict[str, Any]] | None = None

    def refuse(self, code: int, reason: str, message: str) -> None:
        """Answer every following POST and DELETE with this `Status` error."""
        self._refusal = (code, status_error(code, reason, message))

    def handle(self, request: Request) -> Response:
        auth = request.headers.get("authorization")
        if request.method == "DELETE":
            return Response.json(*self.delete(request.target, auth))
        if request.method != "POST":
            return Response.json(405, status_error(405, "MethodNotAllowed", request.method))
        try:
            body = request.json()
        except ValueError:
            return Response.json(400, status_error(400, "BadRequest", "body is not JSON"))
        return Response.json(*self.answer(request.path, auth, body))

    def answer(self, path: str, auth: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) != 6 or parts[:4] != ["apis", "batch", "v1", "namespaces"]:
            return 404, status_error(404, "NotFound", f"the server could not find {path}")
        if parts[5] != "jobs":
            return 404, status_error(404, "NotFound", f"the server could not find {path}")
        if self.token is not None and auth != f"Bearer {self.token}":
            return 401, status_error(401, "Unauthorized", "Unauthorized")
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            name = body.get("metadata", {}).get("name")
            if any(job.body["metadata"]["name"] == name for job in self.jobs):
                return 409, status_error(
                    409, "AlreadyExists", f'jobs.batch "{name}" already exists'
                )
            self.jobs.append(Posted(parts[4], auth, body))
        created = json.loads(json.dumps(body))
        created["metadata"]["uid"] = str(uuid.uuid4())
        return 201, created

    def delete(self, target: str, auth: str | None) -> tuple[int, Any]:
        request = Request("DELETE", target, {}, b"")
        parts = request.path.strip("/").split("/")
        if len(parts) != 7 or parts[:4] != ["apis", "batch", "v1", "namespaces"]:
            return 404, status_error(404, "NotFound", f"the server could not find {target}")
        if self.token is not None and auth != f"Bearer {self.token}":
            return 401, status_error(401, "Unauthorized", "Unauthorized")
        namespace, name = parts[4], parts[6]
        policy = request.query.get("propagationPolicy", [None])[0]
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            held = [
                j
                for j in self.jobs
                if (j.namespace, j.body["metadata"]["name"]) == (namespace, name)
            ]
            if not held:
                return 404, status_error(404, "NotFound", f'jobs.batch "{name}" not found')
            self.jobs.remove(held[0])
            self.deleted.append((namespace, name, policy))
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
