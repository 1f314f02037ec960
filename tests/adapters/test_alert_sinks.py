"""Alert sinks against real servers on 127.0.0.1: an HTTP server for the webhook and the Telegram
Bot API, an aiosmtpd SMTP server for e-mail. The assertions are on what the servers received,
so the wire format is pinned, not a mock's idea of it. No network beyond loopback.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.alerts.email import EmailSink
from adapters.alerts.factory import email_sink, telegram_sink, webhook_sink
from adapters.alerts.log import LogSink
from adapters.alerts.telegram import TelegramSink
from adapters.alerts.webhook import WebhookSink
from ruleengine.alerting import SinkConfig, build_sink
from ruleengine.contracts import AlertSink
from ruleengine.errors import AlertError, ConfigError

if TYPE_CHECKING:
    from conftest import Recorder

# -- a real HTTP server ---------------------------------------------------------------------------




def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a real SMTP server ---------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[Message]:
        return [message_from_bytes(e.original_content) for e in self.envelopes]


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts@example.com" \
        and auth_data.password == b"s3cret"
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=closed_port(),
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture(scope="module")
def loopback_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"openssl could not make a test certificate: {exc}")
    return cert, key


# -- entry points and the builders ----------------------------------------------------------------


def test_every_sink_type_is_an_installed_entry_point() -> None:
    names = {ep.name for ep in entry_points(group="ruleengine.alert_sinks")}
    assert names == {"log", "webhook", "telegram", "email"}


def test_built_sinks_satisfy_the_contract(http_server: Recorder) -> None:
    sinks = [
        build_sink(_cfg("log", {"type": "log"})),
        build_sink(_cfg("hook", {"type": "webhook", "url": http_server.url})),
        build_sink(_cfg("tg", {"type": "telegram", "token_env": "TG_TOKEN", "chat_id": 42}),
                   env={"TG_TOKEN": "123:abc"}),
        build_sink(_cfg("mail", {"type": "email", "host": "127.0.0.1", "from": "a@b.c",
                                 "to": ["d@e.f"]})),
    ]
    assert [type(s) for s in sinks] == [LogSink, WebhookSink, TelegramSink, EmailSink]
    assert all(isinstance(s, AlertSink) for s in sinks)
    assert [s.name for s in sinks] == ["log", "hook", "tg", "mail"]


def _cfg(name: str, settings: dict[str, Any]) -> SinkConfig:
    return SinkConfig(name=name, type=settings["type"], enabled=True, rate_messages=20,
                      rate_per_us=60_000_000, retries=2, retry_after_us=30_000_000,
                      settings=settings)


@pytest.mark.parametrize(("builder", "settings", "env", "needle"), [
    (telegram_sink, {"token_env": "TG_TOKEN", "chat_id": 1}, {}, "TG_TOKEN"),
    (telegram_sink, {"token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT"}, {"TG_TOKEN": "x"},
     "TG_CHAT"),
    (telegram_sink, {"token_env": "TG_TOKEN"}, {"TG_TOKEN": "x"}, "chat_id"),
    (webhook_sink, {"url_env": "HOOK_URL"}, {}, "HOOK_URL"),
    (webhook_sink, {"url_env": "HOOK_URL"}, {"HOOK_URL": "file:///etc/passwd"}, "http(s)"),
    (webhook_sink, {}, {}, "url"),
    (email_sink, {"host": "h", "from": "a@b", "to": ["c@d"], "username": "u",
                  "password_env": "SMTP_PW"}, {}, "SMTP_PW"),
    (email_sink, {"host": "h", "from": "a@b", "to": ["c@d"], "username": "u"}, {},
     "password_env"),
    (email_sink, {"host": "h", "to": ["c@d"]}, {}, "from"),
])
def test_missing_or_bad_settings_are_config_errors_at_build_time(
        builder: Any, settings: dict[str, Any], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match="alert sink 'x'") as info:
        builder(name="x", settings=settings, env=env)
    assert needle in str(info.value)


def test_secrets_come_from_the_environment_not_the_policy(
        http_server: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RE_TEST_TG_TOKEN", "777:from-env")
    monkeypatch.setenv("RE_TEST_TG_CHAT", "-100123")
    sink = telegram_sink(name="tg", settings={"token_env": "RE_TEST_TG_TOKEN",
                                              "chat_id_env": "RE_TEST_TG_CHAT",
                                              "base_url": http_server.url})
    sink.send("info", "hello", "")
    assert http_server.requests[0]["path"] == "/bot777:from-env/sendMessage"
    assert http_server.bodies()[0]["chat_id"] == "-100123"


# -- log ------------------------------------------------------------------------------------------


def test_log_sink_writes_one_record_at_the_alert_level() -> None:
    from loguru import logger

    records: list[Any] = []
    handler = logger.add(lambda m: records.append(m.record), level="DEBUG")
    try:
        LogSink("log").send("warning", "feed stale", "NIFTY 12s old\n(+3 similar suppressed)")
    finally:
        logger.remove(handler)
    (record,) = records
    assert record["level"].name == "WARNING"
    assert record["message"] == "alert: feed stale — NIFTY 12s old | (+3 similar suppressed)"
    assert record["extra"]["alert_sink"] == "log"


# -- webhook --------------------------------------------------------------------------------------


def test_webhook_posts_json_to_the_url(http_server: Recorder) -> None:
    sink = webhook_sink(name="hook", settings={"url": http_server.url + "/alerts",
                                               "timeout": "2s"})
    sink.send("critical", "HALTED [account]", "day P&L -3.10% breached the -3% limit")
    (req,) = http_server.requests
    assert req["path"] == "/alerts"
    assert req["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(req["body"]) == {
        "source": "ruleengine", "severity": "critical", "title": "HALTED [account]",
        "body": "day P&L -3.10% breached the -3% limit",
        "text": "[CRITICAL] HALTED [account]\nday P&L -3.10% breached the -3% limit"}


def test_webhook_http_500_is_an_alert_error(http_server: Recorder) -> None:
    http_server.status, http_server.reply = 500, b"boom"
    with pytest.raises(AlertError, match=r"HTTP 500.*boom"):
        WebhookSink("hook", http_server.url).send("info", "t", "b")
    assert len(http_server.requests) == 1


def test_webhook_redirect_is_a_failure_not_a_silent_get(http_server: Recorder) -> None:
    http_server.status = 302
    with pytest.raises(AlertError, match="HTTP 302"):
        WebhookSink("hook", http_server.url).send("info", "t", "b")


def test_webhook_closed_port_is_an_alert_error() -> None:
    with pytest.raises(AlertError, match="refused"):
        WebhookSink("hook", f"http://127.0.0.1:{closed_port()}", timeout_s=2).send(
            "info", "t", "b")


def test_webhook_url_from_env_is_kept_out_of_errors() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hooks/SECRETKEY"
    sink = webhook_sink(name="hook", settings={"url_env": "HOOK"}, env={"HOOK": url})
    with pytest.raises(AlertError) as info:
        sink.send("info", "t", "b")
    assert "SECRETKEY" not in str(info.value)
    assert "webhook hook" in str(info.value)


# -- telegram -------------------------------------------------------------------------------------


def test_telegram_calls_send_message_on_the_base_url(http_server: Recorder) -> None:
    sink = TelegramSink("tg", token="123:ABC", chat_id=-1001, base_url=http_server.url + "/")
    sink.send("critical", "HALTED [account]", "kill switch")
    (req,) = http_server.requests
    assert req["path"] == "/bot123:ABC/sendMessage"
    assert json.loads(req["body"]) == {"chat_id": -1001,
                                       "text": "🚨 CRITICAL: HALTED [account]\nkill switch",
                                       "disable_web_page_preview": True}


def test_telegram_long_text_is_cut_to_the_api_limit(http_server: Recorder) -> None:
    TelegramSink("tg", token="1:A", chat_id=1, base_url=http_server.url).send(
        "info", "t", "x" * 10_000)
    text = http_server.bodies()[0]["text"]
    assert len(text) == 4096 and text.endswith("…")


def test_telegram_refusal_is_an_alert_error_without_the_token(http_server: Recorder) -> None:
    http_server.status = 401
    http_server.reply = b'{"ok": false, "error_code": 401, "description": "Unauthorized"}'
    sink = TelegramSink("tg", token="999:TOPSECRET", chat_id=1, base_url=http_server.url)
    with pytest.raises(AlertError, match="Unauthorized") as info:
        sink.send("info", "t", "b")
    assert "TOPSECRET" not in str(info.value)


def test_telegram_ok_false_in_a_200_answer_is_a_failure(http_server: Recorder) -> None:
    http_server.reply = b'{"ok": false, "description": "Bad Request: chat not found"}'
    with pytest.raises(AlertError, match="chat not found"):
        TelegramSink("tg", token="1:A", chat_id=1, base_url=http_server.url).send("info", "t", "")


def test_telegram_down_is_an_alert_error() -> None:
    sink = TelegramSink("tg", token="1:SECRET", chat_id=1,
                        base_url=f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    with pytest.raises(AlertError) as info:
        sink.send("info", "t", "b")
    assert "SECRET" not in str(info.value)


# -- email ----------------------------------------------------------------------------------------


def _mail_settings(controller: Controller, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": controller.port, "starttls": False,
            "from": "alerts@example.com", "to": ["trader@example.com", "ops@example.com"],
            "timeout": "5s", **extra}


def test_email_is_delivered_over_smtp(smtp_server: tuple[Controller, _Inbox]) -> None:
    controller, inbox = smtp_server
    sink = email_sink(name="mail", settings=_mail_settings(controller))
    sink.send("critical", "HALTED [account]", "day P&L -3.10%\n(+2 similar suppressed)")
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["trader@example.com", "ops@example.com"]
    (msg,) = inbox.messages()
    assert msg["Subject"] == "[ruleengine CRITICAL] HALTED [account]"
    assert msg["To"] == "trader@example.com, ops@example.com"
    text = msg.get_payload(decode=True).decode()
    assert text == "day P&L -3.10%\r\n(+2 similar suppressed)\r\n"  # SMTP lines end in CRLF


def test_email_logs_in_with_the_password_from_env(
        smtp_server: tuple[Controller, _Inbox]) -> None:
    controller, inbox = smtp_server
    settings = _mail_settings(controller, username="alerts@example.com", password_env="SMTP_PW")
    email_sink(name="mail", settings=settings, env={"SMTP_PW": "s3cret"}).send("info", "t", "b")
    assert len(inbox.envelopes) == 1
    wrong = email_sink(name="mail", settings=settings, env={"SMTP_PW": "wrong"})
    with pytest.raises(AlertError, match=r"email mail via 127\.0\.0\.1"):
        wrong.send("info", "t", "b")
    assert len(inbox.envelopes) == 1


def test_email_starttls_refused_by_a_plain_server_is_an_alert_error(
        smtp_server: tuple[Controller, _Inbox]) -> None:
    controller, inbox = smtp_server
    sink = email_sink(name="mail", settings=_mail_settings(controller, starttls=True))
    with pytest.raises(AlertError, match="STARTTLS"):
        sink.send("info", "t", "b")
    assert inbox.envelopes == []


def test_email_starttls_upgrades_and_verifies_the_certificate(
        loopback_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = loopback_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=closed_port(),
                            tls_context=context, require_starttls=True)
    controller.start()
    try:
        sink = email_sink(name="mail", settings=_mail_settings(controller, starttls=True))
        with pytest.raises(AlertError, match="CERTIFICATE_VERIFY_FAILED"):
            sink.send("info", "untrusted", "b")  # the default trust store does not know it
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the client trusts the test CA
        sink.send("warning", "over TLS", "b")
    finally:
        controller.stop()
    (msg,) = inbox.messages()
    assert msg["Subject"] == "[ruleengine WARNING] over TLS"


def test_email_closed_port_is_an_alert_error() -> None:
    sink = EmailSink("mail", host="127.0.0.1", port=closed_port(), sender="a@b.c",
                     recipients=["d@e.f"], starttls=False, timeout_s=2)
    with pytest.raises(AlertError, match="refused"):
        sink.send("info", "t", "b")


def test_email_subject_never_carries_a_newline() -> None:
    sink = EmailSink("mail", host="h", port=25, sender="a@b.c", recipients=["d@e.f"])
    assert sink.message("info", "line one\nInjected: header", "b")["Subject"] == \
        "[ruleengine INFO] line one Injected: header"
