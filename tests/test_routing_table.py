"""Forty-odd consumer situations and where the front desk sends each (or why it cannot yet).

Each row: kind, domain, trader country, language, answers to the pre-checks, incident date →
the recipient list, or the refusal (agency and check), or the question still to ask.
"""

from datetime import date

import pytest

from hub.config import ROOT
from hub.routing import Router, Situation
from mappings import AGENCIES_DIR
from mappings.engine import load_all

ROUTER = Router.from_file(ROOT / "mappings" / "routing.yaml", load_all(AGENCIES_DIR, env={}))
TODAY = date(2026, 11, 27)
YES = {"contacted_trader": True}
NO = {"contacted_trader": False}
RECENT, OLD = date(2026, 10, 1), date(2025, 6, 1)

# (kind, domain, trader country, language, answers, incident date) -> expected
SITUATIONS = [
    # --- sector ombudsman services (mediation / complaint / question)
    (("complaint", "telecom.billing", "BE", "fr", YES, RECENT), ["ombudsman-telecom"]),
    (("mediation", "telecom.contract", "BE", "nl", YES, RECENT), ["ombudsman-telecom"]),
    (("question", "telecom.coverage", "BE", "de", {}, None), ["ombudsman-telecom"]),
    (
        ("complaint", "telecom.billing", "BE", "nl", NO, RECENT),
        ("refused", "ombudsman-telecom", "contacted_trader"),
    ),
    (
        ("complaint", "telecom.billing", "BE", "nl", YES, OLD),
        ("refused", "ombudsman-telecom", "within_one_year"),
    ),
    (("complaint", "telecom.billing", "BE", "nl", {}, RECENT), ("ask", "answers.contacted_trader")),
    (("complaint", "telecom.billing", "BE", "nl", YES, None), ("ask", "incident_date")),
    (("complaint", "energy.billing", "BE", "nl", YES, RECENT), ["ombudsman-energy"]),
    (
        ("mediation", "energy.meter", "BE", "fr", YES, OLD),
        ("refused", "ombudsman-energy", "within_one_year"),
    ),
    (("question", "energy.contract", "BE", "en", {}, None), ["ombudsman-energy"]),
    (("complaint", "post.parcel_lost", "BE", "nl", YES, RECENT), ["ombudsman-post"]),
    (
        ("mediation", "post.delivery", "BE", "fr", NO, RECENT),
        ("refused", "ombudsman-post", "contacted_trader"),
    ),
    (("complaint", "transport.rail_delay", "BE", "nl", YES, RECENT), ["ombudsman-rail"]),
    (("question", "transport.rail_ticket", "BE", "de", {}, None), ["ombudsman-rail"]),
    (("complaint", "finance.banking", "BE", "fr", YES, RECENT), ["ombudsfin"]),
    (("mediation", "finance.credit", "BE", "nl", YES, RECENT), ["ombudsfin"]),
    (("complaint", "insurance.claim", "BE", "nl", YES, RECENT), ["ombudsman-insurance"]),
    (("complaint", "legal.notary", "BE", "fr", YES, RECENT), ["ombudsman-notaries"]),
    (("complaint", "legal.lawyer", "BE", "nl", YES, RECENT), ["ombudsman-lawyers"]),
    (("mediation", "travel.package", "BE", "nl", YES, RECENT), ["travel-disputes"]),
    (("complaint", "construction.works", "BE", "fr", YES, RECENT), ["construction-disputes"]),
    # --- air passengers: the regulator, not a mediator
    (("complaint", "transport.flight_delay", "BE", "nl", YES, RECENT), ["fod-mobility"]),
    (("question", "transport.baggage", "BE", "en", {}, None), ["fod-mobility"]),
    # --- residual mediation: no sector ombudsman
    (("complaint", "ecommerce.non_delivery", "BE", "nl", YES, RECENT), ["consumer-mediation"]),
    (("mediation", "ecommerce.withdrawal", "BE", "fr", YES, RECENT), ["consumer-mediation"]),
    (
        ("complaint", "ecommerce.guarantee", "BE", "de", NO, RECENT),
        ("refused", "consumer-mediation", "contacted_trader"),
    ),
    (("question", "general.other", "BE", "en", {}, None), ["consumer-mediation"]),
    # --- fan-out: a complaint about an unfair practice also reaches the inspection
    (
        ("complaint", "ecommerce.fake_webshop", "BE", "nl", YES, RECENT),
        ["consumer-mediation", "economic-inspection"],
    ),
    (
        ("complaint", "ecommerce.misleading_ad", "BE", "fr", YES, RECENT),
        ["consumer-mediation", "economic-inspection"],
    ),
    (("complaint", "ecommerce.fake_webshop", "BE", "nl", NO, RECENT), ["economic-inspection"]),
    # --- cross-border traders: ECC Belgium (and the inspection still hears of a fake webshop)
    (("complaint", "ecommerce.non_delivery", "NL", "nl", YES, RECENT), ["ecc-belgium"]),
    (
        ("complaint", "ecommerce.fake_webshop", "DE", "de", YES, RECENT),
        ["ecc-belgium", "economic-inspection"],
    ),
    (("mediation", "telecom.billing", "FR", "fr", YES, RECENT), ["ecc-belgium"]),
    (("question", "travel.booking", "ES", "en", {}, None), ["ecc-belgium"]),
    (
        ("complaint", "ecommerce.non_delivery", "US", "en", YES, RECENT),
        ["consumer-mediation"],
    ),  # outside the EU: no ECC
    # --- reports to the competent inspection or regulator (no pre-checks)
    (("report", "ecommerce.fake_webshop", "BE", "nl", {}, None), ["economic-inspection"]),
    (("report", "ecommerce.fake_webshop", "NL", "nl", {}, None), ["economic-inspection"]),
    (("report", "general.other", "BE", "fr", {}, None), ["economic-inspection"]),
    (("report", "food.poisoning", "BE", "nl", {}, None), ["favv"]),
    (("complaint", "food.hygiene", "BE", "fr", {}, None), ["favv"]),
    (("report", "health.medicine_side_effect", "BE", "nl", {}, None), ["fagg"]),
    (("report", "health.illegal_medicine", "BE", "fr", {}, None), ["fagg"]),
    (("report", "health.cosmetics", "BE", "de", {}, None), ["fod-health"]),
    (("report", "finance.investment_fraud", "BE", "nl", {}, None), ["fsma"]),
    (("report", "product_safety.dangerous_product", "BE", "fr", {}, None), ["dangerous-products"]),
    (("report", "tax.no_receipt", "BE", "nl", {}, None), ["fod-financien"]),
    (("question", "tax.no_receipt", "BE", "en", {}, None), ["fod-financien"]),
]


def _id(row):
    (kind, domain, country, lang, answers, _), _ = row
    return f"{kind}-{domain}-{country}-{lang}-{'yes' if answers == YES else 'no' if answers == NO else 'none'}"


def test_there_are_at_least_forty_situations():
    assert len(SITUATIONS) >= 40


@pytest.mark.parametrize(("situation", "expected"), SITUATIONS, ids=[_id(r) for r in SITUATIONS])
def test_situation(situation, expected):
    kind, domain, country, lang, answers, incident = situation
    decision = ROUTER.route(Situation(kind, domain, lang, country, answers, incident, TODAY))
    if isinstance(expected, list):
        assert [r.agency_id for r in decision.recipients] == expected, decision
        assert all(r.reason for r in decision.recipients)
    elif expected[0] == "refused":
        _, agency, check = expected
        assert (agency, check) in [(r.agency_id, r.check) for r in decision.refusals], decision
        refusal = next(r for r in decision.refusals if r.agency_id == agency)
        assert refusal.advice and refusal.reason
        assert agency not in [r.agency_id for r in decision.recipients]
    else:
        _, field = expected
        assert field in [m.field for m in decision.missing], decision
        assert all(m.question for m in decision.missing)


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
