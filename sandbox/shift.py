"""A scripted operator shift on the Next Plus floor, as data, and the function that plays it.

`script_shift(workorders, seed)` returns a deterministic list of `Action`s over the work orders:
set the main serial, attach components (serial-managed, quantity-only, and a sub-assembly with its
own work order), report operations with valid and invalid quantities, undo a report, detach an
item, change a serial and remove one. `play_shift(builder, workorders, actions)` sends them through
an `IntegrationBuilder` and returns a `ShiftSummary`.

    actions = script_shift(workorders, seed=7)
    summary = await play_shift(builder, workorders, actions)
    summary.sent, summary.succeeded, summary.failures  # failures: action + message shown
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.base import seeded
from sandbox.emitter import Delivery, IntegrationBuilder, IntegrationStateError

__all__ = ["ACTION_KINDS", "Action", "ShiftSummary", "play_shift", "script_shift"]

ACTION_KINDS = (
    "set_serial",
    "change_serial",
    "remove_serial",
    "attach_item",
    "detach_item",
    "report_operation",
    "undo_report",
)


@dataclass(frozen=True)
class Action:
    """One operator action: `kind` from ACTION_KINDS, the work order number and its parameters."""

    kind: str
    workorder: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "workorder": self.workorder, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        if data["kind"] not in ACTION_KINDS:
            raise ValueError(f"unknown action {data['kind']!r}; valid: {', '.join(ACTION_KINDS)}")
        return cls(data["kind"], data["workorder"], dict(data.get("params") or {}))


@dataclass
class ShiftSummary:
    """What a shift did: events sent, their outcomes, and the failures as the operator saw them."""

    actions: int = 0
    sent: int = 0
    succeeded: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deliveries"] = [d.to_dict() for d in self.deliveries]
        return data


def _script_one(wo: dict[str, Any], by_sku: dict[str, str], rng: Any) -> list[Action]:
    number = wo["workorderNumber"]
    acts: list[Action] = []
    serials = [s["serial"] for s in wo.get("generatedSerials") or [] if s.get("serial")]
    if serials:
        acts.append(Action("set_serial", number, {"serial": serials[0]}))
    attached: list[dict[str, Any]] = []
    for kit in wo.get("kitItems") or []:
        params: dict[str, Any] = {"sku": kit["sku"]}
        kit_serials = [s["serial"] for s in kit.get("serials") or [] if s.get("serial")]
        if kit_serials:
            params.update(quantity=1, serial=kit_serials[0])
        else:
            params["quantity"] = rng.randint(1, max(1, int(kit.get("quantity") or 1)))
        if kit["sku"] in by_sku:
            params["workorderNumber"] = by_sku[kit["sku"]]
        acts.append(Action("attach_item", number, params))
        attached.append(params)
    steps = sorted(wo.get("_actions") or [], key=lambda a: a.get("position") or 0)
    for step in steps:
        invalid = 1 if rng.random() < 0.3 else 0
        valid = max(0, int(wo.get("quantity") or 1) - invalid)
        acts.append(
            Action(
                "report_operation",
                number,
                {"actCode": step["actCode"], "validQty": valid, "invalidQty": invalid},
            )
        )
    if steps and rng.random() < 0.5:
        last = steps[-1]["actCode"]
        acts.append(Action("undo_report", number, {"actCode": last}))
        acts.append(
            Action(
                "report_operation",
                number,
                {"actCode": last, "validQty": int(wo.get("quantity") or 1), "invalidQty": 0},
            )
        )
    if attached and rng.random() < 0.5:
        victim = rng.choice(attached)
        acts.append(Action("detach_item", number, {k: victim[k] for k in ("sku", "serial") if k in victim}))
    if serials and rng.random() < 0.5:
        acts.append(Action("change_serial", number, {"serial": serials[0] + "-R"}))
    return acts


def _ensure(acts: list[Action], kind: str, make: Any) -> None:
    if not any(a.kind == kind for a in acts):
        extra = make()
        if extra is not None:
            acts.append(extra)


def script_shift(workorders: list[dict[str, Any]], seed: int) -> list[Action]:
    """A deterministic shift over these work orders; every action kind appears when the data allows."""
    rng = seeded(seed, "shift")
    by_sku = {w["sku"]: w["workorderNumber"] for w in workorders}
    ordered = sorted(workorders, key=lambda w: w["workorderNumber"])
    acts: list[Action] = []
    for wo in ordered:
        acts.extend(_script_one(wo, by_sku, rng))
    with_serial = [w for w in ordered if w.get("generatedSerials")]
    with_steps = [w for w in ordered if w.get("_actions")]
    with_kit = [w for w in ordered if w.get("kitItems")]
    if with_steps:
        wo = with_steps[0]
        _ensure(
            acts,
            "undo_report",
            lambda: Action("undo_report", wo["workorderNumber"], {"actCode": wo["_actions"][-1]["actCode"]}),
        )
    if with_kit:
        wo = with_kit[0]
        kit = wo["kitItems"][0]
        serial = next((s["serial"] for s in kit.get("serials") or [] if s.get("serial")), None)
        params = {"sku": kit["sku"], **({"serial": serial} if serial else {})}
        _ensure(acts, "detach_item", lambda: Action("detach_item", wo["workorderNumber"], params))
    if with_serial:
        first, last = with_serial[0], with_serial[-1]
        _ensure(
            acts,
            "change_serial",
            lambda: Action(
                "change_serial",
                first["workorderNumber"],
                {"serial": first["generatedSerials"][0]["serial"] + "-R"},
            ),
        )
        acts.append(Action("remove_serial", last["workorderNumber"]))
    return acts


async def _run(builder: IntegrationBuilder, wo: dict[str, Any], action: Action) -> Delivery | None:
    p = action.params
    if action.kind == "set_serial":
        return await builder.set_serial(wo, p["serial"])
    if action.kind == "change_serial":
        return await builder.change_serial(wo, p["serial"])
    if action.kind == "remove_serial":
        return await builder.remove_serial(wo)
    if action.kind == "attach_item":
        return await builder.attach_item(
            wo, p["sku"], p["quantity"], serial=p.get("serial"), workorder_number=p.get("workorderNumber")
        )
    if action.kind == "detach_item":
        return await builder.detach_item(wo, p["sku"], serial=p.get("serial"))
    if action.kind == "report_operation":
        return await builder.report_operation(wo, p["actCode"], p["validQty"], p.get("invalidQty", 0))
    if action.kind == "undo_report":
        return await builder.undo_report(wo, p["actCode"])
    raise ValueError(f"unknown action {action.kind!r}; valid: {', '.join(ACTION_KINDS)}")


async def play_shift(
    builder: IntegrationBuilder,
    workorders: list[dict[str, Any]],
    actions: list[Action],
) -> ShiftSummary:
    """Plays the actions in order; an action refused by the ERP leaves the MES state unchanged."""
    by_number = {w["workorderNumber"]: w for w in workorders}
    summary = ShiftSummary(actions=len(actions))
    for action in actions:
        wo = by_number.get(action.workorder)
        if wo is None:
            summary.refused.append({"action": action.to_dict(), "reason": "unknown work order"})
            continue
        try:
            delivery = await _run(builder, wo, action)
        except IntegrationStateError as exc:
            summary.refused.append({"action": action.to_dict(), "reason": str(exc)})
            continue
        if delivery is None:
            summary.skipped += 1
            continue
        summary.sent += 1
        summary.deliveries.append(delivery)
        if delivery.ok:
            summary.succeeded += 1
        else:
            summary.failures.append(
                {"action": action.to_dict(), "status": delivery.status, "message": delivery.message}
            )
    return summary
