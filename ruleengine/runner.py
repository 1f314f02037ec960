"""The run loop: feed → engine → audit store → broker, with broker results fed back as events.

This is the edge of the system, where side effects live. For each exchange timestamp it takes
the operator commands waiting in the audit store and the broker's results since the last tick,
hands them with the market events to :meth:`Engine.tick`, commits the resulting decisions to the
audit store, and only then cancels and places orders (write-ahead). A broker failure becomes a
rejection event on the next tick, so the engine's state stays consistent with what happened.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .alerting import build_router
from .audit import AuditStore
from .contracts import Broker, Feed
from .costs import CostModel, InstrumentType, charges_for_fill
from .decisions import Decision
from .engine import Engine, TickResult
from .errors import ConfigError
from .events import Contract, Event, OperatorCommand, OrderFilled
from .execution import ExecutionGateway
from .policyset import PolicySet, load_policy_set
from .reload import PolicyReloader, reload_decision

PNL_SNAPSHOT_EVERY_S = 60
#: Decision kinds the alert router may deliver; a tick holding one is written before routing.
_NOTIFYING = frozenset({"alert", "rule_error", "state_change"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    policies: tuple[str, ...] = ("policies",)
    strategies: tuple[str, ...] = ("strategies",)
    feed: str = "synthetic:calm"
    broker: str = "paper"
    db: str = "ruleengine.db"
    seed: int = 1  # the paper broker's randomness (slippage jitter, random rejects)
    data_seed: int = 1  # the synthetic market's path; fixed so --seed changes fills only
    guards: bool = True
    pace_s: float = 0.0  # wall-clock pause per tick, to watch a run or rehearse the kill switch
    progress: bool = False
    day: date | None = None
    prev_close: float | None = None  # for replays: the previous session's official close
    faults: str = ""  # broker fault spec for rehearsals, e.g. "ratelimit=0.1,timeout=0.05"
    reload: bool = False  # watch the policy folders; swap a valid edit in between two ticks
    allow_loosening: bool = False  # with reload: apply loosening edits in market hours too


@dataclass(slots=True)
class RunOutcome:
    run_id: int
    engine: Engine
    broker: Broker
    ticks: int = 0
    last_ts: datetime | None = None
    slippage_vs_ltp: float = 0.0
    fills_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def build_adapter(group: str, name: str, **kwargs: Any) -> Any:
    """Build a feed or broker by name through its entry point (the core imports no adapter)."""
    for ep in entry_points(group=f"ruleengine.{group}"):
        if ep.name == name:
            return ep.load()(**kwargs)
    known = sorted(ep.name for ep in entry_points(group=f"ruleengine.{group}"))
    raise ConfigError(f"no {group[:-1]} named {name!r}; installed: {', '.join(known) or 'none'}"
                      " (is the package installed with pip install -e .?)")


def make_charge_fn(policy: PolicySet) -> Callable[[date, Contract, str, int, float], float]:
    model = CostModel.from_policy_set(policy)

    def charge(day: date, contract: Contract, side: str, qty: int, price: float) -> float:
        inst = policy.instruments.get(contract.underlying)
        exchange = inst.exchange if inst is not None else "NSE"
        kind: InstrumentType = "future" if contract.kind == "FUT" else "option"
        return charges_for_fill(model, trade_date=day, instrument_type=kind,
                                side=side,  # type: ignore[arg-type]
                                qty=qty, price=price, exchange=exchange).total  # type: ignore[arg-type]
    return charge


def batches(events: Iterator[Event]) -> Iterator[list[Event]]:
    """Group a time-ordered stream into ticks: all events that share one timestamp."""
    for _ts, group in itertools.groupby(events, key=lambda e: e.ts):
        yield list(group)


def run(config: RunConfig, *, policy: PolicySet | None = None,
        on_tick: Callable[[TickResult], None] | None = None) -> RunOutcome:
    policy = policy or load_policy_set([*config.policies, *config.strategies])
    feed_name, _, feed_arg = config.feed.partition(":")
    feed: Feed = build_adapter("feeds", feed_name, arg=feed_arg, seed=config.data_seed,
                               policy=policy, day=config.day, prev_close=config.prev_close)
    broker: Broker = build_adapter("brokers", config.broker, policy=policy, seed=config.seed,
                                   capital=policy.capital)
    if config.faults:  # rehearse a bad day: rate limits, timeouts, rejects, duplicates ...
        broker = build_adapter("broker_wrappers", "faulty", inner=broker, spec=config.faults,
                               seed=config.seed)
    engine = Engine(policy, charge_fn=make_charge_fn(policy), guards=config.guards)
    gateway = ExecutionGateway.from_policy_set(
        broker, policy, seed=config.seed, quotes=lambda c: engine.state.market.quotes.get(c),
        review_db=config.db)
    router = build_router(policy)
    store = AuditStore(config.db)
    run_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
    run_id = store.begin_run(policy.revision, run_cfg)
    outcome = RunOutcome(run_id=run_id, engine=engine, broker=broker)
    progress = _progress(config.progress)
    buffered_events: list[Event] = []
    buffered_decisions: list[Any] = []
    fill_ltps: dict[str, float] = {}
    last_snapshot: datetime | None = None
    status = "failed"
    reloader = _start_reloader(config, policy)  # hot reload; None unless config.reload
    try:
        for batch in batches(iter(feed.events())):
            now = batch[0].ts
            commands = store.take_commands(run_id, now)
            from_broker: list[Event] = list(gateway.poll(now))  # earlier ticks' orders
            for event in batch:
                broker.on_market(event)
            inbound: list[Event] = [*commands, *from_broker, *batch]
            ltps = _fill_ltps(engine, from_broker)  # the market the fills happened in
            # -- hot reload: swap a checked policy set in here, between two ticks ----------
            if reloader is not None:
                reloaded = _take_reload(reloader, engine, now, commands, gateway)
                if reloaded is not None:  # audited at once, in the engine's id sequence
                    buffered_decisions.append(reloaded)
                    store.write(run_id, buffered_events, buffered_decisions, fill_ltps)
                    buffered_events, buffered_decisions = [], []
                    router.route_decision(reloaded)  # a rejected or held edit alerts
            # -- end hot reload ------------------------------------------------------------
            result = engine.tick(inbound)
            outcome.ticks += 1
            outcome.last_ts = now
            for d in result.decisions:
                ltp = ltps.get(d.result.get("fill_id", "")) if d.kind == "fill" else None
                if ltp is not None:
                    fill_ltps[d.id] = ltp
                    sign = 1 if d.result["side"] == "BUY" else -1
                    outcome.slippage_vs_ltp += (d.result["price"] - ltp) * sign * d.result["qty"]
                    outcome.fills_seen += 1
            buffered_events.extend(inbound)
            buffered_decisions.extend(result.decisions)
            acts = bool(result.orders or result.cancels)
            notify = any(d.kind in _NOTIFYING for d in result.decisions)
            if acts or notify or commands or len(buffered_events) > 5000:
                store.write(run_id, buffered_events, buffered_decisions, fill_ltps)  # write-ahead
                buffered_events, buffered_decisions = [], []
            for decision in result.decisions:  # alerts are side effects too: after the write
                router.route_decision(decision)  # never raises: a dead sink is counted
            if result.orders or result.cancels:
                # only now, after the write-ahead: throttled, retried without doubling
                gateway.submit(result.orders, result.cancels, now)
            if last_snapshot is None or (now - last_snapshot).total_seconds() >= \
                    PNL_SNAPSHOT_EVERY_S:
                _snapshot(store, run_id, engine, now)
                last_snapshot = now
            if on_tick is not None:
                on_tick(result)
            if progress is not None:
                progress.update(1)
            if config.pace_s:
                time.sleep(config.pace_s)
        # let the broker's last answers land
        if outcome.last_ts is not None:
            tail = list(gateway.poll(outcome.last_ts))
            if tail:
                result = engine.tick(tail)
                buffered_events.extend(tail)
                buffered_decisions.extend(result.decisions)
            _snapshot(store, run_id, engine, outcome.last_ts)
        store.write(run_id, buffered_events, buffered_decisions, fill_ltps)
        if outcome.last_ts is not None:
            if tail:
                for decision in result.decisions:
                    router.route_decision(decision)
            router.flush(outcome.last_ts, final=True)
        outcome.extra["alerts"] = router.stats().as_dict()
        status = "completed"
    finally:
        gateway.close()
        if reloader is not None:
            reloader.stop()
        if progress is not None:
            progress.close()
        store.end_run(run_id, status, outcome.last_ts)
        store.close()
    return outcome


# -- hot reload (ruleengine/reload.py) ----------------------------------------------------------
def _start_reloader(config: RunConfig, policy: PolicySet) -> PolicyReloader | None:
    """The watcher thread for ``--reload``: it loads edits off the tick path."""
    if not config.reload:
        return None
    return PolicyReloader([*config.policies, *config.strategies], policy,
                          allow_loosening=config.allow_loosening).start()


def _take_reload(reloader: PolicyReloader, engine: Engine, now: datetime,
                 commands: list[OperatorCommand],
                 gateway: ExecutionGateway | None = None) -> Decision | None:
    """Swap in a new set the reloader accepted (charges follow its costs policy) and return
    the record of what happened: a swap with its diff, or an alert when the old set stays."""
    result = reloader.take(now, commands)
    if result is None:
        return None
    decision = reload_decision(engine, result, now)
    if result.policy is not None:
        engine.swap_policy(result.policy)
        if gateway is not None:
            gateway.swap_policy(result.policy)
        engine.state.portfolio.charge_fn = make_charge_fn(result.policy)
    return decision
# -- end hot reload -------------------------------------------------------------------------------


def _fill_ltps(engine: Engine, events: list[Event]) -> dict[str, float]:
    """LTP of each filled contract as the engine last saw it, before this tick's quotes."""
    out: dict[str, float] = {}
    for e in events:
        if isinstance(e, OrderFilled):
            track = engine.state.orders.get(e.client_id)
            quote = engine.state.market.quotes.get(track.request.contract) if track else None
            if quote is not None:
                out[e.fill_id] = quote.ltp
    return out


def _snapshot(store: AuditStore, run_id: int, engine: Engine, now: datetime) -> None:
    pf = engine.state.portfolio
    store.snapshot_pnl(run_id, now, pf.realized, pf.unrealized(engine.state.market.mark_price),
                       pf.charges)


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm  # only the CLI shows a bar
    return tqdm(unit=" ticks", desc="ruleengine run", mininterval=0.5, leave=False)


def default_db_path(db: str) -> Path:
    return Path(db)
