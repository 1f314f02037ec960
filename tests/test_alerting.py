"""The alert router: routing by severity, de-duplication, rate limits, digests, retries, and
failures that never reach the caller. Sinks that must talk to a server talk to a real one on
127.0.0.1; the router-logic tests use a small recording sink (a real AlertSink, not a mock).
Times are simulated: the router never reads the clock.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from loguru import logger

from ruleengine.alerting import (
    AlertRouter,
    AlertsConfig,
    Delivery,
    alert_from_decision,
    build_router,
)
from ruleengine.contracts import AlertSink
from ruleengine.decisions import Decision
from ruleengine.errors import AlertError, ConfigError
from ruleengine.policyset import load_policy_set

if TYPE_CHECKING:
    from conftest import Recorder

T0 = datetime(2026, 11, 26, 9, 15)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class RecordingSink:
    """Keeps what it was sent; ``fail`` makes it raise like a sink whose service is down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, str, str]] = []
        self.fail: Exception | None = None

    def send(self, severity: str, title: str, body: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((severity, title, body))


def make_config(sinks: dict[str, dict[str, Any]] | None = None, **top: Any) -> AlertsConfig:
    data: dict[str, Any] = {"kind": "alerts", "version": 1, **top}
    if sinks is not None:
        data["sinks"] = sinks
    return AlertsConfig.from_data(data)


def recording_router(sinks: dict[str, dict[str, Any]], **top: Any) -> tuple[
        AlertRouter, dict[str, RecordingSink]]:
    config = make_config(sinks, **top)
    built = {c.name: RecordingSink(c.name) for c in config.sinks if c.enabled}
    return AlertRouter(config, built), built


FOUR = {
    "log": {"type": "log"},
    "hook": {"type": "webhook", "url": "http://127.0.0.1:9/"},
    "tg": {"type": "telegram", "token_env": "T", "chat_id": 1},
    "mail": {"type": "email", "host": "h", "from": "a@b", "to": ["c@d"]},
}


# -- a real HTTP server ---------------------------------------------------------------------------




@pytest.fixture
def log_records() -> Iterator[list[str]]:
    """Messages the log sink wrote (loguru records bound with ``alert_sink``)."""
    seen: list[str] = []
    handler = logger.add(lambda m: seen.append(m.record["message"]), level="DEBUG",
                         filter=lambda r: "alert_sink" in r["extra"])
    yield seen
    logger.remove(handler)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the shipped policy ---------------------------------------------------------------------------


def test_shipped_policies_load_with_the_alerts_kind(repo_root: Path) -> None:
    pset = load_policy_set([repo_root / "policies", repo_root / "strategies"])
    (doc,) = pset.of_kind("alerts")
    assert doc["dedup_window"] == "5m"
    config = AlertsConfig.from_policy_set(pset)
    assert [s.name for s in config.sinks if s.enabled] == ["log"]
    assert {s.type for s in config.sinks} == {"log", "webhook", "telegram", "email"}


def test_shipped_router_builds_on_a_machine_without_secrets(repo_root: Path) -> None:
    pset = load_policy_set([repo_root / "policies", repo_root / "strategies"])
    router = build_router(pset, env={})
    assert set(router.sinks) == {"log"}
    assert [d.sink for d in router.route("critical", "t", "b", now=T0)] == ["log"]


def test_shipped_lint_exits_0(repo_root: Path) -> None:
    exe = shutil.which("ruleengine", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "ruleengine.cli"]
    done = subprocess.run([*cmd, "lint", "policies", "strategies"], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shipped_disabled_sinks_build_once_enabled_and_given_secrets(
        repo_root: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((repo_root / "policies" / "alerts.yaml").read_text())
    for sink in data["sinks"].values():
        sink["enabled"] = True
    config = AlertsConfig.from_data(data)
    pset_dir = _policies_with_alerts(repo_root, tmp_path, data)
    env = {"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook", "TELEGRAM_BOT_TOKEN": "1:A",
           "TELEGRAM_CHAT_ID": "-100", "SMTP_PASSWORD": "pw"}
    router = build_router(load_policy_set([pset_dir, repo_root / "strategies"]), env=env)
    assert set(router.sinks) == {s.name for s in config.sinks}
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        build_router(load_policy_set([pset_dir, repo_root / "strategies"]),
                     env={**env, "TELEGRAM_BOT_TOKEN": ""})


def _policies_with_alerts(repo_root: Path, tmp_path: Path, alerts: dict[str, Any]) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(repo_root / "policies", folder)
    (folder / "alerts.yaml").write_text(yaml.safe_dump(alerts, sort_keys=False))
    return folder


def test_a_policy_set_without_alerts_logs_only() -> None:
    config = make_config()
    assert [(s.name, s.type) for s in config.sinks] == [("log", "log")]
    assert config.targets("info") == config.targets("critical") == ("log",)


@pytest.mark.parametrize(("top", "needle"), [
    ({"routing": {"critical": ["pager"]}}, "'pager' is no sink name"),
    ({"sinks": {"h": {"type": "webhook", "url": "http://x", "url_env": "U"}}},
     "url or url_env, not both"),
    ({"sinks": {"t": {"type": "telegram", "token_env": "T", "chat_id": 1,
                      "chat_id_env": "C"}}}, "chat_id or chat_id_env"),
])
def test_config_mistakes_schema_cannot_see_are_config_errors(top: dict[str, Any],
                                                             needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_config(**top)


def test_two_alerts_policies_are_refused(repo_root: Path, tmp_path: Path) -> None:
    folder = _policies_with_alerts(repo_root, tmp_path, {"kind": "alerts", "version": 1})
    (folder / "alerts2.yaml").write_text("kind: alerts\nversion: 1\n")
    with pytest.raises(ConfigError, match="more than one alerts policy"):
        build_router(load_policy_set([folder, repo_root / "strategies"]))


# -- routing --------------------------------------------------------------------------------------


def test_default_routing_info_log_warning_log_and_webhook_critical_all() -> None:
    router, sinks = recording_router(FOUR)
    assert [d.sink for d in router.route("info", "i", now=at(0))] == ["log"]
    assert [d.sink for d in router.route("warning", "w", now=at(1))] == ["log", "hook"]
    assert [d.sink for d in router.route("critical", "c", now=at(2))] == \
        ["log", "hook", "tg", "mail"]
    assert [t for _, t, _ in sinks["tg"].sent] == ["c"]
    assert [t for _, t, _ in sinks["log"].sent] == ["i", "w", "c"]


def test_warning_goes_to_webhook_only_if_one_is_enabled() -> None:
    router, _ = recording_router({**FOUR, "hook": {**FOUR["hook"], "enabled": False}})
    assert [d.sink for d in router.route("warning", "w", now=T0)] == ["log"]
    assert [d.sink for d in router.route("critical", "c", now=T0)] == ["log", "tg", "mail"]


def test_routing_by_name_type_and_all() -> None:
    router, _ = recording_router(
        {**FOUR, "hook2": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
        routing={"info": ["mail"], "warning": ["webhook"], "critical": ["tg", "log"]})
    assert [d.sink for d in router.route("info", "i", now=T0)] == ["mail"]
    assert [d.sink for d in router.route("warning", "w", now=T0)] == ["hook", "hook2"]
    assert [d.sink for d in router.route("critical", "c", now=T0)] == ["log", "tg"]


def test_a_severity_routed_nowhere_is_counted_as_unrouted() -> None:
    router, _ = recording_router({"log": {"type": "log"}}, routing={"info": []})
    assert router.route("info", "i", now=T0) == ()
    assert router.stats().unrouted == 1


def test_unknown_severity_is_treated_as_critical() -> None:
    router, _ = recording_router(FOUR)
    assert {d.severity for d in router.route("urgent", "x", now=T0)} == {"critical"}
    assert len(router.route("CRITICAL", "y", now=T0)) == 4


# -- de-duplication and digests -----------------------------------------------------------------


def test_identical_alerts_inside_the_window_are_suppressed_and_then_counted() -> None:
    router, sinks = recording_router({"log": {"type": "log"}}, dedup_window="5m")
    assert len(router.route("warning", "feed stale", "12s", now=at(0))) == 1
    for i in range(1, 4):
        assert router.route("warning", "feed stale", f"{12 + i}s", now=at(i)) == ()
    assert router.stats().suppressed == 3
    assert router.route("warning", "feed stale", "20s", now=at(299.999)) == ()
    (d,) = router.route("warning", "feed stale", "30s", now=at(300))  # the window has expired
    assert d.body == "30s\n(+4 similar suppressed)"
    stats = router.stats()
    assert (stats.received, stats.suppressed, stats.suppressed_unreported) == (6, 4, 0)
    assert [b for _, _, b in sinks["log"].sent] == ["12s", "30s\n(+4 similar suppressed)"]


def test_window_counts_from_the_last_delivery_so_a_long_storm_reports_every_window() -> None:
    router, sinks = recording_router({"log": {"type": "log"}}, dedup_window="1m")
    for s in range(0, 181):  # one identical fault a second for three minutes
        router.route("warning", "feed stale", "x", now=at(s))
    assert [b for _, _, b in sinks["log"].sent] == [
        "x", "x\n(+59 similar suppressed)", "x\n(+59 similar suppressed)",
        "x\n(+59 similar suppressed)"]


def test_dedup_key_separates_rules_and_scopes_but_not_live_numbers() -> None:
    router, sinks = recording_router({"log": {"type": "log"}})
    router.route("warning", "stale", "a", key="feed|NIFTY", now=at(0))
    router.route("warning", "stale", "b", key="feed|BANKNIFTY", now=at(1))
    router.route("warning", "stale", "c", key="feed|NIFTY", now=at(2))
    router.route("critical", "stale", "d", key="feed|NIFTY", now=at(3))  # louder: not a repeat
    assert [b for _, _, b in sinks["log"].sent] == ["a", "b", "d"]


def test_zero_window_disables_dedup() -> None:
    router, sinks = recording_router({"log": {"type": "log"}}, dedup_window="0s")
    for _ in range(5):
        router.route("info", "same", now=T0)
    assert len(sinks["log"].sent) == 5


def test_a_quiet_key_gets_a_digest_once_its_window_has_passed() -> None:
    router, sinks = recording_router({"log": {"type": "log"}}, dedup_window="5m")
    router.route("critical", "broker down", "timeout", now=at(0))
    router.route("critical", "broker down", "timeout again", now=at(10))
    assert router.flush(at(299)) == ()
    (digest,) = router.flush(at(300))
    assert digest.title == "broker down"
    assert digest.body == "timeout again\n(+1 similar suppressed; the last at 09:15:10)"
    assert router.flush(at(900)) == ()  # reported once
    assert router.stats().digests == 1 and router.stats().suppressed_unreported == 0
    assert len(sinks["log"].sent) == 2


def test_another_alert_carries_a_due_digest_without_a_timer() -> None:
    router, _ = recording_router({"log": {"type": "log"}}, dedup_window="1m")
    router.route("warning", "A", now=at(0))
    router.route("warning", "A", now=at(5))
    out = router.route("info", "B", now=at(61))
    assert [(d.title, d.body) for d in out] == [
        ("B", ""), ("A", "(+1 similar suppressed; the last at 09:15:05)")]


def test_final_flush_reports_every_held_back_count_at_once() -> None:
    router, _ = recording_router({"log": {"type": "log"}}, dedup_window="1h")
    router.route("warning", "A", now=at(0))
    router.route("warning", "A", now=at(1))
    assert router.flush(at(2)) == ()
    (d,) = router.flush(at(2), final=True)
    assert "(+1 similar suppressed;" in d.body


# -- storms ---------------------------------------------------------------------------------------


def test_storm_of_1000_identical_faults_in_a_minute(
        repo_root: Path, tmp_path: Path, http_server: Recorder, log_records: list[str]) -> None:
    """The shipped policy (5m dedup window) with its webhook enabled and pointed at a local
    server: 1,000 identical critical faults 60 ms apart (09:15:00.000-09:15:59.940) reach each
    sink exactly once; the 999 held back are counted and reported when the fault recurs after
    the window, in that one next message."""
    data = yaml.safe_load((repo_root / "policies" / "alerts.yaml").read_text())
    data["sinks"]["ops-webhook"]["enabled"] = True
    pset = load_policy_set([_policies_with_alerts(repo_root, tmp_path, data),
                            repo_root / "strategies"])
    router = build_router(pset, env={"ALERT_WEBHOOK_URL": http_server.url + "/hook"})
    delivered: list[Delivery] = []
    for i in range(1000):
        delivered += router.route("critical", "NIFTY feed stale",
                                  f"no tick for {3 + i * 0.06:.2f}s",
                                  now=T0 + timedelta(milliseconds=60 * i))
    assert [(d.sink, d.ok) for d in delivered] == [("log", True), ("ops-webhook", True)]
    assert len(http_server.bodies()) == 1 and len(log_records) == 1
    stats = router.stats()
    assert (stats.received, stats.suppressed, stats.suppressed_unreported) == (1000, 999, 999)
    assert stats.sinks["ops-webhook"].delivered == 1
    assert stats.sinks["ops-webhook"].rate_limited == 0

    after = router.route("critical", "NIFTY feed stale", "no tick for 303.00s", now=at(300))
    assert [d.sink for d in after] == ["log", "ops-webhook"]
    assert http_server.bodies()[-1]["body"] == "no tick for 303.00s\n(+999 similar suppressed)"
    assert log_records[-1].endswith("(+999 similar suppressed)")
    assert len(http_server.bodies()) == 2
    assert router.stats().suppressed_unreported == 0


def test_storm_of_engine_decisions_dedups_although_the_numbers_change() -> None:
    router, sinks = recording_router({"log": {"type": "log"}})
    for i in range(1000):
        router.route_decision(Decision(
            id=str(i), ts=T0 + timedelta(milliseconds=60 * i), revision="r", kind="alert",
            rule_id="feed-stale", scope="underlying:NIFTY", location="policies/risk.yaml:40",
            result={"severity": "warning"}, message=f"feed {3 + i * 0.06:.2f}s old"))
    assert len(sinks["log"].sent) == 1
    (digest,) = router.flush(at(300))
    assert digest.body == ("feed 62.94s old\n"
                           "2026-11-26 09:15:59 · underlying:NIFTY · policies/risk.yaml:40\n"
                           "(+999 similar suppressed; the last at 09:15:59)")


def test_storm_of_1000_distinct_alerts_is_held_to_the_rate_limit() -> None:
    """A token bucket of 20 per minute starts full: 20 go at once, then one more every 3 s.
    Over 59.94 s that is 20 + floor(59.94 / 3) = 39 messages; the other 961 are counted, and
    each delivered message names the drops since the one before it."""
    router, sinks = recording_router(
        {"log": {"type": "log", "rate_limit": {"messages": 20, "per": "1m"}}})
    for i in range(1000):
        router.route("critical", f"unknown fill {i}", now=T0 + timedelta(milliseconds=60 * i))
    assert len(sinks["log"].sent) == 39
    stats = router.stats().sinks["log"]
    assert (stats.delivered, stats.rate_limited) == (39, 961)
    # The last token comes at 57 s (alert 950); alerts 951-999 are still to be reported.
    assert sinks["log"].sent[-1][1] == "unknown fill 950"
    assert stats.rate_limited_unreported == 49
    reported = [int(m.group(1)) for _, _, body in sinks["log"].sent
                if (m := re.search(r"\(\+(\d+) other alerts? dropped", body))]
    assert len(reported) == 19 and sum(reported) == 961 - 49
    (d,) = router.route("info", "next", now=at(63))
    assert d.body == "(+49 other alerts dropped by this sink's rate limit)"
    assert router.stats().sinks["log"].rate_limited_unreported == 0


def test_rate_limited_count_goes_out_as_a_digest_once_the_sink_is_quiet() -> None:
    router, _ = recording_router(
        {"log": {"type": "log", "rate_limit": {"messages": 1, "per": "10s"}}}, dedup_window="0s")
    router.route("info", "a", now=at(0))
    router.route("info", "b", now=at(1))
    assert router.flush(at(10)) == ()  # a full period since the last drop has not passed
    (d,) = router.flush(at(11))
    assert d.title == "alert digest"
    assert d.body.endswith("(+1 other alert dropped by this sink's rate limit)")


def test_time_running_backwards_grants_no_extra_messages() -> None:
    router, sinks = recording_router(
        {"log": {"type": "log", "rate_limit": {"messages": 1, "per": "1m"}}}, dedup_window="0s")
    router.route("info", "a", now=at(60))
    router.route("info", "b", now=at(0))
    router.route("info", "c", now=at(30))
    assert len(sinks["log"].sent) == 1


def test_routing_is_deterministic() -> None:
    def play() -> list[Delivery]:
        router, _ = recording_router(
            {**FOUR, "log": {"type": "log", "rate_limit": {"messages": 3, "per": "1m"}}},
            dedup_window="30s")
        out: list[Delivery] = []
        for i in range(300):
            out += router.route(("info", "warning", "critical")[i % 3], f"t{i % 7}",
                                str(i), now=at(i * 0.7))
        return out + list(router.flush(at(400), final=True))

    assert play() == play()


# -- failures never reach the caller --------------------------------------------------------------


def test_http_500_sink_is_counted_retried_a_bounded_number_of_times_then_lost(
        http_server: Recorder) -> None:
    http_server.status = 500
    config = make_config({"log": {"type": "log"},
                          "hook": {"type": "webhook", "url": http_server.url,
                                   "retries": 2, "retry_after": "30s"}})
    from adapters.alerts.factory import webhook_sink

    log = RecordingSink("log")
    router = AlertRouter(config, {"log": log,
                                  "hook": webhook_sink(name="hook", settings={
                                      "url": http_server.url, "timeout": "2s"})})
    out = router.route("critical", "HALTED [account]", "kill switch", now=at(0))
    assert [(d.sink, d.ok) for d in out] == [("log", True), ("hook", False)]
    assert "HTTP 500" in out[1].error
    assert router.stats().sinks["hook"].pending_retries == 1
    assert router.flush(at(29)) == ()  # not due yet
    (retry,) = router.flush(at(30))
    assert (retry.attempt, retry.ok, retry.body) == (2, False, "kill switch")
    (retry,) = router.flush(at(60))
    assert (retry.attempt, retry.ok) == (3, False)
    assert router.flush(at(600)) == ()  # given up: 1 + 2 retries
    assert len(http_server.bodies()) == 3
    stats = router.stats().sinks["hook"]
    assert (stats.delivered, stats.failed, stats.retried, stats.lost, stats.pending_retries) == \
        (0, 3, 2, 1, 0)
    assert "HTTP 500" in stats.last_error
    assert len(log.sent) == 1


def test_a_retry_succeeds_once_the_service_is_back(http_server: Recorder) -> None:
    http_server.status = 500
    from adapters.alerts.webhook import WebhookSink

    config = make_config({"hook": {"type": "webhook", "url": http_server.url}})
    router = AlertRouter(config, {"hook": WebhookSink("hook", http_server.url)})
    router.route("critical", "c", "body", now=at(0))
    http_server.status = 200
    out = router.route("info", "unrelated", now=at(31))  # any later call runs due retries
    assert [(d.title, d.attempt, d.ok) for d in out] == [("c", 2, True)]
    assert http_server.bodies()[-1]["body"] == "body"
    assert router.stats().sinks["hook"].delivered == 1


def test_telegram_on_a_closed_port_does_not_raise_and_the_log_still_gets_it() -> None:
    from adapters.alerts.telegram import TelegramSink

    config = make_config({"log": {"type": "log"},
                          "tg": {"type": "telegram", "token_env": "T", "chat_id": 1,
                                 "retries": 0}})
    log = RecordingSink("log")
    tg = TelegramSink("tg", token="1:SECRET", chat_id=1,
                      base_url=f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    router = AlertRouter(config, {"log": log, "tg": tg})
    out = router.route("critical", "HALTED [account]", "daily loss", now=T0)
    assert [(d.sink, d.ok) for d in out] == [("log", True), ("tg", False)]
    stats = router.stats().sinks["tg"]
    assert (stats.failed, stats.lost, stats.pending_retries) == (1, 1, 0)
    assert "SECRET" not in stats.last_error
    assert len(log.sent) == 1


@pytest.mark.parametrize("error", [AlertError("down"), RuntimeError("a bug in a sink"),
                                   TimeoutError("slow")])
def test_no_sink_exception_escapes_the_router(error: Exception) -> None:
    router, sinks = recording_router(FOUR)
    sinks["tg"].fail = error
    out = router.route_decision(Decision(id="1", ts=T0, revision="r", kind="alert",
                                         result={"severity": "critical"}, message="x"))
    assert [d.ok for d in out] == [True, True, False, True]
    assert str(error) in router.stats().sinks["tg"].last_error


def test_the_retry_queue_is_bounded() -> None:
    from ruleengine.alerting import MAX_PENDING_RETRIES

    router, sinks = recording_router(
        {"tg": {"type": "telegram", "token_env": "T", "chat_id": 1, "retries": 5,
                "rate_limit": {"messages": 10_000, "per": "1s"}}}, dedup_window="0s")
    sinks["tg"].fail = AlertError("down")
    for i in range(MAX_PENDING_RETRIES + 50):
        router.route("critical", f"t{i}", now=T0)
    stats = router.stats().sinks["tg"]
    assert (stats.pending_retries, stats.lost) == (MAX_PENDING_RETRIES, 50)


def test_a_failed_message_keeps_its_rate_limit_count_for_the_next_success() -> None:
    router, sinks = recording_router(
        {"log": {"type": "log", "retries": 0, "rate_limit": {"messages": 1, "per": "10s"}}},
        dedup_window="0s")
    router.route("info", "a", now=at(0))
    router.route("info", "b", now=at(1))  # dropped by the bucket
    sinks["log"].fail = AlertError("down")
    router.route("info", "c", now=at(10))  # carries the count, but fails
    sinks["log"].fail = None
    router.route("info", "d", now=at(20))
    assert sinks["log"].sent[-1][2] == "(+1 other alert dropped by this sink's rate limit)"


# -- decisions ------------------------------------------------------------------------------------


FROM = {"rule_error": "warning", "halted": "critical", "reduce_only": "none"}


def decision(kind: Any, **fields: Any) -> Decision:
    return Decision(id="7", ts=datetime(2026, 11, 26, 10, 1, 2), revision="abc", kind=kind,
                    **fields)


def test_alert_decision_with_a_rule() -> None:
    alert = alert_from_decision(decision(
        "alert", scope="account", rule_id="daily-loss", location="policies/risk.yaml:14",
        result={"severity": "critical"}, message="day P&L -3.12% breached the -3% limit"), FROM)
    assert alert is not None
    assert (alert.severity, alert.title) == ("critical", "daily-loss [account]")
    assert alert.body == ("day P&L -3.12% breached the -3% limit\n"
                          "2026-11-26 10:01:02 · account · policies/risk.yaml:14")
    assert alert.key == "alert|daily-loss|account|daily-loss [account]"


def test_alert_decision_without_a_rule_uses_its_message_as_title() -> None:
    alert = alert_from_decision(decision("alert", scope="strategy:s1",
                                         result={"severity": "critical"},
                                         message="cannot price exit of NIFTY24CE"), FROM)
    assert alert is not None
    assert alert.title == "cannot price exit of NIFTY24CE"
    assert alert.body == "2026-11-26 10:01:02 · strategy:s1"


def test_rule_error_and_halt_alert_but_other_decisions_do_not() -> None:
    err = alert_from_decision(decision("rule_error", rule_id="vix", scope="account",
                                       message="vix could not be evaluated"), FROM)
    assert err is not None and (err.severity, err.title) == ("warning", "rule error: vix [account]")
    halt = alert_from_decision(decision("state_change", rule_id="kill", scope="account",
                                        result={"from": "ACTIVE", "to": "HALTED",
                                                "rearm": "manual"}, message="kill switch"), FROM)
    assert halt is not None and (halt.severity, halt.title) == ("critical", "HALTED [account]")
    assert halt.body.startswith("kill switch (rule kill, rearm manual)")
    for d in (decision("state_change", result={"to": "REDUCE_ONLY"}),
              decision("state_change", result={"to": "ACTIVE"}),
              decision("order"), decision("fill"), decision("rule_fired")):
        assert alert_from_decision(d, FROM) is None
    reduce = alert_from_decision(decision("state_change", result={"to": "REDUCE_ONLY"}),
                                 {**FROM, "reduce_only": "info"})
    assert reduce is not None and reduce.severity == "info"


def test_route_decision_is_one_call_per_decision() -> None:
    router, sinks = recording_router(FOUR)
    assert router.route_decision(decision("order")) == ()
    out = router.route_decision(decision("state_change", rule_id="kill", scope="account",
                                         result={"to": "HALTED"}, message="kill switch"))
    assert [d.sink for d in out] == ["log", "hook", "tg", "mail"]
    assert sinks["tg"].sent[0][1] == "HALTED [account]"


def test_alert_sink_contract_is_satisfied_by_the_test_sink() -> None:
    assert isinstance(RecordingSink("x"), AlertSink)


def test_dedup_memory_of_expired_keys_is_pruned() -> None:
    router, sinks = recording_router({"log": {"type": "log", "rate_limit": {
        "messages": 10_000, "per": "1s"}}}, dedup_window="1s")
    for i in range(5000):
        router.route("info", f"order {i}", now=at(i))  # each key expires before the next
    assert len(sinks["log"].sent) == 5000
    assert len(router._seen) <= 1025
