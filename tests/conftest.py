"""Shared pytest fixtures. Each group is owned by the tests named in its heading."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ruleengine.names import Registry, default_registry

# -- foundation: loader, schemas, expressions, lint, CLI ------------------------------------
# Used by test_corpus, test_hostile, test_expr, test_yamlsource, test_schema, test_policyset,
# test_cli and test_docs_errors.

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The two brakes every risk policy must have, so a test file is about one thing only.
BRAKES_YAML = """\
rules:
  - id: kill-switch
    when: operator.kill_switch
    then: [halt, cancel_pending, square_off, alert]
    overridable: false
  - id: daily-loss
    when: account.day_pnl_pct <= -3
    then: [halt, cancel_pending, square_off, alert]
    overridable: false
"""


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout: holds ``policies/``, ``strategies/`` and ``docs/``."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The shipped context registry (``ruleengine/names.yaml``)."""
    return default_registry()


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented YAML text to ``tmp_path/name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def risk_with_rule(write_policy: Callable[[str, str], Path]) -> Callable[[str], Path]:
    """Write a risk policy holding both brakes plus one rule whose ``when:`` is ``condition``.

    The condition is written as a double-quoted YAML scalar (escaped), so any expression text
    reaches the expression compiler unchanged; its first character is on line 13, column 12.
    """

    def write(condition: str) -> Path:
        quoted = condition.replace("\\", "\\\\").replace('"', '\\"')
        text = ("kind: risk\nversion: 1\n" + BRAKES_YAML
                + f'  - id: check\n    when: "{quoted}"\n    then: [alert]\n')
        return write_policy("risk.yaml", text)

    return write


# -- scheduler and calendar ------------------------------------------------------------------
# Used by test_calendar and test_scheduler.


@pytest.fixture(scope="session")
def schedule(repo_root: Path) -> dict[str, Any]:
    """The shipped schedule policy, validated and with its defaults applied."""
    from ruleengine.policyset import read_documents

    docs, findings = read_documents([repo_root / "policies" / "schedule.yaml"])
    assert findings == []
    return docs[0].data


# -- policy sets with a constant condition (lint warnings) ----------------------------------
# Used by test_cli and test_policyset.

CONSTANT_RULE = """\
kind: risk
version: 1
rules:
  - id: kill-switch
    when: operator.kill_switch
    then: [halt]
  - id: daily-loss
    when: account.day_pnl_pct <= -3
    then: [halt]
  - id: never
    when: market.vix < 0
    then: [alert]
"""


@pytest.fixture(scope="session")
def constant_rule_yaml() -> str:
    """A valid risk policy whose third rule can never fire (a constant-condition warning)."""
    return CONSTANT_RULE


# -- a real local HTTP server for webhook and Telegram sinks ---------------------------------
# Used by test_alerting and adapters/test_alert_sinks.


class Recorder(ThreadingHTTPServer):
    """Records every request; answers with ``status`` and ``reply``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.reply = b'{"ok": true, "result": {"message_id": 1}}'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.reply)))
        self.end_headers()
        self.wfile.write(self.server.reply)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def http_server() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)
