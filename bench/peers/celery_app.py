"""The delivery peer a Python team would pick instead: Celery 5 on RabbitMQ, a task that posts the
case, `task_acks_late=True` so that it too promises at-least-once delivery."""

from __future__ import annotations

import os

import requests
from celery import Celery

app = Celery(
    "loket_bench", broker=os.environ.get("BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="loket-bench",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_session: requests.Session | None = None


@app.task(name="post_case")
def post_case(url: str, payload: dict, key: str) -> str:
    global _session
    if _session is None:
        _session = requests.Session()
    response = _session.post(url, json=payload, headers={"Idempotency-Key": key}, timeout=(3, 10))
    response.raise_for_status()
    return response.json()["id"]
