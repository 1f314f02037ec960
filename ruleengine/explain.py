"""``ruleengine explain``: one decision, in words, with everything that led to it."""

from __future__ import annotations

import json

from .audit import AuditStore


def explain(store: AuditStore, decision_id: str, run_id: int | None = None) -> str:
    row = store.find_decision(decision_id, run_id)
    inputs = json.loads(row["inputs"])
    result = json.loads(row["result"])
    lines = [
        f"decision {row['id']} (run {row['run_id']}) at {row['ts']}",
        f"  what:     {row['kind']} in scope {row['scope']}",
        f"  message:  {row['message']}",
    ]
    if row["rule_id"]:
        lines.append(f"  rule:     {row['rule_id']}" + (f" ({row['location']})"
                                                         if row["location"] else ""))
    elif row["location"]:
        lines.append(f"  policy:   {row['location']}")
    if inputs:
        lines.append("  values read:")
        lines += [f"    {k} = {v}" for k, v in sorted(inputs.items())]
    if result:
        lines.append("  result:")
        lines += [f"    {k}: {v}" for k, v in sorted(result.items())]
    lines.append(f"  policy revision: {row['revision']}")
    lines.append(f"  chain hash: {row['hash'][:16]}… (previous {row['prev_hash'][:16]}…)")
    return "\n".join(lines)
