"""`loket mappings validate` checks each mapping against its agency's own contract: the email
contract (email.yaml) for email agencies, the case file layout (XSD, JSON Schema, CSV layout)
for SFTP agencies. A mapping that drops a field the agency requires is caught before anything
runs, with one sentence naming the field and the fix."""

from __future__ import annotations

import copy

from adapters.email import EmailAdapter
from adapters.sftp import SftpAdapter
from hub.mapping_check import check_contract
from mappings import AGENCIES_DIR, CONTRACTS_DIR
from mappings.engine import load_agency
from mappings.samples import sample_documents


def payloads(agency_id: str, drop: str | None = None) -> tuple[dict, list[dict]]:
    """The agency's adapter configuration and its sample payloads, without the field `drop`
    (dotted), as a mapping that forgot to map it would render them."""
    mapping = load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})
    out = []
    for _, document in sample_documents(mapping):
        payload = copy.deepcopy(mapping.render(document))
        if drop:
            *parents, leaf = drop.split(".")
            node = payload
            for part in parents:
                node = node[part]
            node.pop(leaf, None)
        out.append(payload)
    return dict(mapping.adapter_config), out


def test_the_shipped_email_and_sftp_agencies_fit_their_contracts():
    for agency_id in ("ombudsman-energy", "economic-inspection"):
        assert check_contract(load_agency(AGENCIES_DIR / f"{agency_id}.yaml", env={})) == []


def test_an_email_mapping_without_a_required_field_is_named_with_the_fix():
    config, rendered = payloads("ombudsman-energy", drop="consumer.name")
    problems = EmailAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "ombudsman-energy", config, rendered
    )
    assert problems == [
        "fields.consumer.name: the agency's email.yaml requires it in every case mail and this "
        "case has none. Fix: map consumer.name in fields (with default(...) if a case may lack it)"
    ]


def test_an_email_mapping_sending_a_field_the_contract_does_not_list_is_flagged():
    config, rendered = payloads("ombudsman-energy")
    rendered[0]["consumer"]["iban"] = "BE68539007547034"
    [problem] = EmailAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "ombudsman-energy", config, rendered
    )
    assert problem.startswith("fields.consumer.iban: not in the agency's email.yaml")
    assert "Fix: remove it from fields" in problem


def test_an_email_status_pattern_that_cannot_read_the_agencys_status_mail_is_flagged():
    config, rendered = payloads("ombudsman-energy")
    config["status_pattern"] = r"^Statuscode: (?P<status>\w+)"
    [problem] = EmailAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "ombudsman-energy", config, rendered
    )
    assert problem.startswith("adapter.status_pattern: reads None from the status mail example")


def test_an_email_agency_without_an_email_contract_is_told_where_to_put_it(tmp_path):
    config, rendered = payloads("ombudsman-energy")
    [problem] = EmailAdapter.check_contract(tmp_path, config, rendered)
    assert problem.startswith(f"no email.yaml in {tmp_path.name}/")


def test_an_xml_mapping_without_a_required_element_is_named_by_the_xsd_check():
    config, rendered = payloads("economic-inspection", drop="soort")
    problems = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "economic-inspection", config, rendered
    )
    assert problems == [
        "fields.soort: <melding> must contain <soort>, and the file has none (the agency's "
        "case.xsd). Fix: map soort in fields (with default(...) if a case may lack it)"
    ]


def test_an_xml_value_off_the_xsd_and_a_wrong_root_are_named():
    config, rendered = payloads("economic-inspection")
    rendered[0]["onderneming"]["kbo"] = "0403.170.701"  # the XSD wants ten digits
    problems = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "economic-inspection", config, rendered
    )
    assert len(problems) == 1 and problems[0].startswith(
        "fields.onderneming.kbo: [facet 'pattern']"
    )
    assert problems[0].endswith("Fix: transform onderneming.kbo so the value fits")
    config["xml_root"] = "case"
    assert SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "economic-inspection", config, rendered[1:2]
    ) == [
        "the case file: the root element is <case>, the agency expects <melding> (the agency's "
        "case.xsd). Fix: set xml_root to melding"
    ]


def test_without_lxml_the_required_elements_are_still_checked_from_the_xsd():
    from adapters.filecontracts import _required_elements_checker, _Xsd
    from adapters.fileformats import write_case

    xsd = _Xsd(CONTRACTS_DIR / "agencies" / "economic-inspection" / "case.xsd")
    check = _required_elements_checker(xsd, ["melding"])
    _, rendered = payloads("economic-inspection", drop="omschrijving")
    [problem] = check(write_case(rendered[0], "xml", root="melding"))
    assert (problem.field, problem.message) == (
        "omschrijving",
        "<melding> must contain <omschrijving>, and the file has none",
    )
    assert check(write_case(rendered[0], "xml", root="case"))[0].fix == "set xml_root to melding"


def test_a_csv_mapping_without_a_required_column_is_named_by_the_layout_check():
    config, rendered = payloads("fod-financien", drop="TYPE")
    problems = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "fod-financien", config, rendered
    )
    assert problems == [
        "fields.TYPE: column TYPE is required and the file has no value for it (the agency's "
        "case.layout.yaml). Fix: map TYPE in fields (with default(...) if a case may lack it)"
    ]


def test_a_csv_value_off_the_layout_an_unknown_column_and_a_wrong_delimiter_are_named():
    config, rendered = payloads("fod-financien")
    rendered[0]["TAAL"] = "nl"
    rendered[0]["KLEUR"] = "rood"
    problems = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "fod-financien", config, rendered[:1]
    )
    assert problems == [
        "fields.KLEUR: column KLEUR is not in the agency's layout (the agency's "
        "case.layout.yaml). Fix: remove KLEUR from fields, or correct its name",
        "fields.TAAL: 'nl' is not one of N, F, D, E (the agency's case.layout.yaml). Fix: "
        "transform TAAL so the value fits",
    ]
    config["csv_delimiter"] = ","
    assert SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "fod-financien", config, rendered
    ) == [
        "adapter.csv_delimiter: ',', but the agency's case.layout.yaml says ';'. Fix: set "
        "csv_delimiter to ';'"
    ]


def test_a_json_mapping_without_a_required_field_is_named_by_the_json_schema_check():
    config, rendered = payloads("dangerous-products", drop="reporter.email")
    problems = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "dangerous-products", config, rendered
    )
    assert problems == [
        "fields.reporter.email: the agency requires it and the file has none (the agency's "
        "case.schema.json). Fix: map reporter.email in fields (with default(...) if a case may "
        "lack it)"
    ]
    config, rendered = payloads("dangerous-products", drop="category")
    [problem] = SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "dangerous-products", config, rendered
    )
    assert problem.startswith("fields.category: the agency requires it")


def test_a_json_field_the_schema_does_not_know_is_named():
    config, rendered = payloads("dangerous-products")
    rendered[0]["seller"]["phone"] = "+32 2 000 00 00"
    assert SftpAdapter.check_contract(
        CONTRACTS_DIR / "agencies" / "dangerous-products", config, rendered[:1]
    ) == [
        "fields.seller.phone: not in the agency's layout (the agency's case.schema.json). Fix: "
        "remove seller.phone from fields, or correct its name"
    ]


def test_an_sftp_agency_without_a_layout_for_its_format_is_told_what_to_put_where(tmp_path):
    config, rendered = payloads("dangerous-products")
    [problem] = SftpAdapter.check_contract(tmp_path, config, rendered)
    assert problem == (
        f"no case.schema.json in {tmp_path.name}/: the adapter writes JSON case files, so put "
        "the agency's JSON Schema of a case file there (or change format)"
    )
