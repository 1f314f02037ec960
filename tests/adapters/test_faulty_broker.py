"""The fault-injecting broker wrapper: faults as specified, seeded, and never a lost fill."""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import date, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest

from adapters.brokers.faulty import (
    DEFAULT_SPEC,
    FaultSpec,
    FaultyBroker,
    faulty_broker,
    wrap_broker,
)
from adapters.brokers.paper import PaperBroker, PaperConfig
from ruleengine.contracts import Broker, OrderRequest
from ruleengine.errors import (
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    ConfigError,
)
from ruleengine.events import (
    BrokerEvent,
    Contract,
    IndexTick,
    OrderAccepted,
    OrderFilled,
    Quote,
)
from ruleengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 10, 10, 0, 0)
CE = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 3, 17), strike=24000.0,
              option_type="CE")


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def paper() -> PaperBroker:
    b = PaperBroker(PaperConfig.from_policy({"latency_ticks": 0}), seed=3, capital=1e9)
    b.on_market(IndexTick(ts=t(0), underlying="NIFTY", value=24000.0))
    b.on_market(Quote(ts=t(0), contract=CE, ltp=100.0, bid=99.5, ask=100.5, bid_qty=50,
                      ask_qty=50))
    return b


def req(cid: str, qty: int = 65) -> OrderRequest:
    return OrderRequest(client_id=cid, contract=CE, side="BUY", qty=qty, order_type="LIMIT",
                        limit_price=101.0, purpose="entry", strategy_id="s", leg_id="l")


def test_spec_parses_text_yaml_and_files(tmp_path: Path) -> None:
    spec = FaultSpec.parse("ratelimit=0.1,timeout=0.05,reject=0.02,dup=0.05,reorder=0.05")
    assert (spec.ratelimit, spec.timeout, spec.reject, spec.dup, spec.reorder) == \
        (0.1, 0.05, 0.02, 0.05, 0.05)
    assert FaultSpec.parse("{lost: 0.2, seed: 9}") == FaultSpec(lost=0.2, seed=9)
    path = tmp_path / "faults.yaml"
    path.write_text("partial: 0.3\nlookupfail: 0.1\n", encoding="utf-8")
    assert FaultSpec.parse(str(path)) == FaultSpec(partial=0.3, lookupfail=0.1)
    assert FaultSpec.parse("") == FaultSpec()
    assert FaultSpec.parse(DEFAULT_SPEC).lost > 0


@pytest.mark.parametrize(("text", "message"), [
    ("ratelimt=0.1", "did you mean 'ratelimit'"),
    ("timeout=2", "within 0..1"),
    ("dup", "name=probability"),
    ("dup=lots", "not a number"),
    ("- 1\n- 2", "must be name=probability pairs or a mapping"),
])
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FaultSpec.parse(text)


def test_is_a_broker_with_the_inner_name_and_extras() -> None:
    inner = paper()
    wrapped = FaultyBroker(inner, FaultSpec(), seed=1)
    assert isinstance(wrapped, Broker)
    assert wrapped.name == "paper"
    assert wrapped.cash == inner.cash  # reporting extras reach the paper broker


def test_without_faults_it_is_transparent() -> None:
    inner = paper()
    wrapped = FaultyBroker(inner, FaultSpec(), seed=1)
    wrapped.place(req("a"), t(1))
    events = wrapped.poll(t(1))
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert isinstance(events[1], OrderFilled) and events[1].qty == 50  # the displayed depth
    assert wrapped.injected == {}
    assert wrapped.forwarded == ["a"] and [c.method for c in wrapped.calls] == ["place"]


def test_each_failure_mode_does_what_it_says() -> None:
    inner = paper()
    with pytest.raises(BrokerRateLimited):
        FaultyBroker(inner, FaultSpec(ratelimit=1.0)).place(req("r"), t(1))
    with pytest.raises(BrokerTimeout):
        FaultyBroker(inner, FaultSpec(lost=1.0)).place(req("l"), t(1))
    with pytest.raises(BrokerRejected):
        FaultyBroker(inner, FaultSpec(reject=1.0)).place(req("j"), t(1))
    assert inner.orders_by_tag("r") == inner.orders_by_tag("l") == inner.orders_by_tag("j") == []
    timeout = FaultyBroker(inner, FaultSpec(timeout=1.0))
    with pytest.raises(BrokerTimeout):
        timeout.place(req("t"), t(1))
    assert inner.orders_by_tag("t")[0].client_id == "t"  # the broker did take it
    with pytest.raises(BrokerTimeout):
        FaultyBroker(inner, FaultSpec(lookupfail=1.0)).orders_by_tag("t")


def test_garbled_updates_lose_no_quantity() -> None:
    inner = PaperBroker(PaperConfig.from_policy({"latency_ticks": 0}), seed=3, capital=1e9)
    wrapped = FaultyBroker(inner, FaultSpec(partial=0.5, dup=0.3, reorder=0.3), seed=11)
    wrapped.on_market(IndexTick(ts=t(0), underlying="NIFTY", value=24000.0))
    seen: list[BrokerEvent] = []
    for i in range(40):
        wrapped.on_market(Quote(ts=t(i), contract=CE, ltp=100.0, bid=99.5, ask=100.5,
                                bid_qty=40, ask_qty=40))
        if i < 20:
            wrapped.place(req(f"o{i:02d}", qty=130), t(i))
        seen += wrapped.poll(t(i))
    seen += wrapped.poll(t(41))
    assert wrapped.pending_events == 0
    fills = {e.fill_id: e for e in seen if isinstance(e, OrderFilled)}  # duplicates collapse
    assert sum(f.qty for f in fills.values()) == sum(p.qty for p in inner.positions())
    assert any(f.fill_id.endswith(("a", "b")) for f in fills.values())  # some were split
    counts = Counter(type(e).__name__ for e in seen)
    assert counts["OrderAccepted"] > 20  # some were delivered twice
    accepted = list(dict.fromkeys(e.client_id for e in seen if isinstance(e, OrderAccepted)))
    assert accepted != sorted(accepted)  # some arrived after later orders' updates
    assert {"partial", "dup", "reorder"} <= set(wrapped.injected)


def test_same_seed_same_faults() -> None:
    def run(seed: int) -> list[str]:
        wrapped = FaultyBroker(paper(), FaultSpec.parse("ratelimit=0.3,lost=0.3,timeout=0.3"),
                               seed=seed)
        out = []
        for i in range(30):
            try:
                wrapped.place(req(f"s{i:02d}"), t(1))
                out.append("ok")
            except BrokerError as exc:
                out.append(type(exc).__name__)
        return out

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_builders_and_entry_points() -> None:
    policy = load_policy_set([ROOT / "policies"])
    built = faulty_broker(policy=policy, seed=1, capital=1e6, faults="dup=0.5")
    assert isinstance(built, FaultyBroker) and built.spec.dup == 0.5
    assert isinstance(built.inner, PaperBroker)
    wrapped = wrap_broker(inner=paper(), spec="reorder=0.2", seed=2)
    assert isinstance(wrapped, FaultyBroker) and wrapped.spec.reorder == 0.2
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    points = project["entry-points"]
    for group, name in (("ruleengine.brokers", "faulty"),
                        ("ruleengine.broker_wrappers", "faulty")):
        module, _, attr = points[group][name].partition(":")
        assert callable(getattr(import_module(module), attr))
