"""The other SOAP agencies' own systems, played by the SOAP simulator (`soap_agency.py`).

Each is its own spyne service with its own namespace and element names, case ids and status
codes, as the agency's real system would be: the Insurance Ombudsman (French element names),
FAGG/AFMPS's vigilance intake (English, after the pharmacovigilance vocabulary) and FOD
Volksgezondheid's product inspection (Dutch). Each also takes the consumer's answer when it asks
for more (DeposerComplement, SubmitFollowUp, VoegInformatieToe): text and base64 attachments on a
known case, de-duplicated on the idempotency key, recorded by `soap_agency.receive_reply` (an
unknown case is the Client.UnknownCase fault). Their WSDLs are the contracts kept in
contracts/agencies/<id>/; tests/test_agencies_a.py fails when a service and its saved WSDL drift
apart (regenerate with `loket-simulator soap --profile <id> --write-wsdl <path>`). Their case
ids, status flows and URL paths are data: contracts/agencies/<id>/simulator.yaml. All of it is
illustrative until each agency confirms its interface.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

from loket_simulators.soap_agency import SoapService, guard, latest, plain, receive_reply

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=".*'cgi' is deprecated.*", category=DeprecationWarning
    )
    warnings.filterwarnings("ignore", category=ImportWarning)
    from spyne import (
        Array,
        Boolean,
        ByteArray,
        ComplexModel,
        Date,
        DateTime,
        Decimal,
        Integer,
        ServiceBase,
        Unicode,
        rpc,
    )


def _note(name: str, agency: str, contract: str) -> str:
    # An XML comment may not contain a double dash, hence the wording of the command.
    return (
        f" {name}: illustrative until the agency confirms it. Generated from the simulator "
        f"(loket-simulator soap, profile {agency}, option write-wsdl "
        f"{contract}); tests/test_agencies_a.py fails when the two drift apart. "
    )


def _required(**facets: Any) -> Unicode:
    return Unicode(min_occurs=1, nillable=False, **facets)


LOKET_REFERENCE = r"LK-[0-9A-Z]{4}-[0-9A-Z]{4}"
ENTERPRISE_NUMBER = r"[0-9]{10}"

# ------------------------------------------------------------ Ombudsman des Assurances (fr)

INSURANCE_NS = "urn:be:ombudsman-assurances:dossiers:v2"


class Preneur(ComplexModel):
    """The person who complains (le preneur d'assurance ou l'assuré)."""

    __namespace__ = INSURANCE_NS
    _type_info = [
        ("Nom", _required(min_len=1, max_len=200)),
        ("Email", _required(max_len=254)),
        ("Telephone", Unicode(max_len=40)),
        ("CodePostal", Unicode(max_len=10)),
        ("Localite", Unicode(max_len=100)),
    ]


class Assureur(ComplexModel):
    """The insurer or intermediary the complaint is about."""

    __namespace__ = INSURANCE_NS
    _type_info = [
        ("Nom", Unicode(max_len=200)),
        ("NumeroBCE", Unicode(pattern=ENTERPRISE_NUMBER)),
    ]


class AccuseReception(ComplexModel):
    __namespace__ = INSURANCE_NS
    _type_info = [
        ("NumeroDossier", Unicode(min_occurs=1)),
        ("Statut", Unicode(min_occurs=1)),
        ("RecuLe", DateTime(min_occurs=1)),
        ("Doublon", Boolean(min_occurs=1)),
    ]


class Changement(ComplexModel):
    __namespace__ = INSURANCE_NS
    _type_info = [
        ("Sequence", Integer(min_occurs=1)),
        ("NumeroDossier", Unicode(min_occurs=1)),
        ("ReferenceLoket", Unicode),
        ("Statut", Unicode(min_occurs=1)),
        ("Horodatage", DateTime(min_occurs=1)),
        ("Commentaire", Unicode),
    ]


class PageChangements(ComplexModel):
    __namespace__ = INSURANCE_NS
    _type_info = [
        ("Changements", Array(Changement)),
        ("SequenceSuivante", Integer(min_occurs=1)),
        ("Suite", Boolean(min_occurs=1)),
    ]


class PieceJointe(ComplexModel):
    """A document with the preneur's answer (une pièce jointe): its content is base64 in the XML."""

    __namespace__ = INSURANCE_NS
    _type_info = [
        ("NomFichier", _required(min_len=1, max_len=255)),
        ("TypeMime", Unicode(max_len=100)),
        ("Contenu", ByteArray(min_occurs=1, nillable=False)),
    ]


class AccuseComplement(ComplexModel):
    """Acknowledgement of an answer on a dossier. `Doublon` is true for a repeat of a known key."""

    __namespace__ = INSURANCE_NS
    _type_info = [
        ("NumeroMessage", Unicode(min_occurs=1)),
        ("NumeroDossier", Unicode(min_occurs=1)),
        ("RecuLe", DateTime(min_occurs=1)),
        ("Doublon", Boolean(min_occurs=1)),
    ]


class EtatService(ComplexModel):
    __namespace__ = INSURANCE_NS
    _type_info = [("Systeme", Unicode(min_occurs=1)), ("Horodatage", DateTime(min_occurs=1))]


def _changement(c: dict[str, Any]) -> Changement:
    return Changement(
        Sequence=c["seq"],
        NumeroDossier=c["case_id"],
        ReferenceLoket=c["external_reference"],
        Statut=c["status"],
        Horodatage=datetime.fromisoformat(c["at"]),
        Commentaire=c["note"],
    )


class DossierService(ServiceBase):
    """Ombudsman des Assurances: requests, complaints and mediation about insurance."""

    @rpc(
        _required(min_len=1, max_len=200),
        _required(pattern=LOKET_REFERENCE),
        Unicode(values=["QUESTION", "PLAINTE", "MEDIATION"], min_occurs=1, nillable=False),
        Unicode(values=["SINISTRE", "CONTRAT", "AUTRE"], min_occurs=1, nillable=False),
        Unicode(values=["NL", "FR", "DE", "EN"], min_occurs=1, nillable=False),
        _required(min_len=1, max_len=6000),
        Date,
        Decimal(ge=0),
        Preneur.customize(min_occurs=1, nillable=False),
        Assureur,
        _returns=AccuseReception,
        _out_variable_name="Accuse",
    )
    def DeposerDossier(
        ctx,
        CleIdempotence,
        ReferenceLoket,
        TypeDemande,
        Objet,
        Langue,
        Expose,
        DateFaits,
        MontantLitige,
        Preneur,
        Assureur,
    ):
        """File a case. A repeat with a known CleIdempotence answers the same NumeroDossier."""
        system = guard(ctx)
        payload = plain(
            {
                "ReferenceLoket": ReferenceLoket,
                "TypeDemande": TypeDemande,
                "Objet": Objet,
                "Langue": Langue,
                "Expose": Expose,
                "DateFaits": DateFaits,
                "MontantLitige": str(MontantLitige) if MontantLitige is not None else None,
                "Preneur": Preneur,
                "Assureur": Assureur,
            }
        )
        case, replay = system.submit(payload, CleIdempotence, ReferenceLoket)
        return AccuseReception(
            NumeroDossier=case.id,
            Statut=case.history[0]["status"],
            RecuLe=case.created,
            Doublon=replay,
        )

    @rpc(
        Integer(min_occurs=1, nillable=False, ge=0),
        Integer(ge=1, le=500),
        _returns=PageChangements,
        _out_variable_name="Page",
    )
    def ListerChangements(ctx, DepuisSequence, Limite):
        """Status changes after DepuisSequence (0 = from the start), in order."""
        system = guard(ctx)
        page, more = system.changes_since(DepuisSequence, Limite or 200)
        return PageChangements(
            Changements=[_changement(c) for c in page],
            SequenceSuivante=page[-1]["seq"] if page else system.feed_position(DepuisSequence),
            Suite=more,
        )

    @rpc(
        _required(min_len=1, max_len=200),
        _required(),
        Unicode(pattern=LOKET_REFERENCE),
        _required(min_len=1, max_len=6000),
        Array(PieceJointe),
        _returns=AccuseComplement,
        _out_variable_name="Accuse",
    )
    def DeposerComplement(ctx, CleIdempotence, NumeroDossier, ReferenceLoket, Texte, PiecesJointes):
        """The preneur's answer on a dossier (e.g. after ATTENTE_PRENEUR), with pièces jointes.
        A repeat with a known CleIdempotence answers the same NumeroMessage."""
        system = guard(ctx)
        number, replay, at = receive_reply(
            system,
            NumeroDossier,
            CleIdempotence,
            Texte,
            PiecesJointes,
            ReferenceLoket,
            names=("NomFichier", "TypeMime", "Contenu"),
        )
        return AccuseComplement(
            NumeroMessage=number, NumeroDossier=NumeroDossier, RecuLe=at, Doublon=replay
        )

    @rpc(_required(), _returns=Changement, _out_variable_name="Etat")
    def ConsulterDossier(ctx, NumeroDossier):
        """The current status of one case."""
        return _changement(latest(guard(ctx), NumeroDossier))

    @rpc(_returns=EtatService, _out_variable_name="Etat")
    def Sonder(ctx):
        """Liveness and credentials check."""
        system = guard(ctx)
        return EtatService(Systeme=system.profile.name, Horodatage=system.clock())


INSURANCE = SoapService(
    key="ombudsman-insurance",
    services=(DossierService,),
    tns=INSURANCE_NS,
    name="OmbudsmanAssurances",
    contract="contracts/agencies/ombudsman-insurance/dossiers.wsdl",
    location="http://127.0.0.1:8120/services/dossiers",
    note=_note(
        "Ombudsman des Assurances / Ombudsman van de Verzekeringen",
        "ombudsman-insurance",
        "contracts/agencies/ombudsman-insurance/dossiers.wsdl",
    ),
)

# ---------------------------------------------------------------- FAGG/AFMPS vigilance (en)

FAMHP_NS = "urn:be:famhp:vigilance:intake:v1"


class Reporter(ComplexModel):
    """Who reports: pharmacovigilance follows up with the reporter, nothing more is needed."""

    __namespace__ = FAMHP_NS
    _type_info = [
        ("Name", _required(min_len=1, max_len=200)),
        ("Email", _required(max_len=254)),
    ]


class Supplier(ComplexModel):
    """Who sold or supplied the product (an illegal online pharmacy, a device distributor)."""

    __namespace__ = FAMHP_NS
    _type_info = [
        ("Name", Unicode(max_len=200)),
        ("Website", Unicode(max_len=300)),
        ("Country", Unicode(pattern=r"[A-Z]{2}")),
    ]


class Acknowledgement(ComplexModel):
    __namespace__ = FAMHP_NS
    _type_info = [
        ("CaseNumber", Unicode(min_occurs=1)),
        ("State", Unicode(min_occurs=1)),
        ("ReceivedAt", DateTime(min_occurs=1)),
        ("Duplicate", Boolean(min_occurs=1)),
    ]


class StateChange(ComplexModel):
    __namespace__ = FAMHP_NS
    _type_info = [
        ("Sequence", Integer(min_occurs=1)),
        ("CaseNumber", Unicode(min_occurs=1)),
        ("SenderReference", Unicode),
        ("State", Unicode(min_occurs=1)),
        ("ChangedAt", DateTime(min_occurs=1)),
        ("Remark", Unicode),
    ]


class StateChangePage(ComplexModel):
    __namespace__ = FAMHP_NS
    _type_info = [
        ("Changes", Array(StateChange)),
        ("LastSequence", Integer(min_occurs=1)),
        ("MoreAvailable", Boolean(min_occurs=1)),
    ]


class Document(ComplexModel):
    """A document sent with follow-up information (a scan, a photo): base64 in the XML."""

    __namespace__ = FAMHP_NS
    _type_info = [
        ("FileName", _required(min_len=1, max_len=255)),
        ("MediaType", Unicode(max_len=100)),
        ("Content", ByteArray(min_occurs=1, nillable=False)),
    ]


class FollowUpReceipt(ComplexModel):
    """Acknowledgement of follow-up information. `Duplicate` is true for a repeat of a known
    MessageId."""

    __namespace__ = FAMHP_NS
    _type_info = [
        ("FollowUpNumber", Unicode(min_occurs=1)),
        ("CaseNumber", Unicode(min_occurs=1)),
        ("ReceivedAt", DateTime(min_occurs=1)),
        ("Duplicate", Boolean(min_occurs=1)),
    ]


class HeartbeatReply(ComplexModel):
    __namespace__ = FAMHP_NS
    _type_info = [("System", Unicode(min_occurs=1)), ("Time", DateTime(min_occurs=1))]


def _state_change(c: dict[str, Any]) -> StateChange:
    return StateChange(
        Sequence=c["seq"],
        CaseNumber=c["case_id"],
        SenderReference=c["external_reference"],
        State=c["status"],
        ChangedAt=datetime.fromisoformat(c["at"]),
        Remark=c["note"],
    )


class VigilanceIntakeService(ServiceBase):
    """FAGG/AFMPS: reports of side effects, medical device incidents and illegal medicines."""

    @rpc(
        _required(min_len=1, max_len=200),
        _required(pattern=LOKET_REFERENCE),
        Unicode(values=["REPORT", "QUESTION"], min_occurs=1, nillable=False),
        Unicode(
            values=["ADVERSE_REACTION", "DEVICE_INCIDENT", "ILLEGAL_PRODUCT", "OTHER"],
            min_occurs=1,
            nillable=False,
        ),
        Unicode(values=["nl", "fr", "de", "en"], min_occurs=1, nillable=False),
        _required(min_len=1, max_len=10000),
        Date,
        Reporter.customize(min_occurs=1, nillable=False),
        Supplier,
        _returns=Acknowledgement,
        _out_variable_name="Acknowledgement",
    )
    def SubmitNotification(
        ctx,
        MessageId,
        SenderReference,
        Category,
        Topic,
        Language,
        Narrative,
        OnsetDate,
        Reporter,
        Supplier,
    ):
        """File a notification. A repeat with a known MessageId answers the same CaseNumber."""
        system = guard(ctx)
        payload = plain(
            {
                "SenderReference": SenderReference,
                "Category": Category,
                "Topic": Topic,
                "Language": Language,
                "Narrative": Narrative,
                "OnsetDate": OnsetDate,
                "Reporter": Reporter,
                "Supplier": Supplier,
            }
        )
        case, replay = system.submit(payload, MessageId, SenderReference)
        return Acknowledgement(
            CaseNumber=case.id,
            State=case.history[0]["status"],
            ReceivedAt=case.created,
            Duplicate=replay,
        )

    @rpc(
        Integer(min_occurs=1, nillable=False, ge=0),
        Integer(ge=1, le=1000),
        _returns=StateChangePage,
        _out_variable_name="Page",
    )
    def GetStateChanges(ctx, AfterSequence, PageSize):
        """State changes after AfterSequence (0 = from the start), in order."""
        system = guard(ctx)
        page, more = system.changes_since(AfterSequence, PageSize or 200)
        return StateChangePage(
            Changes=[_state_change(c) for c in page],
            LastSequence=page[-1]["seq"] if page else system.feed_position(AfterSequence),
            MoreAvailable=more,
        )

    @rpc(
        _required(min_len=1, max_len=200),
        _required(),
        Unicode(pattern=LOKET_REFERENCE),
        _required(min_len=1, max_len=10000),
        Array(Document),
        _returns=FollowUpReceipt,
        _out_variable_name="Receipt",
    )
    def SubmitFollowUp(ctx, MessageId, CaseNumber, SenderReference, Text, Documents):
        """The reporter's follow-up information on a case (e.g. after FOLLOW_UP_REQUESTED), with
        documents. A repeat with a known MessageId answers the same FollowUpNumber."""
        system = guard(ctx)
        number, replay, at = receive_reply(
            system,
            CaseNumber,
            MessageId,
            Text,
            Documents,
            SenderReference,
            names=("FileName", "MediaType", "Content"),
        )
        return FollowUpReceipt(
            FollowUpNumber=number, CaseNumber=CaseNumber, ReceivedAt=at, Duplicate=replay
        )

    @rpc(_required(), _returns=StateChange, _out_variable_name="State")
    def GetCaseState(ctx, CaseNumber):
        """The current state of one case."""
        return _state_change(latest(guard(ctx), CaseNumber))

    @rpc(_returns=HeartbeatReply, _out_variable_name="Reply")
    def Heartbeat(ctx):
        """Liveness and credentials check."""
        system = guard(ctx)
        return HeartbeatReply(System=system.profile.name, Time=system.clock())


FAGG = SoapService(
    key="fagg",
    services=(VigilanceIntakeService,),
    tns=FAMHP_NS,
    name="FamhpVigilanceIntake",
    contract="contracts/agencies/fagg/intake.wsdl",
    location="http://127.0.0.1:8121/vigilance/intake",
    note=_note("FAGG/AFMPS vigilance intake", "fagg", "contracts/agencies/fagg/intake.wsdl"),
)

# ------------------------------------------------ FOD Volksgezondheid, productinspectie (nl)

HEALTH_NS = "urn:be:health-fgov:productinspectie:v1"


class Indiener(ComplexModel):
    """Who files (de indiener): a name and an address to answer to."""

    __namespace__ = HEALTH_NS
    _type_info = [
        ("Naam", _required(min_len=1, max_len=200)),
        ("Email", _required(max_len=254)),
    ]


class Verkoper(ComplexModel):
    """The business that sells the product (de verkoper)."""

    __namespace__ = HEALTH_NS
    _type_info = [
        ("Handelsnaam", Unicode(max_len=200)),
        ("Ondernemingsnummer", Unicode(pattern=ENTERPRISE_NUMBER)),
        ("Website", Unicode(max_len=300)),
        ("Postcode", Unicode(max_len=10)),
        ("Gemeente", Unicode(max_len=100)),
    ]


class Dossierbevestiging(ComplexModel):
    __namespace__ = HEALTH_NS
    _type_info = [
        ("Dossiernummer", Unicode(min_occurs=1)),
        ("Toestand", Unicode(min_occurs=1)),
        ("Tijdstip", DateTime(min_occurs=1)),
        ("ReedsBekend", Boolean(min_occurs=1)),
    ]


class Toestandswijziging(ComplexModel):
    __namespace__ = HEALTH_NS
    _type_info = [
        ("Nr", Integer(min_occurs=1)),
        ("Dossiernummer", Unicode(min_occurs=1)),
        ("ExterneReferentie", Unicode),
        ("Toestand", Unicode(min_occurs=1)),
        ("Tijdstip", DateTime(min_occurs=1)),
        ("Opmerking", Unicode),
    ]


class Wijzigingsfeed(ComplexModel):
    __namespace__ = HEALTH_NS
    _type_info = [
        ("Items", Array(Toestandswijziging)),
        ("Laatste", Integer(min_occurs=1)),
        ("Meer", Boolean(min_occurs=1)),
    ]


class Stuk(ComplexModel):
    """A document with the indiener's answer (een stuk): its content is base64 in the XML."""

    __namespace__ = HEALTH_NS
    _type_info = [
        ("Naam", _required(min_len=1, max_len=255)),
        ("Mediatype", Unicode(max_len=100)),
        ("Gegevens", ByteArray(min_occurs=1, nillable=False)),
    ]


class Informatiebevestiging(ComplexModel):
    """Acknowledgement of added information. `ReedsBekend` is true for a repeat of a known
    Sleutel."""

    __namespace__ = HEALTH_NS
    _type_info = [
        ("Berichtnummer", Unicode(min_occurs=1)),
        ("Dossiernummer", Unicode(min_occurs=1)),
        ("Tijdstip", DateTime(min_occurs=1)),
        ("ReedsBekend", Boolean(min_occurs=1)),
    ]


class EchoAntwoord(ComplexModel):
    __namespace__ = HEALTH_NS
    _type_info = [("Systeem", Unicode(min_occurs=1)), ("Tijdstip", DateTime(min_occurs=1))]


def _toestand(c: dict[str, Any]) -> Toestandswijziging:
    return Toestandswijziging(
        Nr=c["seq"],
        Dossiernummer=c["case_id"],
        ExterneReferentie=c["external_reference"],
        Toestand=c["status"],
        Tijdstip=datetime.fromisoformat(c["at"]),
        Opmerking=c["note"],
    )


class ProductinspectieService(ServiceBase):
    """FOD Volksgezondheid: reports and complaints about cosmetics and other products."""

    @rpc(
        _required(min_len=1, max_len=200),
        _required(pattern=LOKET_REFERENCE),
        Unicode(values=["KLACHT", "MELDING", "VRAAG"], min_occurs=1, nillable=False),
        Unicode(values=["COSMETICA", "ANDERE"], min_occurs=1, nillable=False),
        Unicode(values=["N", "F", "D"], min_occurs=1, nillable=False),
        _required(min_len=1, max_len=5000),
        Date,
        Indiener.customize(min_occurs=1, nillable=False),
        Verkoper,
        _returns=Dossierbevestiging,
        _out_variable_name="Bevestiging",
    )
    def OpenDossier(
        ctx,
        Sleutel,
        ExterneReferentie,
        TypeMelding,
        Productgroep,
        Taalrol,
        Beschrijving,
        DatumVaststelling,
        Indiener,
        Verkoper,
    ):
        """Open a case. A repeat with a known Sleutel answers the same Dossiernummer."""
        system = guard(ctx)
        payload = plain(
            {
                "ExterneReferentie": ExterneReferentie,
                "TypeMelding": TypeMelding,
                "Productgroep": Productgroep,
                "Taalrol": Taalrol,
                "Beschrijving": Beschrijving,
                "DatumVaststelling": DatumVaststelling,
                "Indiener": Indiener,
                "Verkoper": Verkoper,
            }
        )
        case, replay = system.submit(payload, Sleutel, ExterneReferentie)
        return Dossierbevestiging(
            Dossiernummer=case.id,
            Toestand=case.history[0]["status"],
            Tijdstip=case.created,
            ReedsBekend=replay,
        )

    @rpc(
        Integer(min_occurs=1, nillable=False, ge=0),
        Integer(ge=1, le=1000),
        _returns=Wijzigingsfeed,
        _out_variable_name="Feed",
    )
    def LeesWijzigingen(ctx, Vanaf, Aantal):
        """Changes after number Vanaf (0 = from the start), in order."""
        system = guard(ctx)
        page, more = system.changes_since(Vanaf, Aantal or 200)
        return Wijzigingsfeed(
            Items=[_toestand(c) for c in page],
            Laatste=page[-1]["seq"] if page else system.feed_position(Vanaf),
            Meer=more,
        )

    @rpc(
        _required(min_len=1, max_len=200),
        _required(),
        Unicode(pattern=LOKET_REFERENCE),
        _required(min_len=1, max_len=5000),
        Array(Stuk),
        _returns=Informatiebevestiging,
        _out_variable_name="Bevestiging",
    )
    def VoegInformatieToe(ctx, Sleutel, Dossiernummer, ExterneReferentie, Bericht, Stukken):
        """The indiener's answer on a case (e.g. after BIJKOMENDE_INFO), with stukken. A repeat
        with a known Sleutel answers the same Berichtnummer."""
        system = guard(ctx)
        number, replay, at = receive_reply(
            system,
            Dossiernummer,
            Sleutel,
            Bericht,
            Stukken,
            ExterneReferentie,
            names=("Naam", "Mediatype", "Gegevens"),
        )
        return Informatiebevestiging(
            Berichtnummer=number, Dossiernummer=Dossiernummer, Tijdstip=at, ReedsBekend=replay
        )

    @rpc(_required(), _returns=Toestandswijziging, _out_variable_name="Toestand")
    def LeesToestand(ctx, Dossiernummer):
        """The current state of one case."""
        return _toestand(latest(guard(ctx), Dossiernummer))

    @rpc(_returns=EchoAntwoord, _out_variable_name="Antwoord")
    def Echo(ctx):
        """Liveness and credentials check."""
        system = guard(ctx)
        return EchoAntwoord(Systeem=system.profile.name, Tijdstip=system.clock())


FOD_HEALTH = SoapService(
    key="fod-health",
    services=(ProductinspectieService,),
    tns=HEALTH_NS,
    name="FodVolksgezondheidProductinspectie",
    contract="contracts/agencies/fod-health/productinspectie.wsdl",
    location="http://127.0.0.1:8122/productinspectie/ws",
    note=_note(
        "FOD Volksgezondheid / SPF Santé publique, productinspectie",
        "fod-health",
        "contracts/agencies/fod-health/productinspectie.wsdl",
    ),
)

OTHER_SERVICES = (INSURANCE, FAGG, FOD_HEALTH)
