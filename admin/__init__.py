"""The back office (operator console, agency workspace). Empty until its issue lands."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
