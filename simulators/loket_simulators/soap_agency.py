"""SOAP agency simulators: each agency's own system as a real spyne SOAP service.

FAVV/AFSCA's complaint desk ("meldpunt") is defined here; the other SOAP agencies (the Insurance
Ombudsman, FAGG/AFMPS, FOD Volksgezondheid) are in `soap_services.py`, each with its own
namespace, element names, case ids and status codes (`SERVICES`). One process can play several
of them, each on its own port with its own credentials (`launch_group`, `--agency JSON`).

FAVV plays the food safety agency's own system: document/literal SOAP 1.1 with Dutch element names,
its own case ids (`FAVV-2026-00042`) and status codes (NIEUW, IN_ONDERZOEK, INSPECTIE_GEPLAND,
AFGESLOTEN), one status move every `step_seconds` (clock injectable, state shared with the REST
simulator's `AgencySystem`), de-duplication on the `IdempotencyKey` element, an optional
WS-Security UsernameToken check (PasswordText or PasswordDigest), and fault injection for tests:
SOAP faults of both classes, a stall, an HTTP 503, a malformed envelope, an XML entity bomb and an
external entity (XXE). A consumer's answer to the agency's request for more information arrives
with `DienAanvullingIn` (text and base64 attachments on a known DossierNummer, de-duplicated on
its IdempotencyKey; `receive_reply` records one for any profile). Its WSDL is the contract in
contracts/agencies/favv/complaints.wsdl; a test fails when the two drift apart (regenerate with
`--write-wsdl`).

Each agency's case ids, status flow and URL path are data (contracts/agencies/<id>/simulator.yaml,
`kind: soap`); its types and operations are the spyne service below or in `soap_services.py`.

    loket-simulator soap --port 8103 --username favv --password demo
    loket-simulator soap --profile fagg --port 8121
    loket-simulator soap --profile fagg --write-wsdl contracts/agencies/fagg/intake.wsdl
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from loket_simulators import WsgiSimulatorServer, serve_until_interrupted, start_all
from loket_simulators.profiles import load, named
from loket_simulators.rest_agency import AgencySystem, Faults, Profile, read_profile

with warnings.catch_warnings():
    # spyne 2.14 imports `cgi` and a bundled `six` that warn on Python 3.11+; nothing we use.
    warnings.filterwarnings(
        "ignore", message=".*'cgi' is deprecated.*", category=DeprecationWarning
    )
    warnings.filterwarnings("ignore", category=ImportWarning)
    from spyne import (
        Application,
        Array,
        Boolean,
        ByteArray,
        ComplexModel,
        Date,
        DateTime,
        Fault,
        Integer,
        ServiceBase,
        Unicode,
        rpc,
    )
    from spyne.model.complex import ComplexModelBase
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

NS = "urn:be:favv-afsca:meldpunt:v1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
CONTRACT_LOCATION = "http://127.0.0.1:8103/meldpunt"  # the address written into the saved WSDL

CONTRACT_NOTE = (
    " FAVV/AFSCA meldpunt: illustrative until the agency confirms it. Generated from the simulator "
    "with the write-wsdl option of loket-simulator soap; "
    "tests/test_soap_simulator.py "
    "fails when the two drift apart. "
)

# Fault codes this system answers with (SOAP 1.1: Client = fix the request, Server = try later).
FAULT_AUTHENTICATION = "Client.Authentication"
FAULT_VALIDATION = "Client.Validation"
FAULT_UNKNOWN_CASE = "Client.UnknownCase"
FAULT_UNAVAILABLE = "Server.Unavailable"

# ------------------------------------------------------------------------------------- the types


class Melder(ComplexModel):
    """The person who reports (de melder / le déclarant)."""

    __namespace__ = NS
    _type_info = [
        ("Naam", Unicode(max_len=200)),
        ("Email", Unicode(max_len=254)),
        ("Telefoon", Unicode(max_len=40)),
    ]


class Inrichting(ComplexModel):
    """The food business the report is about (de inrichting / l'établissement)."""

    __namespace__ = NS
    _type_info = [
        ("Naam", Unicode(max_len=200)),
        ("Ondernemingsnummer", Unicode(pattern=r"[0-9]{10}")),
        ("Straat", Unicode(max_len=200)),
        ("Postcode", Unicode(max_len=10)),
        ("Gemeente", Unicode(max_len=100)),
        ("Website", Unicode(max_len=300)),
    ]


class Ontvangst(ComplexModel):
    """Acknowledgement of a filed report. `Herhaling` is true for a repeat of a known key."""

    __namespace__ = NS
    _type_info = [
        ("DossierNummer", Unicode(min_occurs=1)),
        ("Status", Unicode(min_occurs=1)),
        ("OntvangenOp", DateTime(min_occurs=1)),
        ("Herhaling", Boolean(min_occurs=1)),
    ]


class Wijziging(ComplexModel):
    """One status change of one case (een statuswijziging / un changement de statut)."""

    __namespace__ = NS
    _type_info = [
        ("Volgnummer", Integer(min_occurs=1)),
        ("DossierNummer", Unicode(min_occurs=1)),
        ("LoketReferentie", Unicode),
        ("Status", Unicode(min_occurs=1)),
        ("Tijdstip", DateTime(min_occurs=1)),
        ("Toelichting", Unicode),
    ]


class WijzigingenPagina(ComplexModel):
    """A page of changes after a sequence number; ask again from VolgendVolgnummer."""

    __namespace__ = NS
    _type_info = [
        ("Wijzigingen", Array(Wijziging)),
        ("VolgendVolgnummer", Integer(min_occurs=1)),
        ("MeerBeschikbaar", Boolean(min_occurs=1)),
    ]


class Bijlage(ComplexModel):
    """A document with an answer (een bijlage / une pièce jointe): its content is base64 in the XML."""

    __namespace__ = NS
    _type_info = [
        ("Bestandsnaam", Unicode(min_occurs=1, nillable=False, min_len=1, max_len=255)),
        ("MimeType", Unicode(max_len=100)),
        ("Inhoud", ByteArray(min_occurs=1, nillable=False)),
    ]


class AanvullingOntvangst(ComplexModel):
    """Acknowledgement of an answer on a case. `Herhaling` is true for a repeat of a known key."""

    __namespace__ = NS
    _type_info = [
        ("BerichtNummer", Unicode(min_occurs=1)),
        ("DossierNummer", Unicode(min_occurs=1)),
        ("OntvangenOp", DateTime(min_occurs=1)),
        ("Herhaling", Boolean(min_occurs=1)),
    ]


class PingAntwoord(ComplexModel):
    __namespace__ = NS
    _type_info = [("Systeem", Unicode(min_occurs=1)), ("Tijdstip", DateTime(min_occurs=1))]


Required = Unicode(min_occurs=1, nillable=False)

# --------------------------------------------------------------------------------------- service


class MeldpuntService(ServiceBase):
    """FAVV/AFSCA meldpunt: consumers' reports and complaints about food safety.

    Faults: Client.Authentication (WS-Security UsernameToken missing or wrong), Client.Validation
    and Client.SchemaValidationError (fix the request), Client.UnknownCase (no such DossierNummer),
    Server.Unavailable (try again later with the same IdempotencyKey).
    """

    @rpc(
        Unicode(min_occurs=1, nillable=False, min_len=1, max_len=200),
        Unicode(min_occurs=1, nillable=False, max_len=40),
        Unicode(values=["KLACHT", "MELDING", "VRAAG"], min_occurs=1, nillable=False),
        Unicode(
            values=["VOEDSELVERGIFTIGING", "HYGIENE", "ETIKETTERING", "ANDERE"],
            min_occurs=1,
            nillable=False,
        ),
        Unicode(values=["NL", "FR", "DE"], min_occurs=1, nillable=False),
        Unicode(min_occurs=1, nillable=False, min_len=1, max_len=4000),
        Date,
        Melder,
        Inrichting,
        _returns=Ontvangst,
        _out_variable_name="Ontvangst",
    )
    def DienMeldingIn(
        ctx,
        IdempotencyKey,
        LoketReferentie,
        Soort,
        Categorie,
        Taal,
        Omschrijving,
        DatumVoorval,
        Melder,
        Inrichting,
    ):
        """File a report. A repeat with a known IdempotencyKey answers the same DossierNummer."""
        system = guard(ctx)
        payload = plain(
            {
                "LoketReferentie": LoketReferentie,
                "Soort": Soort,
                "Categorie": Categorie,
                "Taal": Taal,
                "Omschrijving": Omschrijving,
                "DatumVoorval": DatumVoorval,
                "Melder": Melder,
                "Inrichting": Inrichting,
            }
        )
        if Soort == "KLACHT" and not (payload.get("Inrichting") or {}).get("Naam"):
            raise Fault(
                faultcode=FAULT_VALIDATION,
                faultstring="Een klacht vermeldt de inrichting (Inrichting/Naam) / "
                "une plainte mentionne l'établissement (Inrichting/Naam)",
            )
        case, replay = system.submit(payload, IdempotencyKey, LoketReferentie)
        return Ontvangst(
            DossierNummer=case.id,
            Status=case.history[0]["status"],
            OntvangenOp=case.created,
            Herhaling=replay,
        )

    @rpc(
        Integer(min_occurs=1, nillable=False, ge=0),
        Integer(ge=1, le=1000),
        _returns=WijzigingenPagina,
        _out_variable_name="Pagina",
    )
    def GeefWijzigingen(ctx, VanafVolgnummer, Maximum):
        """Status changes after sequence number VanafVolgnummer (0 = from the start), in order."""
        system = guard(ctx)
        page, more = system.changes_since(VanafVolgnummer, Maximum or 200)
        return WijzigingenPagina(
            Wijzigingen=[_change(c) for c in page],
            VolgendVolgnummer=page[-1]["seq"] if page else system.feed_position(VanafVolgnummer),
            MeerBeschikbaar=more,
        )

    @rpc(
        Unicode(min_occurs=1, nillable=False, min_len=1, max_len=200),
        Required,
        Unicode(max_len=40),
        Unicode(min_occurs=1, nillable=False, min_len=1, max_len=10000),
        Array(Bijlage),
        _returns=AanvullingOntvangst,
        _out_variable_name="Ontvangst",
    )
    def DienAanvullingIn(ctx, IdempotencyKey, DossierNummer, LoketReferentie, Tekst, Bijlagen):
        """The consumer's answer on a case (e.g. after AANVULLING_GEVRAAGD), with attachments.
        A repeat with a known IdempotencyKey answers the same BerichtNummer."""
        system = guard(ctx)
        number, replay, at = receive_reply(
            system, DossierNummer, IdempotencyKey, Tekst, Bijlagen, LoketReferentie
        )
        return AanvullingOntvangst(
            BerichtNummer=number, DossierNummer=DossierNummer, OntvangenOp=at, Herhaling=replay
        )

    @rpc(Required, _returns=Wijziging, _out_variable_name="Status")
    def GeefStatus(ctx, DossierNummer):
        """The current status of one case."""
        return _change(latest(guard(ctx), DossierNummer))

    @rpc(_returns=PingAntwoord, _out_variable_name="Antwoord")
    def Ping(ctx):
        """Cheap liveness and credentials check."""
        system = guard(ctx)
        return PingAntwoord(Systeem=system.profile.name, Tijdstip=system.clock())


def _change(c: dict[str, Any]) -> Wijziging:
    return Wijziging(
        Volgnummer=c["seq"],
        DossierNummer=c["case_id"],
        LoketReferentie=c["external_reference"],
        Status=c["status"],
        Tijdstip=datetime.fromisoformat(c["at"]),
        Toelichting=c["note"],
    )


def latest(system: SoapAgencySystem, case_id: str) -> dict[str, Any]:
    """The last status change of one case, or the agency's "unknown case" fault."""
    with system.lock:
        system.advance()
        case = system.cases.get(case_id)
        if case is None:
            raise Fault(
                faultcode=FAULT_UNKNOWN_CASE,
                faultstring=f"Onbekend dossier / dossier inconnu: {case_id}",
            )
        return case.history[-1]


def receive_reply(
    system: SoapAgencySystem,
    case_id: str,
    key: str | None,
    text: str,
    attachments: Iterable[Any] | None,
    case_reference: str | None = None,
    *,
    names: tuple[str, str, str] = ("Bestandsnaam", "MimeType", "Inhoud"),
) -> tuple[str, bool, datetime]:
    """Record a consumer's reply on a known case: its text and attachments (file name, type,
    size), once per idempotency key. Returns the agency's message number (`<case id>/A<n>`),
    whether it was a repeat, and when it arrived. An unknown case is the Client.UnknownCase
    fault; a `case_reference` other than the case's own is Client.Validation. `names` are the
    profile's element names of an attachment: file name, content type, content."""
    filename, content_type, content = names
    with system.lock:
        case = system.cases.get(case_id)
        if case is None:
            raise Fault(
                faultcode=FAULT_UNKNOWN_CASE,
                faultstring=f"Onbekend dossier / dossier inconnu: {case_id}",
            )
        if case_reference and case.external_reference not in (None, case_reference):
            raise Fault(
                faultcode=FAULT_VALIDATION,
                faultstring=f"{case_reference} hoort niet bij / n'appartient pas à {case_id}",
            )
        files = []
        for attachment in attachments or ():
            data = getattr(attachment, content, None)
            files.append(
                {
                    "filename": getattr(attachment, filename, None),
                    "content_type": getattr(attachment, content_type, None),
                    # spyne hands base64Binary over as a sequence of byte chunks
                    "size": sum(map(len, data)) if data is not None else 0,
                }
            )
        n, replay = system.add_message(case_id, key, {"text": text, "attachments": files})
        at = datetime.fromisoformat(case.messages[n - 1]["at"])
        return f"{case_id}/A{n}", replay, at


def plain(value: Any) -> Any:
    """spyne objects as plain JSON-able data, empty values left out (what the agency stored)."""
    if isinstance(value, ComplexModelBase):
        value = {k: getattr(value, k, None) for k in type(value).get_flat_type_info(type(value))}
    if isinstance(value, dict):
        out = {k: plain(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def guard(ctx) -> SoapAgencySystem:
    """Every operation: injected SOAP faults first, then the WS-Security check."""
    system: SoapAgencySystem = ctx.app.agency_system
    injected = ctx.transport.req_env.get("simulator.fault")
    if injected == "server_fault":
        raise Fault(
            faultcode=FAULT_UNAVAILABLE,
            faultstring="Systeem tijdelijk niet beschikbaar / système temporairement indisponible",
        )
    if injected == "client_fault":
        raise Fault(
            faultcode=FAULT_VALIDATION,
            faultstring="Melding geweigerd: ongeldige gegevens / signalement refusé",
        )
    if system.username is not None:
        problem = system.authenticate(ctx.in_header_doc or ())
        if problem:
            with system.lock:
                system.auth_failures += 1
            raise Fault(faultcode=FAULT_AUTHENTICATION, faultstring=problem)
    return system


# ------------------------------------------------------------------------------ the agencies


@dataclass(frozen=True)
class SoapService:
    """One agency's SOAP system: what the simulator serves and what its saved contract holds."""

    key: str  # the agency id; `--profile` and the mapping's `simulator.profile` name it
    services: tuple[type[ServiceBase], ...]
    tns: str  # its target namespace
    name: str  # the WSDL's name
    contract: str  # the saved WSDL, relative to the repository root
    location: str  # the soap:address written into the saved WSDL
    note: str  # the comment at the top of the saved WSDL (no double dash: XML comments forbid it)

    @property
    def profile(self) -> Profile:
        """Its case ids, status flow and URL path: contracts/agencies/<key>/simulator.yaml."""
        return named("SOAP", soap_profiles(), self.key)


@cache
def soap_profiles() -> dict[str, Profile]:
    """Every SOAP agency's profile by agency id (simulator.yaml files with `kind: soap`)."""
    return load("soap", read_profile)


FAVV = SoapService(
    key="favv",
    services=(MeldpuntService,),
    tns=NS,
    name="FavvMeldpunt",
    contract="contracts/agencies/favv/complaints.wsdl",
    location=CONTRACT_LOCATION,
    note=CONTRACT_NOTE,
)


def services() -> dict[str, SoapService]:
    """Every SOAP agency the simulator can play, by agency id."""
    from loket_simulators.soap_services import OTHER_SERVICES

    return {FAVV.key: FAVV, **{s.key: s for s in OTHER_SERVICES}}


def soap_service(key: str | SoapService) -> SoapService:
    if not isinstance(key, str):
        return key
    known = services()
    if key not in known:
        raise ValueError(
            f"no SOAP agency {key!r} in the simulator (known: {', '.join(known)}); each is a "
            "spyne service in loket_simulators.soap_services and a simulator.yaml"
        )
    return known[key]


# ---------------------------------------------------------------------------------------- system


@dataclass
class SoapFaults(Faults):
    """Modes: server_fault, client_fault, timeout, http_error, malformed (not well-formed),
    not_soap (well-formed XML that is no SOAP envelope), entity_bomb, xxe."""

    target: str = "/etc/hostname"  # xxe: the local file the hostile answer points at


class SoapAgencySystem(AgencySystem):
    """The REST simulator's agency state plus WS-Security credentials and SOAP fault modes, for
    one SOAP agency (`service`: an agency id of `services()`, FAVV by default)."""

    def __init__(
        self,
        service: str | SoapService = "favv",
        *,
        step_seconds: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        latency: float = 0.0,
    ):
        self.service = soap_service(service)
        super().__init__(
            self.service.profile, step_seconds=step_seconds, clock=clock, latency=latency
        )
        self.username = username
        self.password = password
        self.auth_failures = 0
        self.faults: SoapFaults = SoapFaults()

    def fail_next(self, mode: str, **options: Any) -> None:
        with self.lock:
            self.faults = SoapFaults(mode=mode, remaining=options.pop("count", 1), **options)

    def take_fault(self) -> SoapFaults | None:
        with self.lock:
            if not self.faults.active():
                return None
            return self.faults

    def authenticate(self, headers: Iterable[Any]) -> str | None:
        """None when a UsernameToken names our user with the right password; else the reason."""
        token = None
        for header in headers:
            if isinstance(header, etree._Element) and header.tag == f"{{{WSSE}}}Security":
                token = header.find(f"{{{WSSE}}}UsernameToken")
        if token is None:
            return "WS-Security UsernameToken ontbreekt / manquant (wsse:Security)"
        username = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.find(f"{{{WSSE}}}Password")
        given = password.text or "" if password is not None else ""
        expected = self.password or ""
        if password is not None and password.get("Type") == PASSWORD_DIGEST:
            nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
            created = token.findtext(f"{{{WSU}}}Created") or ""
            digest = hashlib.sha1(nonce + created.encode() + expected.encode()).digest()
            expected = base64.b64encode(digest).decode()
        ok_user = hmac.compare_digest(username.encode(), (self.username or "").encode())
        if not (ok_user and hmac.compare_digest(given.encode(), expected.encode())):
            return "Onbekende gebruiker of fout wachtwoord / utilisateur inconnu ou mot de passe erroné"
        return None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self.lock:
            out["auth_failures"] = self.auth_failures
        return out


# ------------------------------------------------------------------------------------ the server


def soap_application(system: SoapAgencySystem) -> Application:
    app = Application(
        list(system.service.services),
        tns=system.service.tns,
        name=system.service.name,
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )
    app.agency_system = system
    return app


def entity_bomb() -> bytes:
    """The 'billion laughs' answer: a few hundred bytes that expand to gigabytes if trusted."""
    lines = ['<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        lines.append(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">')
    return _hostile("\n  ".join(lines), "&lol9;")


def external_entity(target: str) -> bytes:
    """An answer whose DossierNummer would be the content of a local file if entities resolved."""
    return _hostile(f'<!ENTITY xxe SYSTEM "file://{target}">', "&xxe;")


def _hostile(declarations: str, reference: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE Envelope [\n  {declarations}\n]>\n'
        '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:tns="{NS}"><soap11env:Body><tns:DienMeldingInResponse><tns:Ontvangst>'
        f"<tns:DossierNummer>{reference}</tns:DossierNummer><tns:Status>NIEUW</tns:Status>"
        "<tns:OntvangenOp>2026-11-02T09:00:00+00:00</tns:OntvangenOp>"
        "<tns:Herhaling>false</tns:Herhaling></tns:Ontvangst></tns:DienMeldingInResponse>"
        "</soap11env:Body></soap11env:Envelope>"
    ).encode()


MALFORMED = (
    b'<?xml version="1.0"?>\n<soap11env:Envelope '
    b'xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body>'
    b"<tns:DienMeldingInResponse><tns:Ontvangst><DossierNummer>FAVV-2026-"
)


class FaultGate:
    """WSGI middleware before spyne: test hooks under /_sim/ and the transport-level faults."""

    def __init__(self, system: SoapAgencySystem, soap: WsgiApplication):
        self.system = system
        self.soap = soap

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_sim/stats":
            return self._json(start_response, self.system.stats())
        if path == "/_sim/faults" and method == "POST":
            spec = json.loads(self._body(environ) or b"{}")
            self.system.fail_next(spec.pop("mode", "none"), **spec)
            return self._json(start_response, {"ok": True})
        if method != "POST":
            return self.soap(environ, start_response)
        if self.system.latency:
            time.sleep(self.system.latency)
        fault = self.system.take_fault()
        if fault is None:
            return self.soap(environ, start_response)
        if fault.mode == "timeout":
            time.sleep(fault.delay)  # then answer: the agency did the work, the caller gave up
            return self.soap(environ, start_response)
        if fault.mode in ("server_fault", "client_fault"):
            environ["simulator.fault"] = fault.mode  # spyne itself answers with a SOAP Fault
            return self.soap(environ, start_response)
        self._body(environ)  # read the request before answering, for keep-alive
        if fault.mode == "http_error":
            status = f"{fault.status} Service Unavailable"
            start_response(status, [("Content-Type", "text/html")])
            return [b"<html><body>Service Unavailable</body></html>"]
        bodies = {
            "malformed": lambda: MALFORMED,
            "not_soap": lambda: b"<html><body>Onderhoud / maintenance</body></html>",
            "entity_bomb": entity_bomb,
            "xxe": lambda: external_entity(fault.target),
        }
        body = bodies[fault.mode]()
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [body]

    @staticmethod
    def _body(environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return environ["wsgi.input"].read(length) if length else b""

    @staticmethod
    def _json(start_response, data: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data).encode()]


def create_wsgi(system: SoapAgencySystem) -> FaultGate:
    return FaultGate(system, WsgiApplication(soap_application(system)))


class SoapSimulatorServer(WsgiSimulatorServer):
    """The simulator on a real socket in a background thread (tests, embedded use)."""

    def __init__(self, system: SoapAgencySystem, host: str = "127.0.0.1", port: int = 0):
        quiet_logs()
        self.system = system
        super().__init__(create_wsgi(system), system.profile.prefix, host, port)


# ----------------------------------------------------------------------------------- the contract


def wsdl_document(location: str | None = None, agency: str | SoapService = "favv") -> bytes:
    """The WSDL the simulator serves for `agency`, normalised so that it can be kept under version
    control: spyne orders schema types differently from run to run, so they are sorted by kind and
    name, and the address is `location` (the agency's default port). This is what the agency's
    contract file holds (e.g. contracts/agencies/favv/complaints.wsdl)."""
    from werkzeug.test import Client

    spec = soap_service(agency)
    response = Client(create_wsgi(SoapAgencySystem(spec))).get(spec.profile.prefix + "?wsdl")
    return normalise_wsdl(response.get_data(), location, spec)


def normalise_wsdl(
    document: bytes, location: str | None = None, agency: str | SoapService = "favv"
) -> bytes:
    spec = soap_service(agency)
    root = etree.fromstring(document, etree.XMLParser(remove_blank_text=True))
    ns = {
        "wsdl": "http://schemas.xmlsoap.org/wsdl/",
        "xs": "http://www.w3.org/2001/XMLSchema",
        "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    }
    for schema in root.iterfind("wsdl:types/xs:schema", ns):
        children = list(schema)
        imports = [c for c in children if c.tag == f"{{{ns['xs']}}}import"]
        rest = [c for c in children if c not in imports]
        rest.sort(key=lambda c: (etree.QName(c).localname, c.get("name") or ""))
        for child in children:
            schema.remove(child)
        schema.extend(sorted(imports, key=lambda c: c.get("namespace") or "") + rest)
    for address in root.iterfind("wsdl:service/wsdl:port/soap:address", ns):
        address.set("location", location or spec.location)
    root.insert(0, etree.Comment(spec.note))
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# ------------------------------------------------------------------------------------ loket run


def _profile_of(agency_id: str, spec) -> str:
    """The simulated system of an agency: its `simulator.profile`, else the agency id."""
    name = spec.get("profile") or agency_id
    soap_service(name)  # fails early, naming the known ones
    return name


def launch_group(agencies, root: Path):
    """For `loket run`: ONE process plays every SOAP agency, each on the port of its own endpoint
    with its own service (namespace, WSDL, ids, codes) and WS-Security credentials."""
    from loket_simulators import group_launch

    def extra(agency) -> dict[str, Any]:
        config = agency.adapter_config
        return {
            "profile": _profile_of(agency.agency_id, agency.spec),
            "username": config.get("username"),
            "password": (config.get("password") or "") if config.get("username") else None,
        }

    return group_launch("soap", "SOAP", agencies, "endpoint", extra)


def agency_spec(text: str) -> dict[str, Any]:
    """One `--agency` option: a JSON object with id, profile, port and optionally host,
    step_seconds, username and password."""
    from loket_simulators import parse_agency_spec

    return parse_agency_spec(text, soap_service)


def serve_group(specs: list[dict[str, Any]], latency: float = 0.0) -> list[SoapSimulatorServer]:
    """Every agency of `specs` on its own port, in this process; all sockets are bound first."""

    def build(spec: dict[str, Any]) -> SoapSimulatorServer:
        system = SoapAgencySystem(
            spec["profile"],
            step_seconds=float(spec.get("step_seconds", 5)),
            username=spec.get("username"),
            password=spec.get("password"),
            latency=latency,
        )
        if spec.get("state"):
            system.keep_state_in(Path(spec["state"]))
        return SoapSimulatorServer(system, spec.get("host", "127.0.0.1"), int(spec["port"]))

    return start_all(build, specs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loket-simulator soap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        default=FAVV.key,
        choices=sorted(services()),
        help="the agency to play (default: favv)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between status moves")
    parser.add_argument("--username", default=None, help="require a WS-Security UsernameToken")
    parser.add_argument("--password", default=None)
    parser.add_argument(
        "--agency",
        type=agency_spec,
        action="append",
        default=[],
        metavar="JSON",
        help="play this agency (repeatable; instead of --profile and --port): "
        '{"id", "profile", "port", "host", "step_seconds", "username", "password"}',
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument(
        "--write-wsdl",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the --profile agency's WSDL (its contract) to PATH and exit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.write_wsdl:
        args.write_wsdl.write_bytes(wsdl_document(agency=args.profile))
        print(f"wrote {args.write_wsdl}")
        return
    quiet_logs(args.verbose)
    specs = args.agency or [  # one agency from the options: a group of one
        {
            "id": args.profile,
            "profile": args.profile,
            "host": args.host,
            "port": args.port,
            "step_seconds": args.step_seconds,
            "username": args.username,
            "password": args.password,
        }
    ]
    serve_until_interrupted(
        serve_group(specs, args.latency),
        lambda spec, sim: (
            f"SOAP agency simulator {spec['id']!r} on {sim.url}  WSDL: {sim.url}?wsdl"
        ),
        specs,
    )


def quiet_logs(verbose: bool = False) -> None:
    """spyne logs every Fault it answers with a traceback; that is the simulator's job, not news."""
    level = logging.DEBUG if verbose else logging.CRITICAL
    logging.getLogger("spyne").setLevel(level)
    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
