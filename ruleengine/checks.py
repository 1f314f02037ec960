"""Stage 7 — pre-trade checks: each returns a reason code, or None when the order may go.

Checks never raise and never block an order that reduces risk: exits and square-offs only have
to be valid for the broker. The trading-state gateway is the first check, so a halt is enforced
in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from .contracts import OrderRequest
from .instruments import Instrument
from .tradingstate import ScopeState, allows, effective, scope_chain


def gateway(order: OrderRequest, scopes: dict[str, ScopeState]) -> tuple[str | None, ScopeState]:
    chain = scope_chain(order.contract.underlying, order.strategy_id)
    state = effective(scopes, chain)
    if allows(state.state, reduces_risk=order.purpose != "entry"):
        return None, state
    return ("halted" if state.state.name == "HALTED" else "reduce-only"), state


def order_limits(order: OrderRequest, inst: Instrument | None,
                 limits: Mapping[str, Mapping[str, int]], day: date) -> str | None:
    if order.purpose != "entry":
        return None
    if inst is None:
        return "unknown-instrument"
    lot = inst.lot_size(day)
    if order.qty <= 0 or order.qty % lot:
        return "not-lot-multiple"
    lim = limits.get(order.contract.underlying, {})
    if "max_lots" in lim and order.qty // lot > lim["max_lots"]:
        return "max-lots"
    if "max_qty" in lim and order.qty > lim["max_qty"]:
        return "max-qty"
    return None
