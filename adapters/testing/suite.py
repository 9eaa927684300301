"""The adapter conformance suite, in the spirit of SQLAlchemy's dialect suite and fsspec's
abstract tests: subclass it, supply the fixtures, inherit every test.

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

        @pytest.fixture
        def bad_config(self):               # a configuration the schema refuses
            return {"host": "fax.example", "port": "not a port", "password": "hunter2"}

        @pytest.fixture
        def paged_adapter(self, fax_server):  # optional: reads a few changes per poll
            return FaxAdapter({..., "page_size": 2})

Tests gate on what the *configured* adapter offers (`adapter.capabilities`), not on what its
class declares: a test that does not apply is skipped naming the capability the adapter (or the
peer) lacks, and a capability the configuration switches off must be refused, not attempted.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

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
    ConfigurationError,
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
from adapters.testing.peer import ATTACHMENTS as PEER_ATTACHMENTS
from adapters.testing.peer import FAULTS, Peer
from adapters.testing.peer import MESSAGES as PEER_MESSAGES

KNOWN_CAPABILITIES = frozenset({DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM, ATTACHMENTS, MESSAGES})


# The paging test makes this many changes; a `paged_adapter` must read fewer per poll.
PAGED_CHANGES = 5
# A cursor no adapter issues: the kit polls with it to see an unknown cursor handled.
GARBAGE_CURSORS = ("not-a-cursor \u2603", '{"v": 99, "read": 7}')


def require(adapter: Adapter, capability: str) -> None:
    """Skip unless the adapter, as configured, offers `capability` (the test names it)."""
    if capability not in adapter.capabilities:
        why = (
            "its class declares it, this configuration switches it off"
            if capability in adapter.declared_capabilities
            else "its class does not declare it"
        )
        pytest.skip(
            f"adapter kind {adapter.kind!r} as configured here does not offer capability "
            f"{capability!r} ({why})"
        )


def require_peer(peer: Peer, capability: str) -> None:
    if capability not in peer.capabilities:
        pytest.skip(f"the peer for this adapter does not offer capability {capability!r}")


def new_reference() -> str:
    body = uuid.uuid4().hex.upper()
    return f"LK-{body[:4]}-{body[4:8]}"


def outbound(
    peer: Peer,
    key: str | None = None,
    reference: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> Outbound:
    reference = reference or new_reference()
    return Outbound(
        idempotency_key=key or f"{reference}.conformance.1",
        case_reference=reference,
        agency_id="conformance",
        payload=peer.payload(reference),
        language="nl",
        attachments=tuple(attachments),
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
    """Every test an adapter must pass. Fixtures: `adapter`, `broken_adapter`, `peer` and
    `bad_config`; optionally `paged_adapter`."""

    @pytest.fixture
    def bad_config(self) -> Mapping[str, Any]:
        """A configuration the adapter's schema must refuse (supply one: every adapter has a
        schema, and a typo in a mapping file must fail at load, not at the first delivery)."""
        pytest.fail(
            "supply a `bad_config` fixture: a configuration your adapter's schema refuses "
            "(a wrong type, a missing required key), with a secret set if it has secret fields"
        )

    @pytest.fixture
    def paged_adapter(self) -> Adapter:
        """The adapter configured to read fewer than PAGED_CHANGES changes per poll."""
        pytest.skip(
            f"no `paged_adapter` fixture: paging of capability {POLL_CHANGES!r} is not tested "
            f"(supply the adapter configured to read fewer than {PAGED_CHANGES} changes a poll)"
        )

    # ------------------------------------------------------------------------- declaration

    def test_declares_kind_config_schema_and_capabilities(self, adapter: Adapter):
        assert isinstance(adapter.kind, str) and adapter.kind
        assert issubclass(adapter.config_schema, Schema)
        declared = type(adapter).declared_capabilities
        assert declared <= KNOWN_CAPABILITIES, declared - KNOWN_CAPABILITIES
        assert DELIVER in declared

    def test_the_configured_capabilities_are_a_consistent_part_of_the_declared(
        self, adapter: Adapter
    ):
        caps = adapter.capabilities
        assert isinstance(caps, frozenset)
        assert caps <= adapter.declared_capabilities, caps - adapter.declared_capabilities
        assert DELIVER in caps
        modes = caps & {POLL_CHANGES, POLL_PER_ITEM}
        assert (POLL in caps) == bool(modes), f"{POLL!r} goes with one way of polling: {caps}"

    def test_what_the_configuration_does_not_offer_is_refused_as_permanent(
        self, adapter: Adapter, peer: Peer
    ):
        missing = [c for c in (POLL, MESSAGES) if c not in adapter.capabilities]
        if not missing:
            pytest.skip(
                f"adapter kind {adapter.kind!r} as configured here offers every optional "
                f"capability this test refuses ({POLL!r}, {MESSAGES!r})"
            )
        before = peer.case_count()
        if POLL in missing:
            with pytest.raises(PermanentError) as info:
                adapter.poll(None, [])
            assert info.value.detail
        if MESSAGES in missing:
            reference = new_reference()
            with pytest.raises(PermanentError) as info:
                adapter.send_message(
                    OutboundMessage(
                        idempotency_key=f"{reference}.conformance.msg1",
                        case_reference=reference,
                        agency_id="conformance",
                        agency_reference=reference,
                        text="Hierbij de gevraagde factuur.",
                    )
                )
            assert info.value.detail
        assert peer.case_count() == before

    def test_a_bad_configuration_is_refused_when_the_adapter_is_made(
        self, adapter: Adapter, bad_config: Mapping[str, Any]
    ):
        with pytest.raises(ConfigurationError) as info:
            type(adapter)(bad_config)
        assert info.value.detail
        assert not info.value.retryable
        secrets = [bad_config[f] for f in secret_fields(adapter.config_schema) if f in bad_config]
        for value in secrets:
            if value:
                assert str(value) not in info.value.detail, "a secret shows in the error"

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
        assert isinstance(receipt.provisional, bool)
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

    def test_changes_polling_needs_no_open_items(self, adapter: Adapter, peer: Peer):
        """One request per tick from the cursor: the change comes back though the hub names no
        open case."""
        require(adapter, POLL_CHANGES)
        item = outbound(peer)
        ref = adapter.deliver(item).agency_reference
        _, cursor, _ = poll_until_quiet(adapter, None, [])
        code = peer.advance(ref)
        updates, _, _ = poll_until_quiet(adapter, cursor, [])
        mine = [u.agency_status for u in updates if _names(u, ref, item.case_reference)]
        assert mine == [code], updates

    def test_per_item_polling_asks_about_each_open_case_and_only_those(
        self, adapter: Adapter, peer: Peer
    ):
        require(adapter, POLL_PER_ITEM)
        items = []
        for _ in range(2):
            item = outbound(peer)
            ref = adapter.deliver(item).agency_reference
            items.append(OpenItem(ref, item.case_reference, item.idempotency_key))
        _, cursor, known = poll_until_quiet(adapter, None, items)
        assert all(i.agency_status for i in known), "the first poll reads each case's status"
        moved, still = known
        code = peer.advance(moved.agency_reference)
        result = adapter.poll(cursor, known)
        assert [(u.agency_reference, u.agency_status) for u in result.updates] == [
            (moved.agency_reference, code)
        ]
        # a case the hub does not ask about is not read
        peer.advance(still.agency_reference)
        assert adapter.poll(cursor, []).updates == ()

    def test_a_changes_feed_longer_than_a_page_comes_back_whole_across_polls(
        self, adapter: Adapter, peer: Peer, request: pytest.FixtureRequest
    ):
        require(adapter, POLL_CHANGES)
        paged: Adapter = request.getfixturevalue("paged_adapter")
        require(paged, POLL_CHANGES)
        cases = []
        for _ in range(PAGED_CHANGES):
            item = outbound(peer)
            cases.append((adapter.deliver(item).agency_reference, item.case_reference))
        _, cursor, _ = poll_until_quiet(paged, None, [], rounds=4 * PAGED_CHANGES)
        codes = {ref: peer.advance(ref) for ref, _ in cases}
        seen: list[StatusUpdate] = []
        polls = 0
        for _ in range(4 * PAGED_CHANGES):
            result = paged.poll(cursor, [])
            cursor = result.cursor
            if not result.updates:
                break
            polls += 1
            seen.extend(result.updates)
        else:
            raise AssertionError("the paged feed never ran dry: the cursor does not move on")
        got = {ref: [u.agency_status for u in seen if _names(u, ref, case)] for ref, case in cases}
        assert got == {ref: [code] for ref, code in codes.items()}, "lost or repeated changes"
        assert polls > 1, (
            f"paged_adapter read all {PAGED_CHANGES} changes in one poll: configure it to read "
            "fewer, so that paging is what this test exercises"
        )

    @pytest.mark.parametrize("garbage", GARBAGE_CURSORS)
    def test_a_cursor_the_adapter_never_issued_is_refused_or_read_from_the_start(
        self, adapter: Adapter, peer: Peer, garbage: str
    ):
        """A cursor damaged in the database, or left by another adapter kind after a mapping
        changed transport: a classified error (operators see it) or a full re-read (the hub
        de-duplicates), never a crash and never a silent skip past the agency's changes."""
        require(adapter, POLL)
        item = outbound(peer)
        ref = adapter.deliver(item).agency_reference
        open_items = [OpenItem(ref, item.case_reference, item.idempotency_key)]
        code = peer.advance(ref)
        try:
            result = adapter.poll(garbage, open_items)
        except AdapterError as exc:
            assert isinstance(exc, TransientError | PermanentError)
            assert exc.detail
            return
        assert isinstance(result, PollResult)
        mine = [u.agency_status for u in result.updates if _names(u, ref, item.case_reference)]
        assert code in mine, f"polling from {garbage!r} silently skipped the change: {result}"
        if POLL_CHANGES in adapter.capabilities:
            assert result.cursor != garbage, "the next poll would start from the garbage again"

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

    # ------------------------------------------------------------------------- attachments

    def test_attachments_reach_the_agency_intact(self, adapter: Adapter, peer: Peer):
        require(adapter, ATTACHMENTS)
        require_peer(peer, PEER_ATTACHMENTS)
        documents = (
            Attachment("factuur-été.pdf", "application/pdf", b"%PDF-1.4\n\x00\xff\xfe binary"),
            Attachment("foto.jpg", "image/jpeg", bytes(range(256)) * 40),
        )
        receipt = adapter.deliver(outbound(peer, attachments=documents))
        assert peer.attachments(receipt.agency_reference) == [
            (d.filename, d.data) for d in documents
        ]

    # ------------------------------------------------------------------------------- close

    def test_close_releases_connections_and_may_be_called_twice(self, adapter: Adapter, peer: Peer):
        if not os.path.isdir("/proc/self/fd"):
            pytest.skip("cannot count this process's open sockets here (no /proc/self/fd)")
        before = _open_sockets()
        adapter.check()
        adapter.deliver(outbound(peer))
        adapter.close()
        adapter.close()
        deadline = time.monotonic() + 5  # in-process peers close their end when they see ours
        while _open_sockets() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _open_sockets() <= before, "close() left connections open"

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


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed while we looked
    return count


def _names(update: StatusUpdate, agency_reference: str, case_reference: str) -> bool:
    return update.agency_reference == agency_reference or update.case_reference == case_reference
