"""The hosted workspace as a transport: for a body with no case system of its own.

The case already lives in the hub, so "delivering" it is landing it in the body's back-office
inbox (the workspace reads the hub's own rows). `deliver` therefore only answers a receipt: the
transport accepted the case, the line becomes `sent`, and the body's own reference is not known
yet; the case reference stands in for it (`provisional=True`) until a staff member acknowledges
the case with the body's reference (through the hub's agency actions, the same inbound path as a
polled status). A consumer's reply lands the same way: the message is in the hub already, the
workspace shows it. Nothing is polled: the staff's actions are the updates.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from adapters.base import DELIVER, MESSAGES, Adapter, Health, Outbound, OutboundMessage, Receipt


class WorkspaceConfig(Schema):
    inbox = fields.String(
        load_default="back office",
        metadata={"doc": "where the body's staff find the cases: the hub's /admin/agency pages"},
    )


class WorkspaceAdapter(Adapter):
    kind = "workspace"
    config_schema = WorkspaceConfig
    declared_capabilities = frozenset({DELIVER, MESSAGES})
    max_concurrency = 8  # nothing leaves the process

    def deliver(self, item: Outbound) -> Receipt:
        """In the body's inbox: the case reference stands in until staff acknowledge it."""
        return Receipt(
            agency_reference=item.case_reference,
            provisional=True,
            raw={"inbox": self.config["inbox"], "idempotency_key": item.idempotency_key},
        )

    def send_message(self, item: OutboundMessage) -> Receipt:
        """The consumer's reply is on the case in the hub; the workspace shows it."""
        return Receipt(
            agency_reference=item.agency_reference,
            raw={"inbox": self.config["inbox"], "idempotency_key": item.idempotency_key},
        )

    def check(self) -> Health:
        return Health(True, "hosted workspace: cases land in the body's back-office inbox", 0.0)
