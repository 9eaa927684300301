"""The adapter conformance suite, in the spirit of SQLAlchemy's dialect suite and fsspec's
abstract tests: subclass it, supply three fixtures, inherit every test.

    from adapters.testing import AdapterConformance

    class TestFaxAdapter(AdapterConformance):
        @pytest.fixture
        def adapter(self, fax_server):      # configured against a live peer
            return FaxAdapter({...})

        @pytest.fixture
        def broken_adapter(self):           # misconfigured: wrong host, key or password
            return FaxAdapter({...})

        @pytest.fixture
        def peer(self, fax_server):         # an adapters.testing.Peer for that server
            return FaxPeer(fax_server)

A test that does not apply is skipped naming the capability the adapter (or peer) lacks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from marshmallow import Schema

from adapters.base import (
    ATTACHMENTS,
    DELIVER,
    MESSAGES,
    POLL,
    POLL_CHANGES,
    POLL_PER_ITEM,
    Adapter,
    AdapterError,
    Attachment,
    Health,
    OpenItem,
    Outbound,
    OutboundMessage,
    PermanentError,
    PollResult,
    Receipt,
    StatusUpdate,
    TransientError,
    secret_fields,
)
from adapters.testing.peer import FAULTS, Peer
from adapters.testing.peer import MESSAGES as PEER_MESSAGES

KNOWN_CAPABILITIES = frozenset({DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM, ATTACHMENTS, MESSAGES})


def require(adapter: Adapter, capability: str) -> None:
    if capability not in adapter.capabilities:
        pytest.skip(f"adapter kind {adapter.kind!r} does not declare capability {capability!r}")


def require_peer(peer: Peer, capability: str) -> None:
    if capability not in peer.capabilities:
        pytest.skip(f"the peer for this adapter does not offer capability {capability!r}")


def new_reference() -> str:
    body = uuid.uuid4().hex.upper()
    return f"LK-{body[:4]}-{body[4:8]}"


def outbound(peer: Peer, key: str | None = None, reference: str | None = None) -> Outbound:
    reference = reference or new_reference()
    return Outbound(
        idempotency_key=key or f"{reference}.conformance.1",
        case_reference=reference,
        agency_id="conformance",
        payload=peer.payload(reference),
        language="nl",
    )


def poll_until_quiet(
    adapter: Adapter, cursor: str | None, items: Sequence[OpenItem], rounds: int = 5
) -> tuple[list[StatusUpdate], str | None, list[OpenItem]]:
    """Poll until a round brings nothing new, as the worker would: feeding back the cursor and
    each open item's latest status. Returns the updates seen, the cursor and the open items."""
    seen: list[StatusUpdate] = []
    current = {i.agency_reference: i for i in items}
    for _ in range(rounds):
        result = adapter.poll(cursor, list(current.values()))
        assert isinstance(result, PollResult)
        cursor = result.cursor
        if not result.updates:
            return seen, cursor, list(current.values())
        seen.extend(result.updates)
        for u in result.updates:
            for ref, old in current.items():
                if u.agency_reference == ref or u.case_reference == old.case_reference:
                    current[ref] = OpenItem(
                        old.agency_reference,
                        old.case_reference,
                        old.idempotency_key,
                        u.agency_status,
                    )
    raise AssertionError(f"poll kept returning updates after {rounds} rounds: not resumable")


class AdapterConformance:
    """Every test an adapter must pass. Fixtures: `adapter`, `broken_adapter`, `peer`."""

    # ------------------------------------------------------------------------- declaration

    def test_declares_kind_config_schema_and_capabilities(self, adapter: Adapter):
        assert isinstance(adapter.kind, str) and adapter.kind
        assert issubclass(adapter.config_schema, Schema)
        assert adapter.capabilities <= KNOWN_CAPABILITIES, adapter.capabilities - KNOWN_CAPABILITIES
        assert DELIVER in adapter.capabilities

    def test_secret_settings_never_show(self, adapter: Adapter):
        secrets = [f for f in secret_fields(adapter.config_schema) if adapter.config.get(f)]
        if not secrets:
            pytest.skip(f"adapter kind {adapter.kind!r} is configured without any secret here")
        masked = adapter.masked_config()
        for name in secrets:
            assert masked[name] == "***"
            assert str(adapter.config[name]) not in repr(adapter)

    # ------------------------------------------------------------------------------- check

    def test_check_passes_with_a_good_configuration(self, adapter: Adapter):
        health = adapter.check()
        assert isinstance(health, Health)
        assert health.ok, health.message

    def test_check_fails_with_a_bad_configuration_and_says_why(self, broken_adapter: Adapter):
        health = broken_adapter.check()
        assert isinstance(health, Health)
        assert not health.ok
        assert health.message

    # ----------------------------------------------------------------------------- deliver

    def test_deliver_returns_the_agency_reference(self, adapter: Adapter, peer: Peer):
        require(adapter, DELIVER)
        before = peer.case_count()
        receipt = adapter.deliver(outbound(peer))
        assert isinstance(receipt, Receipt)
        assert receipt.agency_reference
        assert not receipt.duplicate
        assert peer.case_count() == before + 1

    def test_a_repeat_with_the_same_idempotency_key_creates_nothing_new(
        self, adapter: Adapter, peer: Peer
    ):
        require(adapter, DELIVER)
        item = outbound(peer)
        first = adapter.deliver(item)
        count = peer.case_count()
        again = adapter.deliver(item)
        assert peer.case_count() == count
        assert again.agency_reference == first.agency_reference

    def test_different_keys_make_different_cases(self, adapter: Adapter, peer: Peer):
        require(adapter, DELIVER)
        a = adapter.deliver(outbound(peer))
        b = adapter.deliver(outbound(peer))
        assert a.agency_reference != b.agency_reference

    # -------------------------------------------------------------------------------- poll

    def test_poll_returns_the_peers_changes_and_a_cursor_that_resumes(
        self, adapter: Adapter, peer: Peer
    ):
        require(adapter, POLL)
        item = outbound(peer)
        receipt = adapter.deliver(item)
        ref = receipt.agency_reference
        start = [OpenItem(ref, item.case_reference, item.idempotency_key)]
        _, cursor, items = poll_until_quiet(adapter, None, start)
        code = peer.advance(ref)
        updates, cursor, items = poll_until_quiet(adapter, cursor, items)
        mine = [u for u in updates if _names(u, ref, item.case_reference)]
        assert [u.agency_status for u in mine] == [code], updates
        assert mine[0].occurred_at.tzinfo is not None
        # resuming from the cursor does not bring that change back
        again = adapter.poll(cursor, items)
        assert not [u for u in again.updates if _names(u, ref, item.case_reference)]

    def test_a_cursor_that_moved_on_is_never_called_behind(self, adapter: Adapter, peer: Peer):
        """`cursor_behind` raises a feed alert and a full re-read in the hub: the adapter's own
        cursors, as a feed moves on, must never read as going back."""
        require(adapter, POLL)
        item = outbound(peer)
        ref = adapter.deliver(item).agency_reference
        start = [OpenItem(ref, item.case_reference, item.idempotency_key)]
        _, first, items = poll_until_quiet(adapter, None, start)
        peer.advance(ref)
        _, second, _ = poll_until_quiet(adapter, first, items)
        for stored, returned in ((first, second), (second, second)):
            if stored is not None and returned is not None:
                assert not adapter.cursor_behind(stored, returned), (stored, returned)

    # ---------------------------------------------------------------------------- messages

    def test_a_reply_reaches_the_agency_once_with_its_attachment(
        self, adapter: Adapter, peer: Peer
    ):
        require(adapter, MESSAGES)
        require_peer(peer, PEER_MESSAGES)
        item = outbound(peer)
        receipt = adapter.deliver(item)
        reply = OutboundMessage(
            idempotency_key=f"{item.case_reference}.conformance.msg1",
            case_reference=item.case_reference,
            agency_id=item.agency_id,
            agency_reference=receipt.agency_reference,
            text="Hierbij de gevraagde factuur.",
            attachments=(Attachment("factuur.pdf", "application/pdf", b"%PDF-1.4 test"),),
        )
        adapter.send_message(reply)
        adapter.send_message(reply)  # a repeat with the same key
        assert peer.messages(receipt.agency_reference) == [
            ("Hierbij de gevraagde factuur.", ["factuur.pdf"])
        ]

    # ------------------------------------------------------------------------------ errors

    def test_a_broken_configuration_fails_delivery_with_a_classified_error(
        self, broken_adapter: Adapter, peer: Peer
    ):
        require(broken_adapter, DELIVER)
        with pytest.raises(AdapterError) as info:
            broken_adapter.deliver(outbound(peer))
        assert isinstance(info.value, TransientError | PermanentError)
        assert info.value.detail

    @pytest.mark.parametrize("kind", ["transient", "timeout"])
    def test_trouble_at_the_agency_is_transient(self, adapter: Adapter, peer: Peer, kind: str):
        require(adapter, DELIVER)
        require_peer(peer, FAULTS)
        peer.fail_next(kind)
        with pytest.raises(TransientError):
            adapter.deliver(outbound(peer))

    def test_a_refusal_by_the_agency_is_permanent(self, adapter: Adapter, peer: Peer):
        require(adapter, DELIVER)
        require_peer(peer, FAULTS)
        peer.fail_next("permanent")
        with pytest.raises(PermanentError):
            adapter.deliver(outbound(peer))

    def test_after_a_transient_failure_the_same_item_delivers_once(
        self, adapter: Adapter, peer: Peer
    ):
        require(adapter, DELIVER)
        require_peer(peer, FAULTS)
        item = outbound(peer)
        before = peer.case_count()
        peer.fail_next("transient")
        with pytest.raises(TransientError):
            adapter.deliver(item)
        adapter.deliver(item)
        adapter.deliver(item)
        assert peer.case_count() == before + 1


def _names(update: StatusUpdate, agency_reference: str, case_reference: str) -> bool:
    return update.agency_reference == agency_reference or update.case_reference == case_reference
