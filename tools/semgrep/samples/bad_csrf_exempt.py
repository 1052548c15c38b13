"""Planted bug for rule csrf-exempt-outside-webhook: never imported."""

from flask import Blueprint
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
bp = Blueprint("bad", __name__)


@csrf.exempt
@bp.post("/admin/delete-everything")
def delete_everything() -> str:
    return "done"
