"""`loket mappings validate` checks a SOAP agency's mapping against its WSDL, from the file alone.

Each problem is one sentence naming the mapped field and the fix: an element the WSDL does not
have, a required element the mapping leaves empty, a value the XSD refuses.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from adapters.soap import SoapAdapter
from hub.config import ROOT
from hub.mapping_check import check_contract
from mappings.engine import load_agency

FAGG = ROOT / "mappings" / "agencies" / "fagg.yaml"


def fagg_problems(tmp_path: Path, *changes: tuple[str, str]) -> list[str]:
    """The contract problems of FAGG's real mapping file with some lines changed."""
    text = FAGG.read_text(encoding="utf-8")
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "fagg.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(p) for p in check_contract(load_agency(path, env={}))]


def test_the_shipped_mapping_fits(tmp_path):
    assert fagg_problems(tmp_path) == []


def test_a_field_the_wsdl_does_not_have_is_named_with_the_elements_it_has(tmp_path):
    problems = fagg_problems(
        tmp_path,
        (
            "  Reporter.Email: consumer.email\n",
            "  Reporter.Email: consumer.email\n  Reporter.Phone: consumer.phone\n",
        ),
    )
    assert len(problems) == 1
    problem, fix = problems[0].split(": contract: ", 1)[1].split(". Fix: ")
    assert problem.startswith(
        "fields.Reporter.Phone: Reporter in SubmitNotification has no element 'Phone' "
        "in the agency's intake.wsdl (it has Name, Email); in "
    )  # the minimal samples have no phone number: only some samples have one
    assert re.search(
        r"\(it has Name, Email\); in (\d+) of (\d+) sample cases, e\.g\. a full", problem
    )
    found, total = map(int, re.search(r"in (\d+) of (\d+) sample", problem).groups())
    assert 0 < found < total
    assert fix == "rename the field to one of those, or remove it"


def test_a_required_element_the_mapping_leaves_out_is_named_with_the_fix(tmp_path):
    problems = fagg_problems(tmp_path, ("  Reporter.Email: consumer.email\n", ""))
    assert [p.split(": contract: ", 1)[1] for p in problems] == [
        "fields.Reporter.Email: the agency's intake.wsdl requires Reporter.Email in "
        "SubmitNotification, but the mapping leaves it empty in every sample case. Fix: map it "
        "in `fields:`, with default(...) when a case may not have it"
    ]


def test_a_required_element_filled_only_when_the_case_has_it_says_how_often(tmp_path):
    problems = fagg_problems(
        tmp_path,
        ("  Narrative: case.description_dated | truncate(10000, '…')\n", ""),
        (
            "  OnsetDate: case.incident_date | date('%Y-%m-%d', 'first')",
            "  Narrative: case.incident_date | date('%Y-%m-%d')",
        ),
    )
    [missing] = [p.split(": contract: ", 1)[1] for p in problems]
    assert missing.startswith("fields.Narrative: the agency's intake.wsdl requires Narrative")
    found, total = map(int, re.search(r"in (\d+) of (\d+) sample cases", missing).groups())
    assert 0 < found < total  # the minimal samples have no incident date


def test_a_value_the_xsd_refuses_is_named_with_the_allowed_codes(tmp_path):
    problems = fagg_problems(
        tmp_path, ("Language: case.language | lower", "Language: case.language | upper")
    )
    assert len(problems) == 4  # one per language of the sample cases, each naming it
    for problem, code in zip(problems, ("nl", "fr", "de", "en"), strict=True):
        assert (
            "contract: fields.Language: the agency's intake.wsdl refuses the value: [facet "
            f"'enumeration'] The value '{code.upper()}' is not an element of the set {{'nl', "
            f"'fr', 'de', 'en'}}; in "
        ) in problem
        assert f"sample cases (only in {code}), e.g. a full report " in problem
        assert problem.endswith("Fix: map(...) the value to one of those codes")


def test_a_date_in_another_format_is_refused_with_the_format_to_use(tmp_path):
    problems = fagg_problems(
        tmp_path,
        (
            "OnsetDate: case.incident_date | date('%Y-%m-%d', 'first')",
            "OnsetDate: case.incident_date | date('%d/%m/%Y', 'first')",
        ),
    )
    # one problem per kind of sample (a full date, a month-only one), each naming the format
    assert problems and all(
        "fields.OnsetDate: the agency's intake.wsdl refuses" in p for p in problems
    )
    assert any("refuses the value: '15/10/2026'" in p for p in problems)
    assert all(p.endswith("Fix: format it with date('%Y-%m-%d')") for p in problems)


def test_an_operation_the_wsdl_does_not_offer_is_a_configuration_problem(tmp_path):
    [problem] = fagg_problems(
        tmp_path, ("submit_operation: SubmitNotification", "submit_operation: Submit")
    )
    assert "submit_operation 'Submit' is not an operation of intake.wsdl" in problem
    assert "SubmitNotification" in problem  # what it offers


def test_values_are_checked_when_the_wsdl_spreads_its_types_over_several_namespaces(tmp_path):
    """Real agencies' WSDLs often import one schema into another; nothing is fetched."""
    wsdl = _two_namespace_wsdl(tmp_path)
    config = {
        "wsdl": str(wsdl),
        "endpoint": "http://127.0.0.1:9/svc",
        "submit_operation": "Submit",
        "idempotency_key_parameter": "Key",
    }
    good = {"Party": {"Code": "BE"}}
    assert SoapAdapter.check_contract(tmp_path, config, [good]) == []
    [problem] = SoapAdapter.check_contract(tmp_path, config, [{"Party": {"Code": "be"}}])
    assert problem.startswith("fields.Party.Code: the agency's svc.wsdl refuses the value")
    assert "[facet 'pattern']" in problem


def _two_namespace_wsdl(tmp_path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spyne import Application, ComplexModel, ServiceBase, Unicode, rpc
        from spyne.protocol.soap import Soap11
        from spyne.server.wsgi import WsgiApplication
    from werkzeug.test import Client

    class Party(ComplexModel):
        __namespace__ = "urn:test:types"
        _type_info = [("Code", Unicode(pattern="[A-Z]{2}"))]

    class Svc(ServiceBase):
        @rpc(Unicode(min_occurs=1, nillable=False), Party, _returns=Unicode)
        def Submit(ctx, Key, Party):
            return Key

    app = Application([Svc], tns="urn:test:svc", in_protocol=Soap11(), out_protocol=Soap11())
    served = Client(WsgiApplication(app)).get("/svc?wsdl")
    path = tmp_path / "svc.wsdl"
    path.write_bytes(served.get_data())
    assert path.read_bytes().count(b"<xs:schema") == 2
    return path


# ------------------------------------------------------------------ FAVV's message operation

FAVV = ROOT / "mappings" / "agencies" / "favv.yaml"


def favv_problems(tmp_path: Path, *changes: tuple[str, str]) -> list[str]:
    """The contract problems of FAVV's real mapping file with some lines changed."""
    text = FAVV.read_text(encoding="utf-8")
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "favv.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(p).split(": contract: ", 1)[1] for p in check_contract(load_agency(path, env={}))]


def test_favvs_message_operation_fits_its_wsdl(tmp_path):
    assert favv_problems(tmp_path) == []
    assert load_agency(FAVV, env={}).adapter_config["message_operation"] == "DienAanvullingIn"


def test_a_message_element_the_wsdl_does_not_have_is_named_with_the_elements_it_has(tmp_path):
    assert favv_problems(tmp_path, ("    text: Tekst\n", "    text: Bericht\n")) == [
        "adapter.message.text: DienAanvullingIn has no element 'Bericht' (it has "
        "IdempotencyKey, DossierNummer, LoketReferentie, Tekst, Bijlagen) in the agency's "
        "complaints.wsdl. Fix: name the element that carries it"
    ]


def test_an_attachment_element_the_wsdl_does_not_have_is_named(tmp_path):
    [problem] = favv_problems(
        tmp_path, ("    attachment_name: Bestandsnaam\n", "    attachment_name: Naam\n")
    )
    assert problem == (
        "adapter.message.attachment_name: Bijlagen.Bijlage in DienAanvullingIn has no element "
        "'Naam' in the agency's complaints.wsdl (it has Bestandsnaam, MimeType, Inhoud). Fix: "
        "name one of those"
    )


def test_the_attachments_must_name_the_repeated_element(tmp_path):
    problems = favv_problems(
        tmp_path, ("    attachments: Bijlagen.Bijlage\n", "    attachments: Bijlagen\n")
    )
    assert any("Bijlagen in DienAanvullingIn is not repeated" in p for p in problems), problems


def test_a_required_message_element_the_block_leaves_out_is_named(tmp_path):
    problems = favv_problems(
        tmp_path,
        (
            "    agency_reference: DossierNummer\n    case_reference: LoketReferentie\n",
            "    agency_reference: LoketReferentie\n",
        ),
    )
    assert problems == [
        "adapter.message: the agency's complaints.wsdl requires DossierNummer in "
        "DienAanvullingIn, which the message: block does not fill. Fix: name it there "
        "(agency_reference, text, ...)"
    ]


def test_a_message_operation_the_wsdl_does_not_offer_is_a_configuration_problem(tmp_path):
    [problem] = favv_problems(
        tmp_path, ("message_operation: DienAanvullingIn", "message_operation: StuurBericht")
    )
    assert "message_operation 'StuurBericht' is not an operation of complaints.wsdl" in problem
