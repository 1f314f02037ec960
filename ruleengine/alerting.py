"""Alert routing: which sinks hear about what, and how a storm of alerts stays readable.

A failing feed can produce the same fault every tick; forwarded one by one, a thousand identical
Telegram messages would hide the one that matters and get the bot rate-limited. The router
sits between the engine's decisions and the sinks and keeps three promises:

* **Nothing is silently lost.** Identical alerts inside the de-duplication window are counted,
  and the count rides on the next delivered copy (``"(+37 similar suppressed)"``) or on a digest
  once the window has passed; messages over a sink's rate limit are counted and reported on that
  sink's next message. :meth:`AlertRouter.stats` shows every count.
* **Alerting never breaks trading.** A sink that raises (Telegram down, SMTP refused) is
  recorded, retried a bounded number of times on later calls, and never raises out of the router.
* **Deterministic.** The router takes the event time ``now`` as an argument and never reads the
  clock, so a replay routes, suppresses and rate-limits exactly as the live run did (up to what
  the network answered). Time is kept in whole microseconds so limits are exact, not rounded.

The core never imports a concrete sink: :func:`build_router` finds the builders by type name
through the ``ruleengine.alert_sinks`` entry points.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

from .contracts import AlertSink
from .decisions import Decision
from .errors import ConfigError
from .functions import parse_duration
from .policyset import PolicySet
from .schema import apply_defaults

__all__ = [
    "SEVERITIES",
    "SINK_TYPES",
    "Alert",
    "AlertRouter",
    "AlertsConfig",
    "Delivery",
    "RouterStats",
    "SinkConfig",
    "SinkStats",
    "alert_from_decision",
    "build_router",
    "build_sink",
]

SEVERITIES = ("info", "warning", "critical")
SINK_TYPES = ("log", "webhook", "telegram", "email")
ENTRY_POINT_GROUP = "ruleengine.alert_sinks"

#: Failed deliveries waiting for a retry, per sink. A sink that is down for hours must not
#: turn into unbounded memory; the oldest waiting message is given up (and counted) first.
MAX_PENDING_RETRIES = 100
#: Dedup memory is pruned of expired keys once it holds this many, so distinct titles
#: (one per unknown order id, say) cannot grow it without bound.
_PRUNE_KEYS_ABOVE = 1024
_TITLE_MAX = 200


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _elapsed_us(later: datetime, earlier: datetime) -> int:
    d = later - earlier
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _severity(value: object) -> str:
    """Unknown severities count as critical: a typo must make an alert louder, not quieter."""
    text = str(value).lower()
    return text if text in SEVERITIES else "critical"


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class SinkConfig:
    """One sink of the alerts policy; ``settings`` is its whole (defaulted) YAML mapping, which
    the sink's builder reads its own keys from."""

    name: str
    type: str
    enabled: bool
    rate_messages: int
    rate_per_us: int
    retries: int
    retry_after_us: int
    settings: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """The ``alerts`` policy, checked beyond what JSON Schema can say (routing names exist)."""

    sinks: tuple[SinkConfig, ...]
    routing: Mapping[str, tuple[str, ...]]
    dedup_window_us: int
    from_decisions: Mapping[str, str]

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AlertsConfig:
        """From one schema-valid ``alerts`` document (defaults are applied here if missing)."""
        d = apply_defaults(dict(data), "alerts")
        sinks: list[SinkConfig] = []
        for name, raw in d["sinks"].items():
            for one, env in (("url", "url_env"), ("chat_id", "chat_id_env")):
                if raw.get(one) is not None and raw.get(env) is not None:
                    raise ConfigError(f"alert sink {name!r}: give {one} or {env}, not both")
            rate = raw["rate_limit"]
            sinks.append(SinkConfig(
                name=name, type=raw["type"], enabled=raw["enabled"],
                rate_messages=int(rate["messages"]), rate_per_us=_us(parse_duration(rate["per"])),
                retries=int(raw["retries"]), retry_after_us=_us(parse_duration(raw["retry_after"])),
                settings=raw))
        names = {s.name for s in sinks}
        routing: dict[str, tuple[str, ...]] = {}
        for severity in SEVERITIES:
            targets = tuple(d["routing"][severity])
            for target in targets:
                if target != "all" and target not in names and target not in SINK_TYPES:
                    raise ConfigError(
                        f"alerts routing.{severity}: {target!r} is no sink name, sink type or "
                        f"'all'; sinks: {', '.join(sorted(names)) or 'none'}")
            routing[severity] = targets
        return cls(sinks=tuple(sinks), routing=routing,
                   dedup_window_us=_us(parse_duration(d["dedup_window"])),
                   from_decisions=dict(d["from_decisions"]))

    @classmethod
    def from_policy_set(cls, policy: PolicySet) -> AlertsConfig:
        """The set's one ``alerts`` document; a set without one logs alerts and nothing else."""
        docs = [doc for doc in policy.documents if doc.kind == "alerts"]
        if len(docs) > 1:
            raise ConfigError("more than one alerts policy: "
                              + ", ".join(doc.file for doc in docs) + "; keep one")
        return cls.from_data(docs[0].data if docs else {"kind": "alerts", "version": 1})

    def targets(self, severity: str) -> tuple[str, ...]:
        """Enabled sink names for one severity, in the order the policy lists the sinks."""
        wanted = set(self.routing.get(_severity(severity), ()))
        return tuple(s.name for s in self.sinks if s.enabled and (
            "all" in wanted or s.name in wanted or s.type in wanted))


# -- what goes in and out --------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One message for a person. ``key`` decides what counts as "the same alert" for dedup."""

    severity: str
    title: str
    body: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One attempt to hand a message to one sink, and how it went."""

    sink: str
    severity: str
    title: str
    body: str
    ok: bool
    attempt: int = 1
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkStats:
    name: str
    type: str
    delivered: int
    failed: int  # attempts that raised
    retried: int  # attempts that were retries
    lost: int  # messages given up after their last retry
    rate_limited: int  # messages dropped by the token bucket
    rate_limited_unreported: int  # of those, not yet mentioned in a delivered message
    pending_retries: int
    last_error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterStats:
    received: int  # alerts handed to the router
    suppressed: int  # held back as duplicates inside the dedup window
    suppressed_unreported: int  # of those, not yet counted in a delivered message
    unrouted: int  # alerts whose severity routes to no enabled sink
    digests: int  # digest messages produced (one per key, to each of its sinks)
    sinks: Mapping[str, SinkStats]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alert_from_decision(decision: Decision, from_decisions: Mapping[str, str]) -> Alert | None:
    """The alert a decision calls for, or None. Titles name the rule and scope but not the
    message, because the message carries live numbers and would defeat de-duplication."""
    where = " · ".join(p for p in (decision.ts.strftime("%Y-%m-%d %H:%M:%S"), decision.scope,
                                   decision.location) if p)
    rule = decision.rule_id
    if decision.kind == "alert":
        severity = _severity(decision.result.get("severity", "warning"))
        if rule:
            title = f"{rule} [{decision.scope}]"
            body = decision.message
        else:
            first, _, rest = (decision.message or "alert").partition("\n")
            title, body = first, rest
    elif decision.kind == "rule_error":
        severity = from_decisions.get("rule_error", "warning")
        title = f"rule error: {rule} [{decision.scope}]"
        body = decision.message
    elif decision.kind == "state_change":
        to = str(decision.result.get("to", ""))
        severity = from_decisions.get(to.lower(), "none")
        title = f"{to} [{decision.scope}]"
        body = decision.message + (f" (rule {rule}, rearm {decision.result.get('rearm', '')})"
                                   if rule else "")
    else:
        return None
    if severity == "none":
        return None
    title = title[:_TITLE_MAX]
    body = f"{body}\n{where}" if body else where
    return Alert(severity=severity, title=title, body=body,
                 key=f"{decision.kind}|{rule}|{decision.scope}|{title}")


# -- the router -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Seen:
    """Dedup memory of one key: when it last went out, and what was held back since."""

    severity: str
    title: str
    sent_at: datetime
    last_body: str
    last_seen: datetime
    suppressed: int = 0


@dataclass(slots=True)
class _Retry:
    severity: str
    title: str
    body: str
    attempt: int  # the number the next attempt will have
    due: datetime


@dataclass(slots=True)
class _SinkState:
    config: SinkConfig
    sink: AlertSink
    credit: int  # token bucket, in message-microseconds: one message costs ``rate_per_us``
    refilled_at: datetime | None = None
    last_drop: datetime | None = None
    dropped_unreported: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0
    rate_limited: int = 0
    last_error: str = ""
    retries: deque[_Retry] = field(default_factory=deque)

    def take_token(self, now: datetime) -> bool:
        cfg = self.config
        capacity = cfg.rate_messages * cfg.rate_per_us
        if self.refilled_at is not None:
            gained = max(0, _elapsed_us(now, self.refilled_at)) * cfg.rate_messages
            self.credit = min(capacity, self.credit + gained)
        if self.refilled_at is None or now > self.refilled_at:
            self.refilled_at = now
        if self.credit < cfg.rate_per_us:
            return False
        self.credit -= cfg.rate_per_us
        return True


def _append(body: str, note: str) -> str:
    return f"{body}\n{note}" if body else note


def _suppressed_note(count: int) -> str:
    return f"(+{count} similar suppressed)"


def _dropped_note(count: int) -> str:
    return f"(+{count} other alert{'s' if count != 1 else ''} dropped by this sink's rate limit)"


class AlertRouter:
    """Routes alerts to sinks by severity, with de-duplication, rate limits and retries.

    Every public method takes the event time and returns the delivery attempts it made, so the
    runner can record them; none of them raises because a sink failed.
    """

    def __init__(self, config: AlertsConfig, sinks: Mapping[str, AlertSink]) -> None:
        self.config = config
        self._sinks: dict[str, _SinkState] = {}
        for cfg in config.sinks:
            if not cfg.enabled:
                continue
            if cfg.name not in sinks:
                raise ConfigError(f"alert sink {cfg.name!r} is enabled but was not built")
            self._sinks[cfg.name] = _SinkState(config=cfg, sink=sinks[cfg.name],
                                               credit=cfg.rate_messages * cfg.rate_per_us)
        self._window = timedelta(microseconds=config.dedup_window_us)
        self._seen: dict[str, _Seen] = {}
        self._unreported: dict[str, _Seen] = {}  # keys holding back a count, for digests
        self._prune_above = _PRUNE_KEYS_ABOVE
        self._received = self._suppressed = self._unrouted = self._digests = 0

    @property
    def sinks(self) -> Mapping[str, AlertSink]:
        return {name: st.sink for name, st in self._sinks.items()}

    # -- entry points for the runner --------------------------------------------------------

    def route_decision(self, decision: Decision) -> tuple[Delivery, ...]:
        """Route one engine decision; decisions that call for no alert only do housekeeping."""
        alert = alert_from_decision(decision, self.config.from_decisions)
        if alert is None:
            return self._housekeeping(decision.ts, final=False)
        return self.route(alert.severity, alert.title, alert.body, key=alert.key, now=decision.ts)

    def route(self, severity: str, title: str, body: str = "", *, now: datetime,
              key: str | None = None) -> tuple[Delivery, ...]:
        """Deliver one alert (unless it repeats one inside the dedup window), then run due
        retries and digests. ``key`` defaults to the title."""
        severity = _severity(severity)
        self._received += 1
        ident = f"{severity}|{key if key is not None else title}"
        seen = self._seen.get(ident)
        if seen is not None and now - seen.sent_at < self._window:
            seen.suppressed += 1
            seen.last_body, seen.last_seen = body, now
            self._suppressed += 1
            self._unreported[ident] = seen
            return self._housekeeping(now, final=False)
        held = seen.suppressed if seen is not None else 0
        self._unreported.pop(ident, None)
        self._seen[ident] = _Seen(severity=severity, title=title, sent_at=now, last_body=body,
                                  last_seen=now)
        if len(self._seen) > self._prune_above:
            self._prune(now)
        text = _append(body, _suppressed_note(held)) if held else body
        out = self._fan_out(severity, title, text, now)
        return out + self._housekeeping(now, final=False)

    def flush(self, now: datetime, *, final: bool = False) -> tuple[Delivery, ...]:
        """Run due retries and send due digests without a new alert, for a periodic timer or
        the end of a run. ``final`` reports every held-back count and retries every waiting
        message now, whatever the windows say."""
        return self._housekeeping(now, final=final)

    def stats(self) -> RouterStats:
        sinks = {name: SinkStats(
            name=name, type=st.config.type, delivered=st.delivered, failed=st.failed,
            retried=st.retried, lost=st.lost, rate_limited=st.rate_limited,
            rate_limited_unreported=st.dropped_unreported, pending_retries=len(st.retries),
            last_error=st.last_error) for name, st in self._sinks.items()}
        return RouterStats(
            received=self._received, suppressed=self._suppressed,
            suppressed_unreported=sum(s.suppressed for s in self._unreported.values()),
            unrouted=self._unrouted, digests=self._digests, sinks=sinks)

    # -- internals ----------------------------------------------------------------------------

    def _fan_out(self, severity: str, title: str, body: str,
                 now: datetime) -> tuple[Delivery, ...]:
        targets = self.config.targets(severity)
        if not targets:
            self._unrouted += 1
            return ()
        out: list[Delivery] = []
        for name in targets:
            st = self._sinks[name]
            if not st.take_token(now):
                st.rate_limited += 1
                st.dropped_unreported += 1
                st.last_drop = now
                continue
            out.append(self._attempt(st, _Retry(severity=severity, title=title, body=body,
                                                attempt=1, due=now), now))
        return tuple(out)

    def _attempt(self, st: _SinkState, msg: _Retry, now: datetime) -> Delivery:
        """One call of the sink (a token is already taken). The rate-limit note is added here,
        not stored with the message, so a retried message never reports a count twice."""
        dropped = st.dropped_unreported
        body = _append(msg.body, _dropped_note(dropped)) if dropped else msg.body
        if msg.attempt > 1:
            st.retried += 1
        try:
            st.sink.send(msg.severity, msg.title, body)
        except Exception as exc:  # any sink failure, not only AlertError: trading goes on
            st.failed += 1
            st.last_error = f"{type(exc).__name__}: {exc}"
            if msg.attempt <= st.config.retries:
                if len(st.retries) >= MAX_PENDING_RETRIES:
                    st.retries.popleft()
                    st.lost += 1
                st.retries.append(_Retry(
                    severity=msg.severity, title=msg.title, body=msg.body,
                    attempt=msg.attempt + 1,
                    due=now + timedelta(microseconds=st.config.retry_after_us)))
            else:
                st.lost += 1
            return Delivery(sink=st.config.name, severity=msg.severity, title=msg.title,
                            body=body, ok=False, attempt=msg.attempt, error=st.last_error)
        st.delivered += 1
        st.dropped_unreported -= dropped
        return Delivery(sink=st.config.name, severity=msg.severity, title=msg.title, body=body,
                        ok=True, attempt=msg.attempt)

    def _housekeeping(self, now: datetime, *, final: bool) -> tuple[Delivery, ...]:
        out: list[Delivery] = []
        for st in self._sinks.values():
            out.extend(self._retry_due(st, now, final=final))
        out.extend(self._digests_due(now, final=final))
        for st in self._sinks.values():
            quiet = st.last_drop is not None and \
                _elapsed_us(now, st.last_drop) >= st.config.rate_per_us
            if st.dropped_unreported and (final or quiet) and st.take_token(now):
                out.append(self._attempt(st, _Retry(
                    severity="info", title="alert digest",
                    body="This sink's rate limit held alerts back; it has been quiet since.",
                    attempt=1, due=now), now))
        return tuple(out)

    def _retry_due(self, st: _SinkState, now: datetime, *, final: bool) -> list[Delivery]:
        out: list[Delivery] = []
        for _ in range(len(st.retries)):
            msg = st.retries[0]
            if not final and msg.due > now:
                break
            if not st.take_token(now):
                break  # it waits for a token; a retry is never dropped by the rate limit
            st.retries.popleft()
            out.append(self._attempt(st, msg, now))
        return out

    def _digests_due(self, now: datetime, *, final: bool) -> list[Delivery]:
        """Counts held back for keys that have gone quiet: without a digest they would only
        surface if the same fault happened again."""
        out: list[Delivery] = []
        for ident, seen in list(self._unreported.items()):
            if not final and now - seen.sent_at < self._window:
                continue
            del self._unreported[ident]
            held, seen.suppressed, seen.sent_at = seen.suppressed, 0, now
            self._digests += 1
            last = seen.last_seen.strftime("%H:%M:%S")
            body = _append(seen.last_body, f"(+{held} similar suppressed; the last at {last})")
            out.extend(self._fan_out(seen.severity, seen.title, body, now))
        return out

    def _prune(self, now: datetime) -> None:
        """Forget expired keys; the next prune waits until memory has doubled, so a burst of
        distinct keys all inside the window costs amortised O(1) per alert, not a scan each."""
        for ident, seen in list(self._seen.items()):
            if not seen.suppressed and now - seen.sent_at >= self._window:
                del self._seen[ident]
        self._prune_above = max(_PRUNE_KEYS_ABOVE, 2 * len(self._seen))


# -- building from the policy set ------------------------------------------------------------

def build_sink(config: SinkConfig, *, env: Mapping[str, str] | None = None) -> AlertSink:
    """Build one sink by its type through the ``ruleengine.alert_sinks`` entry points."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == config.type]
    if not found:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise ConfigError(f"no alert sink type {config.type!r}; installed: "
                          f"{', '.join(known) or 'none'} (is the package installed with "
                          "pip install -e .?)")
    sink: AlertSink = found[0].load()(name=config.name, settings=dict(config.settings), env=env)
    return sink


def build_router(policy: PolicySet, *, env: Mapping[str, str] | None = None,
                 sinks: Mapping[str, AlertSink] | None = None) -> AlertRouter:
    """The router the policy set describes, with its enabled sinks built by entry point.

    ``env`` replaces the process environment the sinks read their secrets from (tests);
    ``sinks`` supplies ready sinks by name instead of building them. A missing secret is a
    :class:`~ruleengine.errors.ConfigError` here, at start-up, not a failure mid-session.
    """
    config = AlertsConfig.from_policy_set(policy)
    given = dict(sinks or {})
    built = {c.name: given[c.name] if c.name in given else build_sink(c, env=env)
             for c in config.sinks if c.enabled}
    return AlertRouter(config, built)
