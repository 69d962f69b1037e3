"""Creating Jobs through the Kubernetes API with httpx (no client library, no kubeconfig)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesError(Exception):
    """The API refused the request (`status` is the HTTP status, 0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def in_cluster() -> tuple[str, str, str] | None:
    """(API URL, service-account token, CA file) when running in a pod, else None."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token_file = SERVICE_ACCOUNT / "token"
    if not host or not token_file.exists():
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    token = token_file.read_text().strip()
    return f"https://{host}:{port}", token, str(SERVICE_ACCOUNT / "ca.crt")


async def create_job(
    api_url: str,
    token: str | None,
    namespace: str,
    manifest: dict[str, Any],
    client: httpx.AsyncClient | None = None,
    *,
    timeout: float = 10.0,
    verify: bool | str = True,
) -> dict[str, Any]:
    """POST the Job; return the created object, or raise `KubernetesError` with the API's
    message (a K8s `Status` body) for a non-2xx answer or an unreachable API."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout, verify=verify)
    try:
        response = await http.post(
            _jobs_url(api_url, namespace), json=manifest, headers=_headers(token)
        )
    except httpx.HTTPError as exc:
        raise KubernetesError(0, f"Kubernetes API unreachable at {api_url}: {exc!r}") from exc
    finally:
        if own:
            await http.aclose()
    if not response.is_success:
        raise KubernetesError(response.status_code, _refusal(response))
    body: dict[str, Any] = response.json()
    return body


async def delete_job(
    api_url: str, token: str | None, namespace: str, name: str, client: httpx.AsyncClient
) -> bool:
    """DELETE the Job and its pods; False when there is no such Job, `KubernetesError` when
    the API refuses or cannot be reached."""
    try:
        # Without a propagation policy the API deletes a Job but orphans its pods.
        response = await client.delete(
            f"{_jobs_url(api_url, namespace)}/{name}",
            params={"propagationPolicy": "Background"},
            headers=_headers(token),
        )
    except httpx.HTTPError as exc:
        raise KubernetesError(0, f"Kubernetes API unreachable at {api_url}: {exc!r}") from exc
    if response.status_code == 404:
        return False
    if not response.is_success:
        raise KubernetesError(response.status_code, _refusal(response))
    return True


def _jobs_url(api_url: str, namespace: str) -> str:
    return f"{api_url.rstrip('/')}/apis/batch/v1/namespaces/{namespace}/jobs"


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _refusal(response: httpx.Response) -> str:
    """`Kubernetes API 403 Forbidden: <Status.message>` (or the body's start)."""
    message = response.text[:300].strip()
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("message"):
        message = str(doc["message"])
    return f"Kubernetes API {response.status_code} {response.reason_phrase}: {message}".rstrip()
