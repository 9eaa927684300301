"""Bad input from the far side of a SOAP agency: each gives a classified error and nothing is lost.

All against FAVV's live spyne simulator on loopback. "Nothing lost" means: after the trouble the
same item delivers exactly once (same idempotency key), and a poll resumes from where it was.
"""

from __future__ import annotations

import uuid

import pytest
from loket_simulators.soap_agency import NS, WSSE

from adapters.base import (
    DELIVER,
    MESSAGES,
    POLL,
    Attachment,
    ConfigurationError,
    OpenItem,
    Outbound,
    OutboundMessage,
    PermanentError,
    TransientError,
)
from adapters.testing import require

pytest_plugins = ["tests.support.peers_soap"]


def item(peer, **payload_changes) -> Outbound:
    reference = "LK-" + uuid.uuid4().hex[:9].upper()
    return Outbound(
        idempotency_key=f"{reference}.favv.1",
        case_reference=reference,
        agency_id="favv",
        payload={**peer.payload(reference), **payload_changes},
        language="nl",
    )


def delivers_once_afterwards(adapter, peer, outbound: Outbound) -> None:
    before = peer.case_count()
    first = adapter.deliver(outbound)
    again = adapter.deliver(outbound)
    assert again.agency_reference == first.agency_reference and again.duplicate
    assert peer.case_count() <= before + 1
    assert outbound.idempotency_key in peer.system.stats()["keys"]


# ------------------------------------------------------------------------------- hostile XML


def test_an_entity_bomb_in_the_answer_is_refused_unexpanded_and_permanent(soap_adapter, soap_peer):
    outbound = item(soap_peer)
    soap_peer.system.fail_next("entity_bomb")
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(outbound)
    detail = info.value.detail
    assert "DTD or XML entities" in detail and "nothing was expanded" in detail
    assert "lol" not in detail  # neither the entities nor their expansion
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)


def test_an_external_entity_never_reads_the_local_file(soap_adapter, soap_peer, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-" + uuid.uuid4().hex)
    outbound = item(soap_peer)
    soap_peer.system.fail_next("xxe", target=str(secret))
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(outbound)
    content = secret.read_text()
    assert content not in str(info.value) and content not in repr(info.value.raw)
    assert "XXE" in info.value.detail
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)


@pytest.mark.parametrize("mode", ["entity_bomb", "xxe"])
def test_hostile_xml_in_a_poll_is_refused_and_the_cursor_does_not_move(
    soap_adapter, soap_peer, mode, tmp_path
):
    receipt = soap_adapter.deliver(item(soap_peer))
    soap_peer.system.fail_next(mode, target=str(tmp_path / "x"))
    with pytest.raises(PermanentError):
        soap_adapter.poll("0", [])
    result = soap_adapter.poll("0", [])
    assert [u.agency_reference for u in result.updates] == [receipt.agency_reference]


# --------------------------------------------------------------------------- broken envelopes


def test_a_malformed_envelope_is_transient_and_says_so(soap_adapter, soap_peer):
    outbound = item(soap_peer)
    soap_peer.system.fail_next("malformed")
    with pytest.raises(TransientError) as info:
        soap_adapter.deliver(outbound)
    assert "malformed SOAP envelope" in info.value.detail
    assert "same idempotency key is safe" in info.value.detail
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)


def test_an_answer_that_is_not_a_soap_envelope_is_transient_and_says_so(soap_adapter, soap_peer):
    outbound = item(soap_peer)
    soap_peer.system.fail_next("not_soap")
    with pytest.raises(TransientError) as info:
        soap_adapter.deliver(outbound)
    assert "not a readable SOAP envelope" in info.value.detail
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)


def test_an_http_503_without_a_soap_fault_is_transient(soap_adapter, soap_peer):
    outbound = item(soap_peer)
    soap_peer.system.fail_next("http_error", status=503)
    with pytest.raises(TransientError) as info:
        soap_adapter.deliver(outbound)
    assert "HTTP 503" in info.value.detail
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)


# ---------------------------------------------------------------------------------- SOAP faults


def test_a_server_fault_is_transient_and_the_retry_files_one_case(soap_adapter, soap_peer):
    outbound = item(soap_peer)
    soap_peer.system.fail_next("server_fault")
    with pytest.raises(TransientError) as info:
        soap_adapter.deliver(outbound)
    assert "Server.Unavailable" in info.value.detail
    assert soap_peer.case_count() == 0
    delivers_once_afterwards(soap_adapter, soap_peer, outbound)
    assert soap_peer.case_count() == 1


def test_a_client_fault_is_permanent(soap_adapter, soap_peer):
    soap_peer.system.fail_next("client_fault")
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(item(soap_peer))
    assert "Client.Validation" in info.value.detail
    assert soap_peer.case_count() == 0


def test_the_agency_schema_refusing_a_value_is_permanent(soap_adapter, soap_peer):
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(item(soap_peer, Soort="KLAGEN"))
    assert "Client.SchemaValidationError" in info.value.detail and "KLAGEN" in info.value.detail
    assert soap_peer.case_count() == 0


def test_the_agencys_own_business_rule_refusal_is_permanent(soap_adapter, soap_peer):
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(item(soap_peer, Soort="KLACHT"))  # a complaint names the business
    assert "Client.Validation" in info.value.detail and "Inrichting" in info.value.detail


def test_a_payload_the_wsdl_does_not_know_is_refused_before_sending(soap_adapter, soap_peer):
    with pytest.raises(PermanentError) as info:
        soap_adapter.deliver(item(soap_peer, Klachtnummer="42"))
    assert "does not fit the agency's WSDL" in info.value.detail and "fields:" in info.value.detail
    assert soap_peer.system.stats()["posts"] == 0


@pytest.mark.parametrize(
    ("code", "subcodes", "kind"),
    [
        ("soap-env:Sender", ["InvalidDossier"], PermanentError),
        ("soap-env:Receiver", ["Busy"], TransientError),
        ("soap-env:Client", [], PermanentError),
        ("soap-env:Server", [], TransientError),
        ("wsse:FailedAuthentication", [], PermanentError),
        ("soap-env:VersionMismatch", [], PermanentError),
        ("agency:SomethingElse", [], TransientError),
    ],
)
def test_fault_classes_of_soap_1_1_and_1_2_and_ws_security(code, subcodes, kind):
    """The simulator speaks SOAP 1.1; SOAP 1.2 and WS-Security codes are classified alike."""
    from zeep.exceptions import Fault

    from adapters.soap import _fault_error

    error = _fault_error("Op", Fault("refused", code=code, subcodes=subcodes), 500)
    assert type(error) is kind
    assert code.partition(":")[2] in error.detail
    if "Authentication" in code:
        assert "check the credentials" in error.detail


# ------------------------------------------------------------------------------------- timeouts


def test_an_agency_that_stalls_is_transient_and_the_retry_gets_the_same_case(
    make_soap_adapter, soap_peer
):
    adapter = make_soap_adapter(read_timeout=0.2)
    outbound = item(soap_peer)
    soap_peer.system.fail_next("timeout", delay=0.6)
    with pytest.raises(TransientError) as info:
        adapter.deliver(outbound)
    assert "did not answer in time" in info.value.detail
    # the agency filed it after we gave up; the retry with the same key finds it
    from tests.support.env import wait_until

    wait_until(lambda: soap_peer.case_count() == 1, 5, "the stalled call to reach the agency")
    # the retry with the agency's usual patience: on a loaded machine (CI runs the suite on
    # every core) 0.2 s can pass before even a quick answer, which is not what this test is about
    receipt = make_soap_adapter().deliver(outbound)
    assert receipt.duplicate and soap_peer.case_count() == 1


def test_an_agency_that_is_down_is_transient(make_soap_adapter, soap_peer):
    from tests.support.env import free_port

    adapter = make_soap_adapter(endpoint=f"http://127.0.0.1:{free_port()}/meldpunt")
    with pytest.raises(TransientError) as info:
        adapter.deliver(item(soap_peer))
    assert "cannot connect" in info.value.detail
    assert not adapter.check().ok


# ---------------------------------------------------------------------------------- WS-Security


@pytest.mark.parametrize("digest", [True, False], ids=["PasswordDigest", "PasswordText"])
def test_the_username_token_is_sent_and_checked(make_soap_adapter, soap_peer, digest):
    adapter = make_soap_adapter(password_digest=digest)
    receipt = adapter.deliver(item(soap_peer))
    assert receipt.agency_reference.startswith("FAVV-")
    assert soap_peer.system.stats()["auth_failures"] == 0


def test_a_wrong_password_is_permanent_and_says_to_check_the_credentials(
    make_soap_adapter, soap_peer
):
    adapter = make_soap_adapter(password="wrong")
    with pytest.raises(PermanentError) as info:
        adapter.deliver(item(soap_peer))
    assert "Client.Authentication" in info.value.detail
    assert "check the credentials" in info.value.detail
    assert "wrong" not in repr(adapter) and adapter.masked_config()["password"] == "***"
    health = adapter.check()
    assert not health.ok and "check the credentials" in health.message
    assert soap_peer.case_count() == 0 and soap_peer.system.stats()["auth_failures"] == 2


def test_without_a_username_token_the_agency_refuses(make_soap_adapter, soap_peer):
    adapter = make_soap_adapter(username=None)
    with pytest.raises(PermanentError) as info:
        adapter.deliver(item(soap_peer))
    assert "UsernameToken" in info.value.detail and "check the credentials" in info.value.detail


def test_the_simulator_sees_a_wsse_security_header(soap_peer):
    from lxml import etree

    token = etree.fromstring(
        f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken><wsse:Username>favv-test'
        "</wsse:Username><wsse:Password>nope</wsse:Password></wsse:UsernameToken></wsse:Security>"
    )
    assert soap_peer.system.authenticate([token]) is not None
    assert soap_peer.system.authenticate([]) is not None


# --------------------------------------------------------------------------------------- polling


def test_one_unreadable_change_is_reported_and_does_not_block_the_others(soap_adapter, soap_peer):
    first = soap_adapter.deliver(item(soap_peer))
    system = soap_peer.system
    with system.lock:  # the agency's feed holds a change without a status code
        bad = dict(system.changes[-1], seq=len(system.changes) + 1, status="")
        system.changes.append(bad)
    second = soap_adapter.deliver(item(soap_peer))
    result = soap_adapter.poll(None, [])
    assert [u.agency_reference for u in result.updates] == [
        first.agency_reference,
        second.agency_reference,
    ]
    [problem] = result.problems
    assert problem.source == "GeefWijzigingen Volgnummer=2" and "Status" in problem.reason
    assert result.cursor == "3"


def test_per_case_polling_reports_a_case_the_agency_does_not_know_and_goes_on(
    make_soap_adapter, soap_peer
):
    adapter = make_soap_adapter(per_case=True)
    receipt = adapter.deliver(item(soap_peer))
    ghost = OpenItem("FAVV-1999-00001", "LK-GHOST", "LK-GHOST.favv.1")
    mine = OpenItem(receipt.agency_reference, "LK-MINE", "LK-MINE.favv.1")
    result = adapter.poll(None, [ghost, mine])
    assert [(u.agency_reference, u.agency_status) for u in result.updates] == [
        (receipt.agency_reference, "NIEUW")
    ]
    [problem] = result.problems
    assert problem.source == "GeefStatus FAVV-1999-00001" and "UnknownCase" in problem.reason


def test_per_case_polling_with_wrong_credentials_fails_the_poll_not_each_case(
    make_soap_adapter, soap_peer
):
    adapter = make_soap_adapter(per_case=True, password="wrong")
    with pytest.raises(PermanentError) as info:
        adapter.poll(None, [OpenItem("FAVV-2026-00001", "LK-1", "LK-1.favv.1")])
    assert "check the credentials" in info.value.detail


# ------------------------------------------------------------------------------- configuration


def test_a_missing_wsdl_names_where_it_looked(make_soap_adapter, soap_peer):
    adapter = make_soap_adapter(wsdl="contracts/agencies/favv/nope.wsdl")
    with pytest.raises(ConfigurationError) as info:
        adapter.deliver(item(soap_peer))
    assert "nope.wsdl" in info.value.detail and "repository root" in info.value.detail
    health = adapter.check()
    assert not health.ok and "nope.wsdl" in health.message


def test_an_operation_the_wsdl_lacks_lists_the_ones_it_has(make_soap_adapter, soap_peer):
    adapter = make_soap_adapter(submit_operation="FileComplaint")
    with pytest.raises(ConfigurationError) as info:
        adapter.deliver(item(soap_peer))
    assert "FileComplaint" in info.value.detail
    assert "DienMeldingIn, GeefStatus, GeefWijzigingen, Ping" in info.value.detail


def test_an_absolute_wsdl_path_works_from_any_directory(
    make_soap_adapter, soap_peer, tmp_path, monkeypatch
):
    from hub.config import ROOT

    monkeypatch.chdir(tmp_path)
    absolute = make_soap_adapter(wsdl=str(ROOT / "contracts/agencies/favv/complaints.wsdl"))
    relative = make_soap_adapter()  # found in the source checkout though cwd is elsewhere
    assert absolute.check().ok and relative.check().ok


# -------------------------------------------------------------------------------------- replies

PDF = b"%PDF-1.4 de gevraagde factuur"
JPEG = b"\xff\xd8\xff\xe0 verpakking"


def reply(outbound: Outbound, agency_reference: str, n: int = 1, **changes) -> OutboundMessage:
    fields = {
        "idempotency_key": f"{outbound.case_reference}.favv.msg{n}",
        "case_reference": outbound.case_reference,
        "agency_id": "favv",
        "agency_reference": agency_reference,
        "text": "Hierbij de factuur en een foto van de verpakking.",
        "language": "nl",
        "attachments": (
            Attachment("factuur.pdf", "application/pdf", PDF),
            Attachment("verpakking.jpg", "image/jpeg", JPEG),
        ),
        **changes,
    }
    return OutboundMessage(**fields)


@pytest.fixture
def favv(make_soap_adapter):
    """FAVV's adapter with its mapping's own timeouts (a busy test machine is no stalled agency)."""
    return make_soap_adapter()


def sent_requests(adapter) -> list[bytes]:
    """Every request body the adapter puts on the wire, as the agency receives it."""
    bodies: list[bytes] = []
    send = adapter.http.request

    def recorded(method, url, **kwargs):
        bodies.append(kwargs.get("body"))
        return send(method, url, **kwargs)

    adapter.http.request = recorded
    return bodies


def test_favvs_mapping_declares_messages_and_the_reply_goes_out_in_favvs_own_elements(
    favv, soap_peer
):
    import base64

    from lxml import etree

    assert MESSAGES in favv.capabilities
    outbound = item(soap_peer)
    receipt = favv.deliver(outbound)
    bodies = sent_requests(favv)
    answer = favv.send_message(reply(outbound, receipt.agency_reference))
    assert answer.agency_reference == f"{receipt.agency_reference}/A1" and not answer.duplicate
    [body] = bodies
    envelope = etree.fromstring(body)
    assert envelope.find(f".//{{{WSSE}}}UsernameToken") is not None  # WS-Security as for submit
    [request] = envelope.iter(f"{{{NS}}}DienAanvullingIn")
    assert [etree.QName(e).localname for e in request] == [
        "IdempotencyKey",
        "DossierNummer",
        "LoketReferentie",
        "Tekst",
        "Bijlagen",
    ]
    assert request.findtext(f"{{{NS}}}IdempotencyKey") == f"{outbound.case_reference}.favv.msg1"
    assert request.findtext(f"{{{NS}}}DossierNummer") == receipt.agency_reference
    assert request.findtext(f"{{{NS}}}LoketReferentie") == outbound.case_reference
    assert request.findtext(f"{{{NS}}}Tekst").startswith("Hierbij de factuur")
    files = request.findall(f"{{{NS}}}Bijlagen/{{{NS}}}Bijlage")
    assert [
        (
            f.findtext(f"{{{NS}}}Bestandsnaam"),
            f.findtext(f"{{{NS}}}MimeType"),
            f.findtext(f"{{{NS}}}Inhoud"),
        )
        for f in files
    ] == [
        ("factuur.pdf", "application/pdf", base64.b64encode(PDF).decode()),
        ("verpakking.jpg", "image/jpeg", base64.b64encode(JPEG).decode()),
    ]
    # the agency decoded the base64: it holds the sizes of the files, not of their encoding
    [kept] = soap_peer.system.cases[receipt.agency_reference].messages
    assert [a["size"] for a in kept["attachments"]] == [len(PDF), len(JPEG)]
    assert answer.raw["request"]["attachments"] == ["factuur.pdf", "verpakking.jpg"]


def test_a_repeated_reply_is_recognised_and_kept_once_a_new_one_is_not(favv, soap_peer):
    outbound = item(soap_peer)
    receipt = favv.deliver(outbound)
    first = favv.send_message(reply(outbound, receipt.agency_reference))
    again = favv.send_message(reply(outbound, receipt.agency_reference))
    assert again.duplicate and again.agency_reference == first.agency_reference
    second = favv.send_message(
        reply(outbound, receipt.agency_reference, n=2, text="Nog iets.", attachments=())
    )
    assert not second.duplicate and second.agency_reference.endswith("/A2")
    assert soap_peer.messages(receipt.agency_reference) == [
        ("Hierbij de factuur en een foto van de verpakking.", ["factuur.pdf", "verpakking.jpg"]),
        ("Nog iets.", []),
    ]


def test_a_reply_on_a_case_the_agency_does_not_know_is_permanent(favv, soap_peer):
    outbound = item(soap_peer)
    with pytest.raises(PermanentError) as info:
        favv.send_message(reply(outbound, "FAVV-1999-00001"))
    assert "DienAanvullingIn" in info.value.detail and "Client.UnknownCase" in info.value.detail
    assert info.value.raw["scope"] == "request"


def test_a_server_fault_on_a_reply_is_transient_and_the_retry_records_it_once(favv, soap_peer):
    outbound = item(soap_peer)
    receipt = favv.deliver(outbound)
    message = reply(outbound, receipt.agency_reference)
    soap_peer.system.fail_next("server_fault")
    with pytest.raises(TransientError) as info:
        favv.send_message(message)
    assert "Server.Unavailable" in info.value.detail
    favv.send_message(message)
    favv.send_message(message)
    assert len(soap_peer.messages(receipt.agency_reference)) == 1


def test_a_reply_that_stalls_is_transient_and_the_retry_is_not_a_second_message(
    make_soap_adapter, soap_peer
):
    from tests.support.env import wait_until

    adapter, impatient = make_soap_adapter(), make_soap_adapter(read_timeout=0.2)
    outbound = item(soap_peer)
    receipt = adapter.deliver(outbound)
    message = reply(outbound, receipt.agency_reference)
    soap_peer.system.fail_next("timeout", delay=1.0)
    with pytest.raises(TransientError) as info:
        impatient.send_message(message)
    assert "did not answer in time" in info.value.detail
    wait_until(
        lambda: soap_peer.messages(receipt.agency_reference), 5, "the stalled reply to arrive"
    )
    assert adapter.send_message(message).duplicate
    assert len(soap_peer.messages(receipt.agency_reference)) == 1


def test_a_reply_with_a_wrong_password_is_permanent_and_says_to_check_the_credentials(
    make_soap_adapter, favv, soap_peer
):
    outbound = item(soap_peer)
    receipt = favv.deliver(outbound)
    wrong = make_soap_adapter(password="wrong")
    with pytest.raises(PermanentError) as info:
        wrong.send_message(reply(outbound, receipt.agency_reference))
    assert "check the credentials" in info.value.detail
    assert soap_peer.messages(receipt.agency_reference) == []


def test_without_a_message_operation_messages_are_not_offered_and_an_operator_forwards(
    make_soap_adapter, soap_peer
):
    adapter = make_soap_adapter(message_operation=None, message=None)
    assert MESSAGES not in adapter.capabilities
    assert MESSAGES in adapter.declared_capabilities  # what SOAP can do, not what FAVV does
    assert DELIVER in adapter.capabilities
    outbound = item(soap_peer)
    receipt = adapter.deliver(outbound)
    with pytest.raises(PermanentError) as info:
        adapter.send_message(reply(outbound, receipt.agency_reference))
    assert "no message_operation" in info.value.detail
    assert "an operator must forward the reply" in info.value.detail
    assert soap_peer.messages(receipt.agency_reference) == []


def test_attachments_to_an_agency_that_takes_none_go_to_an_operator(make_soap_adapter, soap_peer):
    from tests.support.peers_soap import favv_config

    spec = {**favv_config(soap_peer.server)["message"], "attachments": None}
    adapter = make_soap_adapter(message=spec)
    outbound = item(soap_peer)
    receipt = adapter.deliver(outbound)
    with pytest.raises(PermanentError) as info:
        adapter.send_message(reply(outbound, receipt.agency_reference))
    assert "takes no attachments" in info.value.detail and "factuur.pdf" in info.value.detail
    assert soap_peer.messages(receipt.agency_reference) == []
    adapter.send_message(reply(outbound, receipt.agency_reference, attachments=()))
    assert soap_peer.messages(receipt.agency_reference) == [
        ("Hierbij de factuur en een foto van de verpakking.", [])
    ]


def test_a_message_operation_without_its_elements_is_a_configuration_error(make_soap_adapter):
    with pytest.raises(ConfigurationError) as info:
        make_soap_adapter(message=None)
    assert "message:" in info.value.detail and "agency_reference" in info.value.detail


def test_a_message_operation_the_wsdl_lacks_lists_the_ones_it_has(make_soap_adapter, soap_peer):
    adapter = make_soap_adapter(message_operation="StuurBericht")
    outbound = item(soap_peer)
    with pytest.raises(ConfigurationError) as info:
        adapter.send_message(reply(outbound, "FAVV-2026-00001"))
    assert "message_operation 'StuurBericht'" in info.value.detail
    assert "DienAanvullingIn" in info.value.detail


def test_without_a_status_operation_polling_is_not_offered_and_the_kit_skips_it_by_name(
    make_soap_adapter,
):
    adapter = make_soap_adapter(status_operation=None)
    assert POLL not in adapter.capabilities and POLL in adapter.declared_capabilities
    with pytest.raises(PermanentError) as info:
        adapter.poll(None, [])
    assert "no status_operation" in info.value.detail
    with pytest.raises(
        pytest.skip.Exception, match=r"does not offer capability 'poll' \(its class"
    ):
        require(adapter, POLL)
    require(adapter, DELIVER)  # what it does offer is tested
