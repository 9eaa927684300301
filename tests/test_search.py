"""The operator's case search finds a case by what an operator has at hand."""

from hub.search import search
from tests.support.cases import file


def test_search_by_reference_email_enterprise_number_and_name(hub, sims, clock):
    a = file(hub)  # Anne Dubois, Telco SA 0403.170.701
    b = file(
        hub,
        consumer={"name": "Bram Peeters", "email": "Bram@Example.be"},
        trader={"name": "Webwinkel BV"},
        domain="ecommerce.non_delivery",
    )
    assert [h.reference for h in search(hub.db, a.reference.lower().replace("-", ""))] == [
        a.reference
    ]
    assert [h.reference for h in search(hub.db, "bram@example.be")] == [b.reference]
    assert [h.reference for h in search(hub.db, "BE 0403.170.701")] == [a.reference]
    assert [h.reference for h in search(hub.db, "webwin")] == [b.reference]
    assert {h.reference for h in search(hub.db, "")} == {a.reference, b.reference}
    [hit] = search(hub.db, "anne")
    assert (hit.consumer, hit.trader, hit.agencies) == (
        "Anne Dubois",
        "Telco SA",
        ("ombudsman-telecom",),
    )
    assert [h.reference for h in search(hub.db, "", agency="consumer-mediation")] == [b.reference]
    assert search(hub.db, "", status="resolved") == []
    assert search(hub.db, "50%_\\") == []  # wildcards typed by an operator are not wildcards
