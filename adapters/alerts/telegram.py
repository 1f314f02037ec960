"""The Telegram sink: the Bot API's ``sendMessage``, as plain text.

Plain text rather than Markdown or HTML: an alert quoting a symbol like ``NIFTY_25NOV`` would
otherwise be rejected by Telegram's parser, and a rejected alert is a lost one.
"""

from __future__ import annotations

import json

from ruleengine.errors import AlertError

from .webhook import check_url, post_json

DEFAULT_BASE_URL = "https://api.telegram.org"
MAX_TEXT = 4096  # the Bot API's limit for one message
_ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


class TelegramSink:
    """Posts to ``{base_url}/bot{token}/sendMessage``; the token never appears in errors."""

    def __init__(self, name: str, *, token: str, chat_id: str | int,
                 base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0) -> None:
        self.name = name
        self._token = token
        self._chat_id = chat_id
        self._endpoint = f"{check_url(base_url, f'alert sink {name!r}')}/bot{token}/sendMessage"
        self._timeout_s = timeout_s

    def send(self, severity: str, title: str, body: str) -> None:
        icon = _ICONS.get(severity, _ICONS["critical"])
        text = f"{icon} {severity.upper()}: {title}" + (f"\n{body}" if body else "")
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 1] + "…"
        content = post_json(self._endpoint,
                            {"chat_id": self._chat_id, "text": text,
                             "disable_web_page_preview": True},
                            self._timeout_s, secrets=(self._token,),
                            where=f"telegram {self.name}")
        try:
            answer = json.loads(content)
        except ValueError:
            raise AlertError(f"telegram {self.name}: the answer is not JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            detail = answer.get("description", "") if isinstance(answer, dict) else ""
            raise AlertError(f"telegram {self.name}: not delivered {detail}".rstrip())
