"""The deterministic tick engine: ``decisions = engine(policy_set, events)``.

:meth:`Engine.tick` takes every event that carries one exchange timestamp and runs the stages in
order — market, positions, guards, strategies (exits, then entries), re-entry, sizing, checks —
returning the decisions and the approved orders and cancels. It never reads a clock, the network
or an unseeded random source, and performs no side effect: the runner writes the decisions to
the audit store first and only then talks to the broker, whose answers come back as events on a
later tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from .checks import CheckConfig, check_order, context_for, gateway
from .context import (
    ACCOUNT_NAMES,
    MarkedLeg,
    Reads,
    ScopeValues,
    Values,
    account_values,
    expiry_values,
    market_values,
    session_values,
    strategy_values,
)
from .contracts import OrderRequest, Purpose
from .dataquality import DQParams
from .decisions import Decision
from .events import (
    ChainSnapshot,
    Event,
    IndexTick,
    OperatorCommand,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
    VixTick,
)
from .functions import parse_duration
from .guards import Emit, rearm_all, run_guards
from .market import MarketState, seconds_of_day
from .policyset import PolicySet
from .portfolio import ChargeFn, Portfolio
from .signals import Signal, entry_signal, exit_signals, make_run_indicators, update_bars
from .sizing import ExecutionParams, exit_order, plan_entry
from .state import EngineState, OrderTrack, PlannedLeg, StrategyRun
from .tradingstate import ScopeState, TradingState, effective, scope_chain

_ORDER_AND_OPERATOR_EVENTS = (OrderFilled, OrderAccepted, OrderRejected, OrderCancelled,
                              OperatorCommand)
# The market data of nearly every tick, by exact type: one set lookup sends it straight to the
# market state. Anything else (an adapter's own subclass of a fill included) takes _ingest's
# isinstance tests.
_PRICE_EVENTS = frozenset({IndexTick, VixTick, Quote, ChainSnapshot})


class TickResult(NamedTuple):
    """What one tick decided. Immutable like the decisions in it; a named tuple rather than a
    frozen dataclass because one is made every tick, and a frozen dataclass's ``__init__``
    (a guarded ``__setattr__`` per field) cost about 1% of the whole tick."""

    ts: datetime
    decisions: tuple[Decision, ...]
    orders: tuple[OrderRequest, ...]
    cancels: tuple[str, ...]


def _no_charges(*_args: Any) -> float:
    return 0.0


class Engine:
    """Holds one compiled policy set and the state between ticks."""

    def __init__(self, policy: PolicySet, *, charge_fn: ChargeFn | None = None,
                 guards: bool = True) -> None:
        self.guards_enabled = guards
        runs = {s.id: StrategyRun(spec=s) for s in policy.strategies}
        for run in runs.values():
            make_run_indicators(run)
        self.state = EngineState(policy=policy, market=MarketState(params=_dq_params(policy)),
                                 portfolio=Portfolio(charge_fn=charge_fn or _no_charges),
                                 runs=runs, peak_equity=policy.capital)
        self.execution = _execution_params(policy)
        self.capital = policy.capital
        self.checks = CheckConfig.from_policy_set(policy)
        self._reads = Reads.of(_names_read(policy))
        self._tick_values: dict[str, Values] = {}  # this tick's values, by scope
        self._bases: dict[str | None, Values] = {}  # this tick's, by underlying
        self._account_values: Values | None = None  # this tick's first with account.*
        self._expiry: dict[str, tuple[tuple[date | None, tuple[date, ...]], Values]] = {}
        # this tick's open legs with their marks (one price lookup per leg per tick)
        self._marked: list[MarkedLeg] = []
        self._open_legs: dict[str, list[MarkedLeg]] = {}  # the same, by strategy
        self._strategy_cache: dict[str, tuple[tuple[Any, ...], ScopeValues]] = {}
        self._emit_cache: tuple[datetime, Emit] | None = None
        self._now = datetime.min
        self._secs = 0  # self._now's second of the day

    @property
    def revision(self) -> str:
        return self.state.policy.revision

    def swap_policy(self, policy: PolicySet) -> None:
        """Take a new compiled set between ticks; strategy state carries over by id."""
        st = self.state
        runs: dict[str, StrategyRun] = {}
        for spec in policy.strategies:
            old = st.runs.get(spec.id)
            run = StrategyRun(spec=spec)
            make_run_indicators(run)
            if old is not None and old.spec.indicators == spec.indicators:
                run.indicators, run.bars, run.ind_values = old.indicators, old.bars, old.ind_values
                run.entry_ts, run.waiting, run.best_pnl_pct = old.entry_ts, old.waiting, \
                    old.best_pnl_pct
            runs[spec.id] = run
        st.policy, st.runs = policy, runs
        self._strategy_cache, self._expiry = {}, {}  # both depend on the policy set
        self.execution = _execution_params(policy)
        self.checks = CheckConfig.from_policy_set(policy)
        self._reads = Reads.of(_names_read(policy))
        st.market.params = _dq_params(policy)

    # -- the tick ------------------------------------------------------------------------------
    def tick(self, events: Sequence[Event]) -> TickResult:
        st = self.state
        now = events[0].ts
        for event in events:  # the latest timestamp (a plain loop: max() over a generator
            if event.ts > now:  # costs more than the few events of a tick)
                now = event.ts
        if st.market.now is not None and now < st.market.now:
            now = st.market.now  # a late event never moves the engine's clock backwards
        st.decisions, st.outbox, st.cancels = [], [], []
        if st.day != now.date():
            self._new_day(now)
        apply = st.market.apply
        for event in events:
            if type(event) in _PRICE_EVENTS:
                verdict = apply(event)
                if verdict is not None:
                    self._data_quality(event, verdict, now)
            else:
                self._ingest(event, now)
        self._now, self._secs = now, seconds_of_day(now)
        st.market.maintain(now, self._secs)
        if st.market.notes:
            self._market_notes(now)
        self._update_bars(now)
        self._tick_values, self._bases, self._account_values = {}, {}, None
        self._mark_open_legs()
        if self.guards_enabled:
            run_guards(st, self._values_for, now, self._emit_at(now))
        self._square_off(now)
        self._cancel_stale_entries(now)
        self._strategies(now)
        return TickResult(ts=now, decisions=tuple(st.decisions), orders=tuple(st.outbox),
                          cancels=tuple(st.cancels))

    def _market_notes(self, now: datetime) -> None:
        st = self.state
        emit = self._emit_at(now)
        for verdict, detail in st.market.notes:
            emit("data_quality", scope=f"underlying:{detail['instrument']}"
                 if detail.get("instrument") not in (None, "VIX") else "account",
                 result={"classification": verdict, **detail},
                 message=f"{detail.get('instrument')} {verdict.replace('_', ' ')}"
                         f" ({detail.get('source', '')})")
        st.market.notes = []

    def _update_bars(self, now: datetime) -> None:
        """Indicators move with the market, before any rule or strategy reads them; only a
        tick that brought a new price for a strategy's underlying counts."""
        secs = self._secs
        day_s = now.toordinal() * 86400
        underlyings = self.state.market.underlyings
        for run in self.state.runs.values():
            if run.sources:
                u = underlyings.get(run.spec.underlying)
                if u is not None and u.spot_ts == now:
                    update_bars(run, day_s, secs, u.spot, u.fut.ltp if u.fut is not None else None)

    def _mark_open_legs(self) -> None:
        """Each open leg with this tick's mark, in booking order and by strategy: one price
        lookup per leg per tick, however many stages read it."""
        mark = self.state.market.mark_price
        marked: list[MarkedLeg] = []
        by_strategy: dict[str, list[MarkedLeg]] = {}
        for leg in self.state.portfolio.open_legs():
            pair = (leg, mark(leg.contract))
            marked.append(pair)
            group = by_strategy.get(leg.strategy_id)
            if group is None:
                by_strategy[leg.strategy_id] = [pair]
            else:
                group.append(pair)
        self._marked, self._open_legs = marked, by_strategy

    def _strategies(self, now: datetime) -> None:
        """Stage 4: exits before entries, strategy by strategy. A flat strategy outside its
        entry window has nothing to decide and costs only its bar update."""
        st = self.state
        secs = self._secs
        busy_ids = {o.request.strategy_id for o in st.live.values()} if st.live else set()
        for sid, run in st.runs.items():
            spec = run.spec
            legs = self._open_legs.get(sid)
            busy = bool(legs) or bool(run.waiting) or sid in busy_ids
            if not busy and not spec.entry_start_s <= secs <= spec.entry_end_s:
                continue  # flat and outside its entry window: nothing to decide
            values = self._values_for(run.scope)
            if busy:
                exiting = {o.request.leg_id for o in st.live.values()
                           if o.request.strategy_id == sid and o.request.purpose != "entry"} \
                    if sid in busy_ids else set()
                for sig in exit_signals(run, legs or [], values, secs, exiting):
                    self._exit(run, sig, now)
            else:
                self._maybe_enter(run, values, now)

    # -- values --------------------------------------------------------------------------------
    def _values_for(self, scope: str) -> Values:
        """Values a scope's expressions read, built at most once per scope per tick. Account and
        underlying scopes share one dict per underlying; a strategy scope is that dict plus
        its own ``strategy.*``, ``position.*`` and ``ind.*`` names."""
        hit = self._tick_values.get(scope)
        if hit is not None:
            return hit
        kind, _, name = scope.partition(":")
        if kind == "strategy":
            hit = self._strategy_scope(self.state.runs[name])
        else:
            hit = self._base(name if kind == "underlying" else self._primary_underlying())
        self._tick_values[scope] = hit
        return hit

    def _base(self, underlying: str | None) -> Values:
        """Session, expiry, market and account values of one underlying, built once a tick
        into one dict."""
        hit = self._bases.get(underlying)
        if hit is not None:
            return hit
        st = self.state
        now = self._now
        v = session_values(now, self._secs)
        if underlying is not None:
            market = st.market
            u = market.underlyings.get(underlying)
            inst = st.policy.instruments.get(underlying)
            if u is not None:  # expiries are known once the underlying has been seen
                expiry = self._expiry.get(underlying)
                key = (st.day, u.expiries)
                if expiry is None or expiry[0] != key:  # once a day, or on a new expiry
                    expiry = self._expiry[underlying] = (key, expiry_values(u, inst, now.date()))
                v.update(expiry[1])
            else:
                u = market.underlying(underlying)
            # The market's clock: behind the tick's only on a tick of no market data (then its
            # second is worked out again); None before the first price, when the market names
            # stay absent and every rule that reads them fails safe.
            mnow = market.now
            if mnow is not None:
                market_values(v, market, u, inst, market.params,
                              self._secs if mnow == now else seconds_of_day(mnow), self._reads)
        self._account(v)
        self._bases[underlying] = v
        return v

    def _strategy_scope(self, run: StrategyRun) -> ScopeValues:
        """A strategy scope's values: its ``strategy.*``, ``position.*`` and ``ind.*`` names
        over the underlying's shared ones. They change only with its book and legs (any
        change to either moves ``Portfolio.revision``), its indicators and the marks of its
        legs; an option chain moves every few seconds, a flat strategy not at all. So one
        object is kept per strategy and rebuilt only when one of those changes; every tick it
        is pointed at the new shared values and the tick's time."""
        st = self.state
        spec = run.spec
        legs = self._open_legs.get(spec.id) or []
        base = self._bases.get(spec.underlying) or self._base(spec.underlying)
        # the legs with this tick's marks compare equal while the same legs are marked alike
        key = (self.capital, st.portfolio.revision, run.entry_ts, run.ind_changes, legs)
        cached = self._strategy_cache.get(spec.id)
        if cached is None or cached[0] != key:
            values = ScopeValues(base, self._now, run.entry_ts if legs else None,
                                 st.portfolio.book(spec.id).last_exit_ts)
            strategy_values(values, st.portfolio, spec.id, self.capital * spec.capital_weight,
                            legs)
            values.update(run.ind_values)
            self._strategy_cache[spec.id] = (key, values)
            return values
        values = cached[1]
        values.base, values.now = base, self._now
        return values

    def _account(self, v: Values) -> None:
        """Add ``account.*`` to ``v``: worked out once a tick and copied into the values of
        any further underlying."""
        first = self._account_values
        if first is not None:
            for name in ACCOUNT_NAMES:
                if name in first:  # the names the policy set reads
                    v[name] = first[name]
            return
        st = self.state
        unrealized = 0.0
        for leg, mark in self._marked:  # booking order, as the summary adds them
            unrealized += leg.unrealized(mark)
        st.peak_equity = account_values(v, st.portfolio, self.capital, unrealized,
                                        st.peak_equity, len(self._marked), len(st.live),
                                        st.orders_today, st.kill_switch, self._reads)
        self._account_values = v

    def _primary_underlying(self) -> str | None:
        for run in self.state.runs.values():
            return run.spec.underlying
        return next(iter(self.state.market.underlyings), None)

    # -- events in -----------------------------------------------------------------------------
    def _ingest(self, event: Event, now: datetime) -> None:
        """An event other than the plain price events the tick loop hands to the market."""
        st = self.state
        if not isinstance(event, _ORDER_AND_OPERATOR_EVENTS):  # timers, bars, closes
            verdict = st.market.apply(event)
            if verdict is not None:
                self._data_quality(event, verdict, now)
            return
        emit = self._emit_at(now)
        if isinstance(event, OrderFilled):
            self._on_fill(event, now)
        elif isinstance(event, OrderAccepted):
            track = st.orders.get(event.client_id)
            if track is not None and track.status == "SENT":
                track.status = "OPEN"
        elif isinstance(event, OrderRejected):
            track = st.orders.get(event.client_id)
            if track is not None:
                st.finish(track, "REJECTED")
                req = track.request
                emit("denied", scope=f"strategy:{req.strategy_id}",
                     result={"code": "broker-rejected", "client_id": req.client_id,
                             "purpose": req.purpose, "reason": event.reason},
                     message=f"broker rejected {req.side} {req.qty} {req.contract.symbol}: "
                             f"{event.reason}")
                if req.purpose != "entry":
                    emit("alert", scope=f"strategy:{req.strategy_id}",
                         result={"severity": "critical", "client_id": req.client_id},
                         message=f"{req.purpose} order for {req.contract.symbol} rejected "
                                 f"({event.reason}); retrying until flat")
                if req.purpose == "entry":
                    run = st.runs.get(req.strategy_id)
                    if run is not None and run.waiting:
                        run.waiting = []  # never sell the rest naked after a hedge failed
                        st.flatten.add(f"strategy:{req.strategy_id}")
                self._check_flat(req.strategy_id, now)
        elif isinstance(event, OrderCancelled):
            track = st.orders.get(event.client_id)
            if track is not None:
                st.finish(track, "CANCELLED")
                self._check_flat(track.request.strategy_id, now)
        elif isinstance(event, OperatorCommand):
            self._on_command(event, now)

    def _data_quality(self, event: Event, verdict: str, now: datetime) -> None:
        """Every tick kept out of prices is recorded with its reason, never silently dropped."""
        value = getattr(event, "value", None)
        self._emit_at(now)("data_quality", result={"classification": verdict,
                                                   "event": type(event).__name__,
                                                   "value": value, "source": event.source,
                                                   "ts": event.ts.isoformat()},
                           message=f"{type(event).__name__} at {event.ts:%H:%M:%S} classified "
                                   f"{verdict}; not used for prices")

    def _on_command(self, cmd: OperatorCommand, now: datetime) -> None:
        st = self.state
        emit = self._emit_at(now)
        result: dict[str, Any] = {"command": cmd.command, "who": cmd.who, "reason": cmd.reason}
        if cmd.command == "kill":
            st.kill_switch = True
        elif cmd.command == "rearm":
            st.kill_switch = False
            emit("operator", result=result, message=f"{cmd.who}: rearm — {cmd.reason}")
            rearm_all(st, frozenset({"manual", "next_session", "auto", "on_clean"}),
                      f"{cmd.who}: {cmd.reason}", emit)
            return
        elif cmd.command == "override":
            try:
                rule = st.policy.rule(cmd.rule_id)
            except KeyError:
                result["refused"] = "unknown rule"
            else:
                if not rule.overridable:
                    result["refused"] = "rule is marked overridable: false"
                elif cmd.until is None or cmd.until <= now:
                    result["refused"] = "override needs a future --until time"
                else:
                    st.overrides[rule.id] = cmd.until
                    result["until"] = cmd.until.isoformat()
        elif cmd.command == "clear_override":
            st.overrides.pop(cmd.rule_id, None)
        emit("operator", rule_id=cmd.rule_id, result=result,
             message=f"{cmd.who}: {cmd.command} {cmd.rule_id} — {cmd.reason}".replace("  ", " "))

    def _on_fill(self, fill: OrderFilled, now: datetime) -> None:
        st = self.state
        track = st.orders.get(fill.client_id)
        if track is None:
            self._emit_at(now)("alert", result={"severity": "critical",
                                                "client_id": fill.client_id},
                               message=f"fill for unknown order {fill.client_id}; "
                                       "reconcile with the broker")
            return
        req = track.request
        charges = st.portfolio.apply_fill(fill, req)
        track.filled = fill.cum_qty
        if fill.cum_qty >= req.qty:
            st.finish(track, "COMPLETE")
        self._emit_at(now)("fill", scope=f"strategy:{req.strategy_id}",
                           result={"client_id": req.client_id, "side": req.side,
                                   "fill_id": fill.fill_id,
                                   "qty": fill.qty, "price": fill.price, "charges": charges,
                                   "symbol": req.contract.symbol, "purpose": req.purpose},
                           message=f"{req.side} {fill.qty} {req.contract.symbol} @ "
                                   f"{fill.price:.2f} ({req.purpose}, charges {charges:.2f})")
        run = st.runs.get(req.strategy_id)
        if run is not None and run.waiting and req.purpose == "entry":
            hedges_done = all(o.done for o in st.orders.values()
                              if o.request.strategy_id == req.strategy_id
                              and o.request.purpose == "entry" and o.request.side == "BUY")
            if hedges_done:
                waiting, run.waiting = run.waiting, []
                for planned in waiting:
                    self._submit(planned.request, now)
        self._check_flat(req.strategy_id, now)

    def _check_flat(self, strategy_id: str, now: datetime) -> None:
        st = self.state
        run = st.runs.get(strategy_id)
        if run is None or run.entry_ts is None:
            return
        if st.portfolio.open_legs(strategy_id) or self._busy(run):
            return
        pnl = st.portfolio.close_trade(strategy_id, now, run.exit_reason or "flat")
        self._emit_at(now)("signal", scope=f"strategy:{strategy_id}",
                           result={"trade_closed": True, "pnl": round(pnl, 2),
                                   "reason": run.exit_reason},
                           message=f"{strategy_id} flat; trade P&L {pnl:,.2f} after charges")
        run.entry_ts, run.best_pnl_pct, run.exit_reason = None, None, ""

    def _busy(self, run: StrategyRun) -> bool:
        return bool(run.waiting) or any(o.request.strategy_id == run.spec.id
                                        for o in self.state.live.values())

    # -- entries and exits ---------------------------------------------------------------------
    def _maybe_enter(self, run: StrategyRun, values: Values, now: datetime) -> None:
        st = self.state
        emit = self._emit_at(now)
        sig = entry_signal(run, st.portfolio, values, now, self._secs)
        if sig is None:
            run.edges.pop("entry", None)
            return
        if isinstance(sig, str):
            if run.edges.get("entry") != sig:
                self._edge(run, "entry", sig, now, inputs=run.spec.entry.inputs(values))
            return
        chain_state = self._gate_entry(run)
        if chain_state is not None:
            self._edge(run, "entry", "halted" if chain_state.state == TradingState.HALTED
                       else "reduce-only", now, inputs=sig.inputs,
                       extra={"rule_id": chain_state.rule_id, "why": chain_state.reason})
            return
        plan = plan_entry(run.spec, st.policy, st.market, now, self.capital, self.execution)
        if isinstance(plan, str):
            self._edge(run, "entry", plan, now, inputs=sig.inputs)
            return
        ctx = context_for(st, self.checks, now)
        for order in plan.orders:  # all legs must pass before any is sent
            code = check_order(order, ctx).code
            if code is not None:
                self._edge(run, "entry", code, now, inputs={"qty": order.qty,
                                                            "symbol": order.contract.symbol})
                return
        run.edges.pop("entry", None)
        st.portfolio.count_entry(run.spec.id, reentry=sig.reason == "reentry")
        run.entry_ts = now
        emit("signal", scope=f"strategy:{run.spec.id}", location=f"{run.spec.file}:"
             f"{run.spec.line}", inputs=sig.inputs,
             result={"signal": sig.reason, **plan.detail},
             message=f"{run.spec.id}: {sig.reason} — {plan.units} unit(s)")
        hedges = [o for o in plan.orders if o.side == "BUY"]
        first = hedges if hedges and len(hedges) < len(plan.orders) else list(plan.orders)
        run.waiting = [PlannedLeg(leg_id=o.leg_id, request=o) for o in plan.orders
                       if o not in first]
        for order in first:
            self._submit(order, now)

    def _gate_entry(self, run: StrategyRun) -> ScopeState | None:
        state = effective(self.state.scopes, scope_chain(run.spec.underlying, run.spec.id))
        return None if state.state == TradingState.ACTIVE else state

    def _edge(self, run: StrategyRun, key: str, code: str, now: datetime, *,
              inputs: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Record a refusal once per change of reason, not on every tick it persists."""
        if run.edges.get(key) == code:
            return
        run.edges[key] = code
        self._emit_at(now)("denied", scope=f"strategy:{run.spec.id}", inputs=inputs,
                           location=f"{run.spec.file}:{run.spec.line}",
                           result={"code": code, "signal": key, **(extra or {})},
                           message=f"{run.spec.id}: {key} refused ({code})")

    def _exit(self, run: StrategyRun, sig: Signal, now: datetime) -> None:
        run.exit_reason = sig.reason
        self._emit_at(now)("signal", scope=f"strategy:{run.spec.id}",
                           location=f"{run.spec.file}:{run.spec.line}", inputs=sig.inputs,
                           result={"signal": "exit", "reason": sig.reason, "legs": list(sig.legs)},
                           message=f"{run.spec.id}: exit {', '.join(sig.legs)} ({sig.reason})")
        if sig.reason in ("stop_loss", "trailing_stop"):
            self.state.portfolio.book(run.spec.id).last_exit_reason = sig.reason
        legs = {p.leg_id: p for p in self.state.portfolio.open_legs(run.spec.id)}
        if run.waiting:
            run.waiting = []
        for leg_id in sig.legs:
            if leg_id in legs:
                self._send_exit(legs[leg_id].qty, legs[leg_id].contract, run.spec.id, leg_id,
                                now, "exit")

    def _send_exit(self, qty: int, contract: Any, strategy_id: str, leg_id: str,
                   now: datetime, purpose: Purpose) -> None:
        st = self.state
        quote = st.market.quotes.get(contract)
        inst = st.policy.instruments.get(contract.underlying)
        if quote is None or inst is None:
            self._emit_at(now)("alert", scope=f"strategy:{strategy_id}",
                               result={"severity": "critical", "leg": leg_id},
                               message=f"cannot price exit of {contract.symbol}: no quote ever "
                                       "seen; exit by hand")
            return
        attempt = sum(1 for o in st.orders.values() if o.request.strategy_id == strategy_id
                      and o.request.leg_id == leg_id)
        self._submit(exit_order(qty, contract, quote, inst, self.execution,
                                strategy_id=strategy_id, leg_id=leg_id, now=now,
                                attempt=attempt, purpose=purpose), now)

    def _square_off(self, now: datetime) -> None:
        """Flatten every scope marked for square-off: short legs first, longs once shorts are
        flat, so hedges keep protecting (and margining) the book until the end."""
        st = self.state
        if not st.flatten:
            return
        for track in st.open_orders():
            req = track.request
            if req.purpose != "entry" and not track.cancel_sent and \
                    (now - track.sent_ts).total_seconds() >= self.execution.square_off_retry_s:
                track.cancel_sent = True
                st.cancels.append(req.client_id)
        pending = {(o.request.strategy_id, o.request.leg_id) for o in st.open_orders()}
        for scope in sorted(st.flatten):
            legs = [p for p in st.portfolio.open_legs()
                    if scope == "account" or scope == f"strategy:{p.strategy_id}"
                    or scope == f"underlying:{p.contract.underlying}"]
            shorts = [p for p in legs if p.qty < 0]
            for p in shorts or legs:
                if (p.strategy_id, p.leg_id) in pending:
                    continue
                run = st.runs.get(p.strategy_id)
                if run is not None:
                    run.exit_reason = run.exit_reason or "square_off"
                    run.waiting = []
                self._send_exit(p.qty, p.contract, p.strategy_id, p.leg_id, now, "square_off")
                pending.add((p.strategy_id, p.leg_id))

    def _cancel_stale_entries(self, now: datetime) -> None:
        st = self.state
        for track in st.open_orders():
            if track.request.purpose == "entry" and not track.cancel_sent and \
                    (now - track.sent_ts).total_seconds() >= self.execution.entry_timeout_s:
                track.cancel_sent = True
                st.cancels.append(track.request.client_id)

    def _submit(self, order: OrderRequest, now: datetime) -> None:
        """The one gateway before execution: trading state first, then the pre-trade check
        chain (which may slice an order above the freeze quantity into compliant children).
        Exits and square-offs pass both by construction; only broker validity applies."""
        st = self.state
        emit = self._emit_at(now)
        code, state = gateway(order, st.scopes)
        result = None
        if code is None:
            result = check_order(order, context_for(st, self.checks, now))
            code = result.code
        if code is not None:
            detail = result.denial.as_dict() if result is not None and result.denial else {}
            emit("denied", scope=f"strategy:{order.strategy_id}", rule_id=state.rule_id,
                 result={**detail, "code": code, "client_id": order.client_id,
                         "purpose": order.purpose},
                 message=f"{order.side} {order.qty} {order.contract.symbol} denied ({code})")
            return
        assert result is not None
        for child in result.orders:
            track = st.orders[child.client_id] = OrderTrack(request=child, sent_ts=now)
            st.live[child.client_id] = track
            st.orders_today += 1
            st.outbox.append(child)
            emit("order", scope=f"strategy:{child.strategy_id}",
                 result={"client_id": child.client_id, "side": child.side, "qty": child.qty,
                         "symbol": child.contract.symbol, "limit": child.limit_price,
                         "purpose": child.purpose, "leg": child.leg_id,
                         **({"parent": order.client_id} if child is not order else {}),
                         **({"review": result.review} if result.review else {}),
                         **({"notes": list(result.notes)} if result.notes else {})},
                 message=f"{child.purpose}: {child.side} {child.qty} "
                         f"{child.contract.symbol} limit {child.limit_price}")

    # -- days ----------------------------------------------------------------------------------
    def _new_day(self, now: datetime) -> None:
        st = self.state
        if st.day is not None:
            pf = st.portfolio
            self.capital += pf.realized - pf.charges
            pf.new_day()
            st.orders_today = 0
            st.peak_equity = self.capital
            rearm_all(st, frozenset({"next_session", "auto", "on_clean"}), "next session",
                      self._emit_at(now))
        st.day = now.date()

    def _emit_at(self, now: datetime) -> Emit:
        """The decision recorder for one tick's time, made once per tick."""
        cached = self._emit_cache
        if cached is not None and cached[0] == now:
            return cached[1]
        st = self.state

        def emit(kind: str, **fields: Any) -> Decision:
            st.seq += 1
            d = Decision(id=f"d{st.seq:08d}", ts=now, revision=st.policy.revision,
                         kind=kind, **fields)  # type: ignore[arg-type]
            st.decisions.append(d)
            return d

        self._emit_cache = (now, emit)
        return emit


def _execution_params(policy: PolicySet) -> ExecutionParams:
    docs = policy.of_kind("execution")
    if not docs:
        return ExecutionParams()
    d = docs[0]
    return ExecutionParams(protection_pct=float(d["protection_pct"]),
                           future_protection_pct=float(d["future_protection_pct"]),
                           protection_min_ticks=int(d["protection_min_ticks"]),
                           square_off_retry_s=parse_duration(d["square_off_retry"]),
                           entry_timeout_s=parse_duration(d["entry_timeout"]))


def _names_read(policy: PolicySet) -> frozenset[str]:
    """Every name some rule (condition, message, re-arm condition) or strategy (entry, exit)
    reads: the only readers of the values the engine builds."""
    names: set[str] = set()
    for rule in policy.rules:
        names.update(rule.when.names)
        names.update(rule.message.names)
        if rule.rearm_when is not None:
            names.update(rule.rearm_when.names)
    for spec in policy.strategies:
        names.update(spec.entry.names)
        names.update(spec.exit.names)
    return frozenset(names)


def _dq_params(policy: PolicySet) -> DQParams:
    docs = policy.of_kind("data_quality")
    return DQParams.from_policy(docs[0] if docs else None)
