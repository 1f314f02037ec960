"""The e-mail sink: one message per alert over SMTP, optionally upgraded with STARTTLS.

A new connection per message keeps the sink stateless: alerts are rare (the router rate-limits
them), and a long-lived SMTP connection would time out between them anyway.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ruleengine.errors import AlertError


class EmailSink:
    """Sends ``[ruleengine SEVERITY] title`` with the body as plain text."""

    def __init__(self, name: str, *, host: str, port: int, sender: str,
                 recipients: Sequence[str], starttls: bool = True, username: str | None = None,
                 password: str | None = None, timeout_s: float = 10.0) -> None:
        self.name = name
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._starttls = starttls
        self._username, self._password = username, password
        self._timeout_s = timeout_s

    def message(self, severity: str, title: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        subject = " ".join(f"[ruleengine {severity.upper()}] {title}".split())
        msg["Subject"] = subject
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        msg.set_content(body or title)
        return msg

    def send(self, severity: str, title: str, body: str) -> None:
        where = f"email {self.name} via {self._host}:{self._port}"
        try:
            msg = self.message(severity, title, body)
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            raise AlertError(f"{where}: {exc}") from None
