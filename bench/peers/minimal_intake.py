"""The intake denominator: the least a Python team would write for the same job — a Flask app that
validates the same JSON with the same marshmallow schema and inserts one row with SQLAlchemy. No
routing, no outbox, no audit, no reference drawing.

    MINIMAL_DATABASE_URL=... gunicorn -w 2 bench.peers.minimal_intake:app
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from hub.config import normalise_database_url
from hub.schemas import CaseInSchema


class Base(DeclarativeBase):
    pass


class MinimalCase(Base):
    __tablename__ = "minimal_cases"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def make_engine(url: str):
    engine = create_engine(normalise_database_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _wal(conn, _record):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def prepare(url: str) -> None:
    """Create the table once, before the server's workers start (they would race to)."""
    Base.metadata.create_all(make_engine(url))


engine = make_engine(os.environ.get("MINIMAL_DATABASE_URL", "sqlite:///var/minimal.db"))
schema = CaseInSchema()
app = Flask(__name__)


@app.post("/api/v1/cases")
def file_case():
    body = request.get_json(force=True)
    try:
        schema.load(body)
    except ValidationError as exc:
        return jsonify({"errors": exc.messages}), 422
    reference = secrets.token_hex(8)
    with Session(engine) as s, s.begin():
        s.add(MinimalCase(reference=reference, data=body, created_at=datetime.now(UTC)))
    return jsonify({"reference": reference}), 201
