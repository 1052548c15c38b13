"""Planted bug for rule private-name-from-another-module: never imported."""

import undersign.emulator.rest as emulator_rest
from undersign.emulator import rest
from undersign.enforcement.report import _mention
from undersign.github.client import _json_object as json_object


def handler() -> object:
    return rest._state(), emulator_rest._json_body(), _mention, json_object
