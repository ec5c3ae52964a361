"""The Next Plus Integration Builder: posts Device/Serial, Item Attach and Operation events (seed 001).

An `IntegrationBuilder` is configured like the MES screen: one work-order `source` and one URL per
event kind (`device`, `item_attach`, `operation`; a kind without a URL is disabled). Each operator
action on a work order of that source becomes one POST; the reply is judged as the MES does
(status < 400 success with an optional `{"externalId"}` kept and sent back in later update/remove
events; >= 400 failure, its `{"message"}` shown to the operator).

    builder = IntegrationBuilder(source="ERP", urls={"device": url1, "item_attach": url2,
                                                     "operation": url3})
    delivery = await builder.set_serial(workorder, "SN-1")   # None when skipped
    delivery.ok, delivery.status, delivery.message, delivery.external_id
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from sandbox.base import seeded

__all__ = ["EVENT_KINDS", "Delivery", "IntegrationBuilder", "IntegrationStateError"]

EVENT_KINDS = ("device", "item_attach", "operation")
# ASSUMPTION: the MES's own text when the ERP side fails without a `message` (the vendor shows none).
GENERIC_FAILURE = "Integration failed (HTTP {status})"
UNREACHABLE = "Integration failed: {error}"


class IntegrationStateError(LookupError):
    """The operator action does not fit the work order's state (e.g. no serial to remove)."""


@dataclass
class Delivery:
    """One POST of the Integration Builder and how the MES judged its reply."""

    kind: str
    type: str
    workorder_number: str
    url: str
    payload: dict[str, Any]
    status: int | None = None
    body: Any = None
    ok: bool = False
    message: str | None = None
    external_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Device:
    stock_id: str
    serial: str | None = None
    external_id: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


class IntegrationBuilder:
    """Integration Builder settings plus the per-work-order memory of external ids."""

    def __init__(
        self,
        *,
        source: str,
        urls: dict[str, str],
        seed: int = 0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        unknown = set(urls) - set(EVENT_KINDS)
        if unknown:
            raise ValueError(f"unknown event kind(s) {sorted(unknown)}; valid: {', '.join(EVENT_KINDS)}")
        self.source, self.urls = source, dict(urls)
        # ASSUMPTION: the vendor does not document timeout or retries; one attempt, 10 s timeout.
        self.timeout = timeout
        self._transport = transport
        self._rng = seeded(seed, "integration-builder")
        self.session_id = self._uuid()
        self.devices: dict[str, _Device] = {}
        self.deliveries: list[Delivery] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def snapshot(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "urls": self.urls,
            "sessionId": self.session_id,
            "devices": {k: asdict(v) for k, v in self.devices.items()},
            "deliveries": [d.to_dict() for d in self.deliveries],
        }

    # -- plumbing -------------------------------------------------------------------------------
    def applies(self, workorder: dict[str, Any], kind: str) -> bool:
        """Only work orders of the configured source, and only enabled kinds, are integrated."""
        return workorder.get("source") == self.source and bool(self.urls.get(kind))

    def _device(self, wo: dict[str, Any]) -> _Device:
        number = wo["workorderNumber"]
        if number not in self.devices:
            self.devices[number] = _Device(stock_id=self._uuid())
        return self.devices[number]

    def _ids(self, wo: dict[str, Any], device: _Device) -> dict[str, Any]:
        return {
            "workorderId": wo.get("id"),
            "stockId": device.stock_id,
            "sessionId": self.session_id,
            "workorderExternalId": wo.get("externalId") or None,
        }

    async def _post(self, kind: str, wo: dict[str, Any], payload: dict[str, Any]) -> Delivery:
        url = self.urls[kind]
        delivery = Delivery(kind, payload["type"], wo["workorderNumber"], url, payload)
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout) as client:
                reply = await client.post(url, json=payload)
        except httpx.HTTPError as exc:
            delivery.message = UNREACHABLE.format(error=str(exc) or type(exc).__name__)
            self.deliveries.append(delivery)
            return delivery
        delivery.status = reply.status_code
        try:
            delivery.body = reply.json()
        except ValueError:
            delivery.body = reply.text or None
        body = delivery.body if isinstance(delivery.body, dict) else {}
        delivery.ok = reply.status_code < 400
        if delivery.ok:
            ext = body.get("externalId")
            delivery.external_id = None if ext is None else str(ext)
        else:
            message = body.get("message")
            delivery.message = (
                message
                if isinstance(message, str) and message
                else (GENERIC_FAILURE.format(status=reply.status_code))
            )
        self.deliveries.append(delivery)
        return delivery

    # -- Device/Serial --------------------------------------------------------------------------
    async def set_serial(self, wo: dict[str, Any], serial: str) -> Delivery | None:
        """type "add": the operator sets the main serial."""
        device = self._device(wo)
        if device.serial is not None:
            raise IntegrationStateError(f"{wo['workorderNumber']} already has serial {device.serial}")
        if not self.applies(wo, "device"):
            device.serial = serial
            return None
        payload = {
            "type": "add",
            "workorderNumber": wo["workorderNumber"],
            "sku": wo["sku"],
            "serial": serial,
            **self._ids(wo, device),
        }
        delivery = await self._post("device", wo, payload)
        # ASSUMPTION: a failed integration refuses the operator's action; the MES state is unchanged.
        if delivery.ok:
            device.serial, device.external_id = serial, delivery.external_id
        return delivery

    async def change_serial(self, wo: dict[str, Any], serial: str) -> Delivery | None:
        """type "update": old serial, new serial and the device's externalId."""
        device = self._device(wo)
        if device.serial is None:
            raise IntegrationStateError(f"{wo['workorderNumber']} has no serial to change")
        if not self.applies(wo, "device"):
            device.serial = serial
            return None
        payload = {
            "type": "update",
            "workorderNumber": wo["workorderNumber"],
            "sku": wo["sku"],
            "serial": serial,
            "oldSerial": device.serial,
            "externalId": device.external_id,
            **self._ids(wo, device),
        }
        delivery = await self._post("device", wo, payload)
        if delivery.ok:
            device.serial = serial
            if delivery.external_id is not None:
                device.external_id = delivery.external_id
        return delivery

    async def remove_serial(self, wo: dict[str, Any]) -> Delivery | None:
        """type "remove": the serial and the externalId received when it was added."""
        device = self._device(wo)
        if device.serial is None:
            raise IntegrationStateError(f"{wo['workorderNumber']} has no serial to remove")
        if not self.applies(wo, "device"):
            device.serial = None
            return None
        payload = {
            "type": "remove",
            "workorderNumber": wo["workorderNumber"],
            "sku": wo["sku"],
            "serial": device.serial,
            "externalId": device.external_id,
            **self._ids(wo, device),
        }
        delivery = await self._post("device", wo, payload)
        if delivery.ok:
            device.serial = device.external_id = None
        return delivery

    # -- Item Attach ----------------------------------------------------------------------------
    def _item_payload(
        self,
        wo: dict[str, Any],
        device: _Device,
        type_: str,
        item: dict[str, Any],
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": type_, "workorderNumber": wo["workorderNumber"], "sku": wo["sku"]}
        if device.serial is not None:
            payload["serial"] = device.serial
        payload["externalId"] = device.external_id
        payload["item"] = item
        payload.update(self._ids(wo, device))
        return payload

    async def attach_item(
        self,
        wo: dict[str, Any],
        sku: str,
        quantity: float,
        *,
        serial: str | None = None,
        workorder_number: str | None = None,
    ) -> Delivery | None:
        """type "add": a component attached under the device (serial-managed or by quantity)."""
        device = self._device(wo)
        item: dict[str, Any] = {"sku": sku, "quantity": quantity}
        if serial is not None:
            item["serial"] = serial
        if workorder_number is not None:
            item["workorderNumber"] = workorder_number
        if not self.applies(wo, "item_attach"):
            device.items.append({**item, "externalId": None})
            return None
        delivery = await self._post("item_attach", wo, self._item_payload(wo, device, "add", item))
        if delivery.ok:
            device.items.append({**item, "externalId": delivery.external_id})
        return delivery

    async def detach_item(
        self,
        wo: dict[str, Any],
        sku: str,
        *,
        serial: str | None = None,
    ) -> Delivery | None:
        """type "remove": sends back the item's externalId only when the attach reply gave one."""
        device = self._device(wo)
        found = next(
            (i for i in device.items if i["sku"] == sku and (serial is None or i.get("serial") == serial)),
            None,
        )
        if found is None:
            raise IntegrationStateError(f"{wo['workorderNumber']} has no attached {sku}")
        if not self.applies(wo, "item_attach"):
            device.items.remove(found)
            return None
        item = {k: v for k, v in found.items() if k != "externalId"}
        if found["externalId"] is not None:
            item["externalId"] = found["externalId"]
        delivery = await self._post("item_attach", wo, self._item_payload(wo, device, "remove", item))
        if delivery.ok:
            device.items.remove(found)
        return delivery

    # -- Operation ------------------------------------------------------------------------------
    def _op_payload(
        self,
        wo: dict[str, Any],
        device: _Device,
        type_: str,
        report: dict[str, Any],
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": type_, "sku": wo["sku"]}
        if device.serial is not None:
            payload["serial"] = device.serial
        payload["workorderNumber"] = wo["workorderNumber"]
        if type_ == "remove":
            payload["externalId"] = report["externalId"]
        for key in ("actCode", "workCenterCode", "position", "validQty", "invalidQty"):
            payload[key] = report[key]
        payload.update(self._ids(wo, device))
        payload["operationExternalId"] = report["operationExternalId"]
        return payload

    async def report_operation(
        self,
        wo: dict[str, Any],
        act_code: str,
        valid_qty: float,
        invalid_qty: float = 0,
    ) -> Delivery | None:
        """type "add": a report on a routing step with valid and invalid quantities."""
        device = self._device(wo)
        step = next((a for a in wo.get("_actions") or [] if a.get("actCode") == act_code), None)
        if step is None:
            raise IntegrationStateError(f"{wo['workorderNumber']} has no operation {act_code}")
        other = step.get("otherId")
        report = {
            "actCode": act_code,
            "workCenterCode": step.get("workCenterCode"),
            "position": step.get("position"),
            "validQty": valid_qty,
            "invalidQty": invalid_qty,
            # ASSUMPTION: operationExternalId is the routing step's `otherId` from the ERP (seed 000
            # `_actions[].otherId`) as a string, null when unset.
            "operationExternalId": str(other) if other not in (None, "", 0) else None,
            "externalId": None,
        }
        if not self.applies(wo, "operation"):
            device.reports.append(report)
            return None
        delivery = await self._post("operation", wo, self._op_payload(wo, device, "add", report))
        if delivery.ok:
            device.reports.append({**report, "externalId": delivery.external_id})
        return delivery

    async def undo_report(self, wo: dict[str, Any], act_code: str) -> Delivery | None:
        """type "remove": withdraws the latest report on that operation, with its externalId."""
        device = self._device(wo)
        report = next((r for r in reversed(device.reports) if r["actCode"] == act_code), None)
        if report is None:
            raise IntegrationStateError(f"{wo['workorderNumber']} has no report on {act_code}")
        if not self.applies(wo, "operation"):
            device.reports.remove(report)
            return None
        delivery = await self._post("operation", wo, self._op_payload(wo, device, "remove", report))
        if delivery.ok:
            device.reports.remove(report)
        return delivery
