"""Writing signature exports as JSON or CSV, streaming (exports can hold a million rows).

CSV cells are neutralized against formula injection: a spreadsheet treats a cell that
starts with ``= + - @`` (or a tab or carriage return before one) as a formula, and a signer
chooses their own name. Such cells get a leading apostrophe, and every cell is quoted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

EXPORT_COLUMNS = (
    "github_id",
    "login",
    "name",
    "email",
    "version",
    "text_sha256",
    "signed_at",
    "revoked_at",
    "revoked_by",
    "revocation_reason",
    "ip_address",
    "user_agent",
    # Provenance of imported signatures (the JSON export also has ``import_record``).
    "imported",
    "import_source",
    "import_file_sha256",
    "original_signed_at",
    "imported_at",
)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: object) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_json(rows: Iterable[dict[str, Any]], write: Callable[[str], object]) -> None:
    """A JSON array, one object per line, written as rows arrive."""
    write("[")
    first = True
    for row in rows:
        write("\n" if first else ",\n")
        write(json.dumps(row, ensure_ascii=False, sort_keys=False))
        first = False
    write("\n]\n" if not first else "]\n")


def write_csv(
    rows: Iterable[dict[str, Any]], field_names: Sequence[str], write: Callable[[str], object]
) -> None:
    """RFC 4180 CSV (CRLF, all cells quoted); custom fields become ``field_<name>`` columns."""
    header = [*EXPORT_COLUMNS, *(f"field_{name}" for name in field_names)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")

    def flush() -> None:
        write(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()

    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        custom = row.get("fields") or {}
        writer.writerow(
            [neutralize_cell(row.get(column)) for column in EXPORT_COLUMNS]
            + [neutralize_cell(custom.get(name)) for name in field_names]
        )
        if count % 1000 == 0:
            flush()
    flush()
