"""The webhook sink: one JSON POST per alert, with the standard library only.

The payload carries structured fields for a program and a ready ``text`` field, which Slack and
Mattermost incoming webhooks display as is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ruleengine.errors import AlertError, ConfigError

USER_AGENT = "ruleengine-alerts/0.1"
_DETAIL_CHARS = 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a bodiless GET and report success; a redirect
    is a misconfigured URL, so it must surface as a failed delivery instead."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_url(url: str, what: str) -> str:
    """Refuse anything but http(s) at build time: urllib would also open file:// URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{what}: {_redact(url, ())!r} is not an http(s) URL")
    return url.rstrip("/")


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_json(url: str, payload: dict[str, Any], timeout_s: float, *,
              secrets: Iterable[str] = (), where: str = "") -> bytes:
    """POST ``payload`` as JSON and return the response body; any failure is an
    :class:`AlertError` whose text never contains ``secrets`` (a bot token sits in the URL)."""
    hidden = tuple(secrets)
    target = where or urlsplit(url).netloc
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = int(response.status)
            content: bytes = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(_DETAIL_CHARS).decode("utf-8", "replace").strip()
        raise AlertError(_redact(f"{target}: HTTP {exc.code} {exc.reason}"
                                 + (f": {detail}" if detail else ""), hidden)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertError(_redact(f"{target}: {reason}", hidden)) from None
    if not 200 <= status < 300:
        raise AlertError(f"{target}: HTTP {status}")
    return content


class WebhookSink:
    """POSTs ``{source, severity, title, body, text}``; any non-2xx answer is a failure."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 5.0,
                 secret_url: bool = False) -> None:
        self.name = name
        self._url = check_url(url, f"alert sink {name!r}")
        self._timeout_s = timeout_s
        # A URL from an environment variable may embed a key: keep it out of error texts.
        self._secrets = (self._url,) if secret_url else ()

    def send(self, severity: str, title: str, body: str) -> None:
        payload = {"source": "ruleengine", "severity": severity, "title": title, "body": body,
                   "text": f"[{severity.upper()}] {title}" + (f"\n{body}" if body else "")}
        where = f"webhook {self.name}" if self._secrets else ""
        post_json(self._url, payload, self._timeout_s, secrets=self._secrets, where=where)
