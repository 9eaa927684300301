"""Who may read the web app's /metrics: it names every agency with its queue, dead letters and
breakers, so only a scraper holding LOKET_METRICS_TOKEN; without a token configured the
endpoint does not exist."""

from __future__ import annotations

from dataclasses import replace

from hub.config import Settings
from loket.app import create_app


def test_without_a_configured_token_metrics_do_not_exist(client):
    assert client.get("/metrics").status_code == 404
    answer = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 404 and "loket_" not in answer.get_data(as_text=True)


def test_metrics_need_the_bearer_token_from_the_settings(hub):
    app = create_app(hub=replace(hub, settings=replace(hub.settings, metrics_token="s3cr3t-t0k3n")))
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cr3t-t0k3n"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "loket_queue_depth" not in refused.get_data(as_text=True)
        assert "LOKET_METRICS_TOKEN" in refused.get_json(force=True)["detail"]
    served = client.get("/metrics", headers={"Authorization": "Bearer s3cr3t-t0k3n"})
    assert served.status_code == 200 and "loket_queue_depth" in served.get_data(as_text=True)


def test_the_token_is_read_from_the_environment_and_never_shown():
    settings = Settings.from_env({"LOKET_METRICS_TOKEN": "s3cr3t-t0k3n"})
    assert settings.metrics_token == "s3cr3t-t0k3n" and "s3cr3t" not in repr(settings)
    assert Settings.from_env({}).metrics_token is None
