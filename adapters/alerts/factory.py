"""Builders for alert sinks, registered as ``ruleengine.alert_sinks`` entry points.

Each takes the sink's name, its (defaulted) mapping from the alerts policy and, for tests, an
environment to read secrets from. Secrets live only in environment variables that the policy
names, so a policy file can be shared and committed; a missing one is a
:class:`~ruleengine.errors.ConfigError` at start-up rather than a failed alert mid-session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ruleengine.contracts import AlertSink
from ruleengine.errors import ConfigError
from ruleengine.functions import parse_duration

from .email import EmailSink
from .log import LogSink
from .telegram import DEFAULT_BASE_URL, TelegramSink
from .webhook import WebhookSink


def _secret(env: Mapping[str, str] | None, var: str, name: str, what: str) -> str:
    value = (os.environ if env is None else env).get(var, "")
    if not value:
        raise ConfigError(f"alert sink {name!r}: environment variable {var} (the {what}) is not "
                          "set; export it or set `enabled: false` for this sink")
    return value


def _timeout(settings: Mapping[str, Any]) -> float:
    return parse_duration(str(settings.get("timeout") or "5s"))


def log_sink(*, name: str, settings: Mapping[str, Any],
             env: Mapping[str, str] | None = None) -> AlertSink:
    return LogSink(name)


def webhook_sink(*, name: str, settings: Mapping[str, Any],
                 env: Mapping[str, str] | None = None) -> AlertSink:
    url_env = settings.get("url_env")
    if url_env:
        return WebhookSink(name, _secret(env, url_env, name, "webhook URL"),
                           timeout_s=_timeout(settings), secret_url=True)
    url = settings.get("url")
    if not url:
        raise ConfigError(f"alert sink {name!r}: a webhook needs url or url_env")
    return WebhookSink(name, str(url), timeout_s=_timeout(settings))


def telegram_sink(*, name: str, settings: Mapping[str, Any],
                  env: Mapping[str, str] | None = None) -> AlertSink:
    token_env = settings.get("token_env")
    if not token_env:
        raise ConfigError(f"alert sink {name!r}: telegram needs token_env")
    token = _secret(env, token_env, name, "bot token")
    chat_env = settings.get("chat_id_env")
    chat_id: str | int | None = _secret(env, chat_env, name, "chat id") if chat_env \
        else settings.get("chat_id")
    if chat_id is None or chat_id == "":
        raise ConfigError(f"alert sink {name!r}: telegram needs chat_id or chat_id_env")
    return TelegramSink(name, token=token, chat_id=chat_id,
                        base_url=str(settings.get("base_url") or DEFAULT_BASE_URL),
                        timeout_s=_timeout(settings))


def email_sink(*, name: str, settings: Mapping[str, Any],
               env: Mapping[str, str] | None = None) -> AlertSink:
    missing = [k for k in ("host", "from", "to") if not settings.get(k)]
    if missing:
        raise ConfigError(f"alert sink {name!r}: email needs {', '.join(missing)}")
    username = settings.get("username")
    password_env = settings.get("password_env")
    if username and not password_env:
        raise ConfigError(f"alert sink {name!r}: username is set but password_env is not")
    if password_env and not username:
        raise ConfigError(f"alert sink {name!r}: password_env is set but username is not")
    password = _secret(env, password_env, name, "SMTP password") if password_env else None
    return EmailSink(name, host=str(settings["host"]), port=int(settings.get("port") or 587),
                     sender=str(settings["from"]), recipients=[str(t) for t in settings["to"]],
                     starttls=bool(settings.get("starttls", True)),
                     username=str(username) if username else None, password=password,
                     timeout_s=_timeout(settings))
