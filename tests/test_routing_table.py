"""Over two hundred consumer situations and where the front desk sends each (or why it cannot).

Each row says who is competent and why we expect it: the statute, article or the body's own
published rules (`source`). The table is written from those sources, not from the rules in
mappings/routing.yaml; when a row fails, check the source before touching the expectation.

Patterns covered: the sector bodies; competence first and ECC Belgium added (never instead) for
EU traders; what works against non-EU traders; time limits from the right date; a pending court
case; private sellers; the departure airport of a flight; the four regions by postal code
(budget meters, water, regional transport, rent); referral bodies outside Loket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from hub.config import ROOT
from hub.routing import Router, Situation, region_of
from mappings import AGENCIES_DIR
from mappings.engine import load_all

ROUTER = Router.from_file(ROOT / "mappings" / "routing.yaml", load_all(AGENCIES_DIR, env={}))
TODAY = date(2026, 11, 27)
RECENT, OLD = date(2026, 10, 1), date(2025, 6, 1)
OK = {"contacted_trader": True, "court_case_pending": False, "trader_is_business": True}
FROM_BE = {"departs_from_belgium": True}
FROM_EU = {"departs_from_belgium": False, "departs_from_eu": True}
TO_BE = {"departs_from_belgium": False, "departs_from_eu": False, "arrives_in_belgium": True}
NEITHER = {"departs_from_belgium": False, "departs_from_eu": False, "arrives_in_belgium": False}

# sources, cited once
TELECOM = "Law of 21 March 1991, art. 43bis; Ombudsman for Telecommunications, rules"
ENERGY = "Law of 29 April 1999 (electricity), art. 27; Ombudsman for Energy, rules"
POST = "Law of 21 March 1991, art. 43bis and 45; Ombudsman for the Postal Sector"
RAIL = "Law of 21 March 1991, art. 46; Regulation (EU) 2021/782"
OMBUDSFIN = "Code of Economic Law, art. XVI.25; Ombudsfin rules of procedure (no age limit)"
INSURANCE = "Law of 4 April 2014 on insurance, art. 304; Ombudsman for Insurance, rules"
NOTARIES = "Ventôse law on the notarial profession, art. 91"
LAWYERS = "Judicial Code, art. 444; the Bars' ombudsman rules"
TRAVEL = "Travel Disputes Committee, rules (Belgian members; one year from the complaint)"
CONSTRUCTION = "Construction Disputes Committee, rules (Belgian contractors and architects)"
CMS = "Code of Economic Law, art. XVI.5-XVI.7 (Consumer Mediation Service, residual, no age limit)"
ECC = "ECC-Net, Regulation (EU) 2021/690; ECC Belgium's rules (contact the trader first)"
AIR = "Regulation (EC) 261/2004, art. 3 and 16 (enforcement body of the departure country)"
FAVV = "Law of 4 February 2000, art. 4-5 (FAVV: every food on the Belgian market)"
FAGG = "Law of 25 March 1964, art. 12sexies; Law of 20 July 2006 (FAGG pharmacovigilance)"
PRODUCTS = "Code of Economic Law, art. IX.8; Regulation (EU) 2023/988, art. 20"
FSMA = "Law of 2 August 2002, art. 45 (FSMA, also unauthorised foreign firms)"
INSPECTION = "Code of Economic Law, art. XV.2 (Economic Inspection), Book VI, Book XIX"
NON_EU = "Code of Economic Law, art. XVI.5 (no power abroad); econsumer.gov (ICPEN); chargeback"
COURT = "Code of Economic Law, art. XVI.25 §2 (a qualified entity refuses a case before a court)"
PRIVATE = "Code of Economic Law, art. I.1 and XVI.1 (consumer disputes: consumer v. business)"
VREG = "Flemish Energy Decree of 8 May 2009, art. 3.1.3-3.1.4/1; Energy Order (budget meters)"
CWAPE = "Walloon decree of 12 April 2001, art. 48 (SRME); also the German-speaking area"
BRUGEL = "Brussels ordinances of 19 July 2001, art. 30novies, and 20 October 2006 (water)"
VLO = "Flemish decree of 7 July 1998 (Vlaamse Ombudsdienst: De Lijn, water companies)"
MEDIATEUR = "Joint decree of 3 April 2009 (Médiateur de la Wallonie: TEC, SWDE)"
OMB_BXL = "Brussels joint ordinance of 16 May 2019 (Ombudsman bruxellois: STIB)"
RENT = "Regional residential lease law (Flemish decree 2018, Walloon decree 2018, Brussels code)"
GDPR = "GDPR, art. 77; Law of 3 December 2017, art. 58-60 (Data Protection Authority)"
JEP = "JEP rules of procedure (advertising self-regulation)"
GUARANTEE = "Law of 21 November 2017 on package travel, art. 36-41 (insolvency protection)"
BAILIFF = "Judicial Code, art. 555/1 (Chamber of Judicial Officers)"
SAFEONWEB = "Royal Decree of 10 October 2014 (Centre for Cybersecurity Belgium, Safeonweb)"
POLICE = "Criminal Code, art. 496 and 504quater; Code of Criminal Procedure, art. 29 and 63"
PATIENT = "Law of 22 August 2002 on patient rights, art. 11 and 16"
MUTUAL = "Law of 6 August 1990 on health insurance funds (ombudsman services)"
TAX = "Royal Decree no. 1 on VAT, art. 22"
COSMETICS = "Regulation (EC) 1223/2009, art. 22"


@dataclass(frozen=True)
class Row:
    kind: str
    domain: str
    expected: object  # [agency, ...] | ("refused", agency, check) | ("ask", field)
    source: str
    country: str | None = "BE"
    lang: str = "nl"
    answers: dict = field(default_factory=lambda: dict(OK))
    postcode: str | None = "1000"
    incident: date | None = RECENT
    complaint: date | None = RECENT

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.domain}-{self.country}-{self.postcode}-{self.lang}"


def r(kind, domain, expected, source, **kw) -> Row:
    if "extra" in kw:
        kw["answers"] = {**OK, **kw.pop("extra")}
    return Row(kind, domain, expected, source, **kw)


LANGS = ("nl", "fr", "de", "en")
ROWS: list[Row] = []

# --- sector bodies, Belgian traders
for i, (domain, agency, src) in enumerate(
    [
        ("telecom.billing", "ombudsman-telecom", TELECOM),
        ("telecom.contract", "ombudsman-telecom", TELECOM),
        ("telecom.coverage", "ombudsman-telecom", TELECOM),
        ("energy.billing", "ombudsman-energy", ENERGY),
        ("energy.contract", "ombudsman-energy", ENERGY),
        ("energy.meter", "ombudsman-energy", ENERGY),
        ("post.parcel_lost", "ombudsman-post", POST),
        ("post.delivery", "ombudsman-post", POST),
        ("transport.rail_delay", "ombudsman-rail", RAIL),
        ("transport.rail_ticket", "ombudsman-rail", RAIL),
        ("finance.banking", "ombudsfin", OMBUDSFIN),
        ("finance.credit", "ombudsfin", OMBUDSFIN),
        ("finance.investment", "ombudsfin", OMBUDSFIN),
        ("insurance.claim", "ombudsman-insurance", INSURANCE),
        ("insurance.contract", "ombudsman-insurance", INSURANCE),
        ("legal.notary", "ombudsman-notaries", NOTARIES),
        ("legal.lawyer", "ombudsman-lawyers", LAWYERS),
        ("travel.package", "travel-disputes", TRAVEL),
        ("travel.booking", "travel-disputes", TRAVEL),
        ("construction.works", "construction-disputes", CONSTRUCTION),
        ("construction.architect", "construction-disputes", CONSTRUCTION),
        ("ecommerce.non_delivery", "consumer-mediation", CMS),
        ("ecommerce.withdrawal", "consumer-mediation", CMS),
        ("ecommerce.guarantee", "consumer-mediation", CMS),
        ("general.other", "consumer-mediation", CMS),
    ]
):
    ROWS.append(r("complaint", domain, [agency], src, lang=LANGS[i % 4]))
    ROWS.append(r("mediation", domain, [agency], src, lang=LANGS[(i + 1) % 4]))
    ROWS.append(r("question", domain, [agency], src, lang=LANGS[(i + 2) % 4], answers={}))
    # a mediator refuses a consumer who did not complain to the trader first
    ROWS.append(
        r(
            "complaint",
            domain,
            ("refused", agency, "contacted_trader"),
            src,
            extra={"contacted_trader": False},
        )
    )
    # ... and a dispute already before a court
    ROWS.append(
        r(
            "mediation",
            domain,
            ("refused", agency, "court_case_pending"),
            COURT,
            extra={"court_case_pending": True},
        )
    )

# --- time limits from the right date
for domain, agency, src in [
    ("telecom.billing", "ombudsman-telecom", TELECOM),
    ("energy.billing", "ombudsman-energy", ENERGY),
    ("travel.package", "travel-disputes", TRAVEL),
]:
    ROWS += [
        r("complaint", domain, [agency], src + " (old incident, recent complaint)", incident=OLD),
        r("complaint", domain, ("refused", agency, "within_one_year"), src, complaint=OLD),
        r("complaint", domain, ("ask", "complaint_date"), src, complaint=None),
    ]
for domain, agency, src in [
    ("finance.banking", "ombudsfin", OMBUDSFIN),
    ("ecommerce.non_delivery", "consumer-mediation", CMS),
    ("insurance.claim", "ombudsman-insurance", INSURANCE),
]:
    ROWS.append(r("complaint", domain, [agency], src, incident=OLD, complaint=OLD))
ROWS += [
    r("complaint", "telecom.billing", ("ask", "answers.contacted_trader"), TELECOM, answers={}),
    r(
        "complaint",
        "ecommerce.withdrawal",
        ("ask", "answers.court_case_pending"),
        COURT,
        answers={"contacted_trader": True, "trader_is_business": True},
    ),
]

# --- private sellers: consumer law and its mediators do not apply
ROWS += [
    r(
        "complaint",
        "ecommerce.non_delivery",
        ("refused", "consumer-mediation", "trader_is_business"),
        PRIVATE,
        extra={"trader_is_business": False},
    ),
    r(
        "mediation",
        "general.other",
        ("refused", "consumer-mediation", "trader_is_business"),
        PRIVATE,
        extra={"trader_is_business": False},
        lang="fr",
    ),
    r(
        "complaint",
        "ecommerce.guarantee",
        ("refused", "ecc-belgium", "trader_is_business"),
        PRIVATE,
        country="NL",
        extra={"trader_is_business": False},
    ),
    r(
        "complaint",
        "ecommerce.non_delivery",
        ("ask", "answers.trader_is_business"),
        PRIVATE,
        answers={"contacted_trader": True, "court_case_pending": False},
    ),
]

# --- competence first; ECC Belgium added (never instead) for a trader in another EU country
ROWS += [
    r("report", "finance.investment_fraud", ["fsma"], FSMA, country="CY"),  # CFD cold calls
    r("question", "finance.investment_fraud", ["fsma"], FSMA, country="CY", lang="fr"),
    r("report", "health.medicine_side_effect", ["fagg"], FAGG, country="DE", lang="de"),
    r("question", "health.medicine_side_effect", ["fagg"], FAGG, country="DE"),
    r("report", "health.medical_device", ["fagg"], FAGG, country="FR", lang="fr"),
    r("report", "health.illegal_medicine", ["fagg"], FAGG, country="NL"),
    r(
        "report",
        "product_safety.dangerous_product",
        ["dangerous-products"],
        PRODUCTS,
        country="FR",
        lang="fr",
    ),  # a French baby walker
    r("report", "product_safety.recall", ["dangerous-products"], PRODUCTS, country="DE"),
    r("report", "food.hygiene", ["favv"], FAVV, country="NL"),  # mouldy Dutch cheese
    r("complaint", "food.hygiene", ["favv", "ecc-belgium"], FAVV + "; " + ECC, country="NL"),
    r("complaint", "food.labelling", ["favv", "ecc-belgium"], FAVV + "; " + ECC, country="IT"),
    # FAVV needs no prior contact with the seller; only ECC does
    r("complaint", "food.hygiene", ["favv"], FAVV, country="NL", extra={"contacted_trader": False}),
    r("report", "health.cosmetics", ["fod-health"], COSMETICS, country="PL"),
    r("complaint", "energy.billing", ["ombudsman-energy"], ENERGY, country="NL"),  # Dutch supplier
    r("mediation", "energy.contract", ["ombudsman-energy"], ENERGY, country="FR", lang="fr"),
    r("complaint", "insurance.claim", ["ombudsman-insurance"], INSURANCE, country="LU", lang="fr"),
    r("complaint", "telecom.billing", ["ombudsman-telecom"], TELECOM, country="FR", lang="fr"),
    r("complaint", "finance.banking", ["ombudsfin"], OMBUDSFIN, country="NL"),
    r("complaint", "post.parcel_lost", ["ombudsman-post"], POST, country="DE", lang="de"),
    r("complaint", "ecommerce.non_delivery", ["ecc-belgium"], ECC, country="NL"),
    r("mediation", "ecommerce.withdrawal", ["ecc-belgium"], ECC, country="DE", lang="de"),
    r("question", "general.other", ["ecc-belgium"], ECC, country="ES", lang="en", answers={}),
    r(
        "complaint",
        "ecommerce.fake_webshop",
        ["ecc-belgium", "economic-inspection"],
        ECC + "; " + INSPECTION,
        country="DE",
        lang="de",
    ),
    r("complaint", "travel.package", ["ecc-belgium"], ECC + "; " + TRAVEL, country="ES"),
    r("question", "travel.booking", ["ecc-belgium"], ECC, country="ES", lang="en", answers={}),
    r("complaint", "construction.works", ["ecc-belgium"], ECC + "; " + CONSTRUCTION, country="NL"),
    r(
        "complaint",
        "ecommerce.non_delivery",
        ("refused", "ecc-belgium", "contacted_trader"),
        ECC,
        country="FR",
        extra={"contacted_trader": False},
    ),
    r("report", "ecommerce.fake_webshop", ["economic-inspection"], INSPECTION, country="NL"),
    r("report", "ecommerce.misleading_ad", ["economic-inspection"], INSPECTION, country="FR"),
    r("complaint", "ecommerce.non_delivery", ["ecc-belgium"], ECC, country="NO", lang="en"),
]

# --- flights: the departure airport decides, never the airline's seat
for domain in ("transport.flight_delay", "transport.flight_cancelled", "transport.baggage"):
    ROWS += [
        # cancelled from Charleroi by an Irish airline: FOD Mobility, and ECC for the redress
        r(
            "complaint",
            domain,
            ["fod-mobility", "ecc-belgium"],
            AIR + "; " + ECC,
            country="IE",
            extra=FROM_BE,
            lang="fr",
        ),
        r("complaint", domain, ["fod-mobility"], AIR, country="BE", extra=FROM_BE),
        r("complaint", domain, ["fod-mobility"], AIR, country="US", extra=FROM_BE, lang="en"),
        r("question", domain, ["fod-mobility"], AIR, country="IE", answers=FROM_BE),
        r("complaint", domain, ["ecc-belgium"], AIR + "; " + ECC, country="ES", extra=FROM_EU),
        r(
            "complaint",
            domain,
            ["fod-mobility", "ecc-belgium"],
            AIR + "; " + ECC,
            country="DE",
            extra=TO_BE,
            lang="de",
        ),
        r("complaint", domain, ["ecc-belgium"], AIR, country="FR", extra=NEITHER, lang="fr"),
        r("complaint", domain, ("ask", "answers.departs_from_belgium"), AIR, country="IE"),
    ]

# --- traders outside the EU: what works (chargeback, econsumer.gov, the inspection)
ROWS += [
    r(
        "complaint",
        "ecommerce.non_delivery",
        ["econsumer-gov", "economic-inspection"],
        NON_EU,
        country="US",
        lang="en",
    ),
    r(
        "complaint",
        "ecommerce.fake_webshop",
        ["econsumer-gov", "economic-inspection"],
        NON_EU + "; " + INSPECTION,
        country="CN",
    ),
    r(
        "mediation",
        "general.other",
        ["econsumer-gov", "economic-inspection"],
        NON_EU,
        country="GB",
        lang="fr",
    ),
    r(
        "complaint",
        "ecommerce.guarantee",
        ["econsumer-gov", "economic-inspection"],
        NON_EU,
        country="CH",
        lang="de",
    ),
    r("question", "ecommerce.withdrawal", ["econsumer-gov"], NON_EU, country="US", answers={}),
    r("report", "ecommerce.fake_webshop", ["economic-inspection"], INSPECTION, country="CN"),
    r("complaint", "telecom.billing", ["ombudsman-telecom"], TELECOM, country="US"),
    r(
        "report",
        "product_safety.dangerous_product",
        ["dangerous-products"],
        PRODUCTS,
        country="CN",
        lang="fr",
    ),
    r("report", "food.poisoning", ["favv"], FAVV, country="TR"),
]

# --- regions by the consumer's postal code
REGIONS = {
    "flanders": ["9000", "2000", "3000", "8000", "1500", "3500"],
    "wallonia": ["5000", "4000", "6000", "1300", "7000", "6700"],
    "german": ["4700", "4780", "4720"],
    "brussels": ["1000", "1050", "1200"],
}
REGIONAL = {
    "energy.budget_meter": {
        "flanders": ("vreg", VREG),
        "wallonia": ("cwape", CWAPE),
        "german": ("cwape", CWAPE),
        "brussels": ("brugel", BRUGEL),
    },
    "water.supply": {
        "flanders": ("vlaamse-ombudsdienst", VLO),
        "wallonia": ("mediateur-wallonie", MEDIATEUR),
        "german": ("mediateur-wallonie", MEDIATEUR),
        "brussels": ("brugel", BRUGEL),
    },
    "transport.regional": {
        "flanders": ("vlaamse-ombudsdienst", VLO),
        "wallonia": ("mediateur-wallonie", MEDIATEUR),
        "german": ("mediateur-wallonie", MEDIATEUR),
        "brussels": ("ombudsman-brussels", OMB_BXL),
    },
    "rent.deposit": {
        "flanders": ("housing-flanders", RENT),
        "wallonia": ("housing-wallonia", RENT),
        "german": ("housing-german", RENT),
        "brussels": ("housing-brussels", RENT),
    },
    "rent.lease": {
        "flanders": ("housing-flanders", RENT),
        "wallonia": ("housing-wallonia", RENT),
        "german": ("housing-german", RENT),
        "brussels": ("housing-brussels", RENT),
    },
}
LANG_OF = {"flanders": "nl", "wallonia": "fr", "german": "de", "brussels": "fr"}
for domain, bodies in REGIONAL.items():
    for region, codes in REGIONS.items():
        agency, src = bodies[region]
        for n, code in enumerate(codes[:3] if domain.startswith("rent") else codes[:4]):
            kind = ("complaint", "question")[n % 2]
            ROWS.append(
                r(
                    kind,
                    domain,
                    [agency],
                    src,
                    postcode=code,
                    lang=LANG_OF[region],
                    answers={} if kind == "question" else dict(OK),
                )
            )
    ROWS.append(r("complaint", domain, ("ask", "consumer.address.postcode"), src, postcode=None))
ROWS.append(
    r(
        "complaint",
        "energy.budget_meter",
        ("ask", "consumer.address.postcode"),
        VREG,
        postcode="75001",
    )
)  # a foreign postcode says no Belgian region

# --- bodies outside Loket (referral bodies) and the new problem areas
ROWS += [
    r("complaint", "data_protection.personal_data", ["data-protection-authority"], GDPR),
    r(
        "question",
        "data_protection.personal_data",
        ["data-protection-authority"],
        GDPR,
        lang="fr",
        answers={},
    ),
    r(
        "complaint",
        "data_protection.personal_data",
        ["data-protection-authority"],
        GDPR,
        country="US",
        lang="en",
    ),
    r("report", "advertising.offensive_ad", ["jep"], JEP),
    r("complaint", "advertising.offensive_ad", ["jep"], JEP, lang="fr"),
    r("question", "advertising.offensive_ad", ["jep"], JEP, lang="de", answers={}),
    r("complaint", "travel.bankruptcy", ["travel-guarantee-fund"], GUARANTEE),
    r("question", "travel.bankruptcy", ["travel-guarantee-fund"], GUARANTEE, lang="fr", answers={}),
    # a German organiser is protected by the German scheme: ECC Belgium helps reach it
    r("complaint", "travel.bankruptcy", ["ecc-belgium"], GUARANTEE + "; " + ECC, country="DE"),
    r("complaint", "debt_collection.bailiff", ["bailiffs-chamber"], BAILIFF),
    r("question", "debt_collection.bailiff", ["bailiffs-chamber"], BAILIFF, lang="fr", answers={}),
    r(
        "report",
        "scam.phishing",
        ["safeonweb"],
        SAFEONWEB,
        country=None,
        answers={"gave_codes_or_paid": False},
    ),
    r(
        "report",
        "scam.phishing",
        ["safeonweb", "police"],
        SAFEONWEB + "; " + POLICE,
        country=None,
        answers={"gave_codes_or_paid": True},
        lang="fr",
    ),
    r(
        "question",
        "scam.phishing",
        ["safeonweb"],
        SAFEONWEB,
        country=None,
        lang="de",
        answers={"gave_codes_or_paid": False},
    ),
    r(
        "report",
        "scam.phishing",
        ("ask", "answers.gave_codes_or_paid"),
        SAFEONWEB,
        country=None,
        answers={},
    ),
    r("report", "scam.fraud", ["police", "economic-inspection"], POLICE + "; " + INSPECTION),
    r("question", "scam.fraud", ["police"], POLICE, lang="fr", answers={}),
    r("report", "scam.fraud", ["police", "economic-inspection"], POLICE, country="CN", lang="en"),
    r("complaint", "health_care.patient_rights", ["patient-rights"], PATIENT),
    r("question", "health_care.patient_rights", ["patient-rights"], PATIENT, lang="fr", answers={}),
    r("complaint", "health_care.health_insurance", ["ombudsman-health-insurance"], MUTUAL),
    r(
        "question",
        "health_care.health_insurance",
        ["ombudsman-health-insurance"],
        MUTUAL,
        lang="de",
        answers={},
    ),
    # debt collectors: the inspection enforces Book XIX; the mediator handles the dispute
    r("report", "debt_collection.collector", ["economic-inspection"], INSPECTION),
    r(
        "complaint",
        "debt_collection.collector",
        ["consumer-mediation", "economic-inspection"],
        CMS + "; " + INSPECTION,
    ),
    r(
        "mediation",
        "debt_collection.collector",
        ["consumer-mediation", "economic-inspection"],
        CMS + "; " + INSPECTION,
        lang="fr",
    ),
    r("question", "debt_collection.collector", ["consumer-mediation"], CMS, answers={}),
    # the other inspections and reporting points
    r("report", "tax.no_receipt", ["fod-financien"], TAX),
    r("question", "tax.no_receipt", ["fod-financien"], TAX, lang="en", answers={}),
    r("report", "general.other", ["economic-inspection"], INSPECTION, lang="fr"),
    r("report", "food.poisoning", ["favv"], FAVV),
    r("complaint", "food.hygiene", ["favv"], FAVV, lang="fr", answers={}),
    r("report", "health.cosmetics", ["fod-health"], COSMETICS, lang="de"),
    r(
        "complaint",
        "ecommerce.fake_webshop",
        ["consumer-mediation", "economic-inspection"],
        CMS + "; " + INSPECTION,
    ),
    r(
        "complaint",
        "ecommerce.misleading_ad",
        ["consumer-mediation", "economic-inspection"],
        CMS + "; " + INSPECTION,
        lang="fr",
    ),
    r(
        "complaint",
        "ecommerce.fake_webshop",
        ["economic-inspection"],
        INSPECTION,
        extra={"contacted_trader": False},
    ),
]


def test_there_are_at_least_two_hundred_situations_each_with_its_source():
    assert len(ROWS) >= 200
    assert all(row.source.strip() for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[f"{i:03d}-{row.id}" for i, row in enumerate(ROWS)])
def test_situation(row: Row):
    decision = ROUTER.route(
        Situation(
            row.kind,
            row.domain,
            row.lang,
            row.country,
            row.answers,
            row.incident,
            TODAY,
            row.postcode,
            row.complaint,
        )
    )
    expected = row.expected
    if isinstance(expected, list):
        assert not decision.missing, (row.source, decision)
        assert [r.agency_id for r in decision.recipients] == expected, (row.source, decision)
        assert all(r.reason and r.basis for r in decision.recipients)
    elif expected[0] == "refused":
        _, agency, check = expected
        assert (agency, check) in [(r.agency_id, r.check) for r in decision.refusals], (
            row.source,
            decision,
        )
        refusal = next(r for r in decision.refusals if r.agency_id == agency)
        assert refusal.advice and refusal.reason
        assert agency not in [r.agency_id for r in decision.recipients]
    else:
        _, field_ = expected
        assert field_ in [m.field for m in decision.missing], (row.source, decision)
        assert all(m.question for m in decision.missing)


@pytest.mark.parametrize(
    ("postcode", "region"),
    [
        ("1000", "brussels"),
        ("1210", "brussels"),
        ("1300", "wallonia"),
        ("1500", "flanders"),
        ("3999", "flanders"),
        ("4000", "wallonia"),
        ("4700", "german"),
        ("4791", "german"),
        ("4960", "wallonia"),  # Malmedy: French-speaking
        ("7999", "wallonia"),
        ("8000", "flanders"),
        ("B-9000", "flanders"),
        ("75001", None),
        (None, None),
    ],
)
def test_the_postal_code_decides_the_region(postcode, region):
    assert region_of(postcode) == region


def test_referral_bodies_are_routed_but_not_connected():
    decision = ROUTER.route(
        Situation("report", "scam.phishing", "nl", None, {"gave_codes_or_paid": True}, None, TODAY)
    )
    assert [(r.agency_id, r.connected) for r in decision.recipients] == [
        ("safeonweb", False),
        ("police", False),
    ]
    fsma = ROUTER.route(Situation("report", "finance.investment_fraud", "nl", "CY"))
    assert [(r.agency_id, r.connected) for r in fsma.recipients] == [("fsma", True)]


def test_a_case_no_rule_matches_goes_to_operators():
    decision = Router(ROUTER.handle[:1], (), ROUTER.agencies).route(
        Situation("report", "food.poisoning", "nl", "BE")
    )
    assert decision.needs_operator


def test_reasons_are_in_the_consumers_language():
    nl = ROUTER.route(Situation("report", "food.poisoning", "nl", "BE"))
    fr = ROUTER.route(Situation("report", "food.poisoning", "fr", "BE"))
    assert "voedselagentschap" in nl.recipients[0].reason
    assert "agence alimentaire" in fr.recipients[0].reason
    assert nl.recipients[0].basis == fr.recipients[0].basis and "4 February 2000" in (
        nl.recipients[0].basis
    )
