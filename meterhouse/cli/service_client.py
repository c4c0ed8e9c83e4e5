"""The CLI's caller of a running `meterhouse run`'s admin API, for commands whose store
that service holds: one place that says what a refusal or a silent service means."""

from __future__ import annotations

from typing import Any

import click
import requests


class ServiceClient:
    timeout = 30.0

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return dict(self._request(method, path, **kwargs))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (an object, or a list for listings), or ClickException."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            answer = requests.request(
                method, f"{self.url}{path}", headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise click.ClickException(
                f"the store is held by `meterhouse run` at {self.url}, which did not answer: {exc}"
            ) from exc
        try:
            body = answer.json()
        except ValueError:
            body = {"detail": answer.text}
        if answer.status_code >= 400:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            raise click.ClickException(f"{self.url} refused ({answer.status_code}): {detail}")
        return body
