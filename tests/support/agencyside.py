"""Shared test helpers: a case for the hosted-workspace body and the agency API's credentials."""

from __future__ import annotations

import base64

from hub import agencyclients, intake
from hub.schemas import CaseInSchema
from tests.support.cases import CASE

WORKSPACE = "mediateur-wallonie"  # the demo body connected through the hosted workspace
OTHER = "ombudsman-telecom"

# A disputed water bill in Namur, filed in French: the Médiateur de la Wallonie handles it.
WATER_CASE = {
    **CASE,
    "domain": "water.supply",
    "language": "fr",
    "description": "La SWDE me facture 1 240 € pour une fuite après compteur que j'ai réparée.",
    "amount": 1240.0,
    "consumer": {
        "name": "Julie Lambert",
        "email": "julie@example.be",
        "address": {
            "street": "Rue de Fer 12",
            "postcode": "5000",
            "city": "Namur",
            "country": "BE",
        },
    },
    "trader": {"name": "SWDE", "enterprise_number": "0403.170.701"},
    "answers": {},
}


def file_water_case(hub, **changes):
    data = CaseInSchema().load({**WATER_CASE, **changes})
    return intake.file_case(
        hub.db, data, router=hub.router, directory=hub.directory, clock=hub.clock, random=hub.random
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def get_token(client, creds: agencyclients.Credentials) -> str:
    answer = client.post(
        "/api/v1/agency/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(creds.client_id, creds.client_secret),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
