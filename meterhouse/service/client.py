"""The one client of a running `meterhouse run`'s admin API.

CLI commands reach the service through it while the service holds the embedded store:
the service-backed store (meterhouse/store/service_backend.py), key and notification
administration, spool replay. One place says what a silent service or a refusal means:
``ServiceUnavailableError`` (a StoreUnavailableError) when it does not answer,
``ServiceRefusedError`` with the status and the problem+json body when it refuses.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from meterhouse.errors import ServiceRefusedError, ServiceUnavailableError

# Connect fast, but let a statement the service runs (a reprice, the demo's inserts) take
# its time: the service bounds what it runs, not this client.
CONNECT_SECONDS = 5.0


class ServiceClient:
    timeout = 600.0

    def __init__(self, url: str, token: str, *, timeout: float | None = None) -> None:
        self.url = url.rstrip("/")
        if timeout is not None:
            self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        # A requests.Session is not promised to be thread-safe; the demo's in-process
        # ingest service uses one store from several threads.
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer to one call; raises unless its status is below 400."""
        try:
            with self._lock:
                answer = self._session.request(
                    method, f"{self.url}{path}", timeout=(CONNECT_SECONDS, self.timeout), **kwargs
                )
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"the store is held by `meterhouse run` at {self.url}, which did not answer: "
                f"{exc}. Check that it still runs, or stop it to use the store directly."
            ) from exc
        if answer.status_code >= 400:
            try:
                body = answer.json()
            except ValueError:
                body = {"detail": answer.text}
            if not isinstance(body, dict):
                body = {"detail": body}
            raise ServiceRefusedError(
                f"{self.url} refused ({answer.status_code}): {body.get('detail', body)}",
                status=answer.status_code,
                body=body,
            )
        return answer

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call whose answer is a JSON object."""
        return dict(self.request(method, path, **kwargs).json())

    def close(self) -> None:
        self._session.close()
