"""Consumer-facing pages. For now the front page that tells people and developers where to go."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("web", __name__, template_folder="templates")


@bp.get("/")
def index():
    hub = current_app.extensions["loket"]
    agencies = [hub.directory[a] for a in hub.directory.ids()]
    return render_template("index.html", agencies=agencies)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}
