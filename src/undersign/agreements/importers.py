"""Reading the signature files of the tools an organisation leaves for undersign.

Pure: bytes in, an ``ImportBatch`` out; no Flask, no database, no network. Depends on the
standard library and on three siblings: ``fields`` (the signing form's rules for names and
email addresses, so an import cannot store what the form would refuse), ``export`` (the
characters a spreadsheet reads as a formula) and ``errors``.

The formats, and the source files each was read from, are in ``docs/importing.md``. The
rules that hold for all of them:

- The file is evidence, so nothing is repaired. A row that cannot be read exactly as written
  (an id that is not a number, a date without a time zone, a login GitHub could not have
  issued, a name with text-reordering characters) is an ``ImportProblem`` of kind
  ``malformed`` with its line number, and is not among the records. A file that cannot be
  read at all (too big, not UTF-8 or UTF-16, a required column missing, not JSON) raises
  ``ImportRefused`` and yields nothing.
- A person who appears twice is kept once, at their first line; each later line is a
  ``duplicate`` problem. A signature the old tool records as revoked is a ``revoked``
  problem, never a record. Only ``malformed`` problems make a file unimportable.
- Text is data. A cell that a spreadsheet would run as a formula (``=HYPERLINK(...)``, or a
  leading ``+``, ``-``, ``@``) is kept verbatim and named in ``ImportRecord.formula_like``;
  the CSV exporter neutralises such cells when it writes them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, get_args

from undersign.agreements.errors import AgreementError
from undersign.agreements.export import FORMULA_PREFIXES
from undersign.agreements.fields import clean_email, clean_person_name

Source = Literal["cla-assistant", "cla-assistant-lite", "clahub", "csv"]
SOURCES: tuple[Source, ...] = get_args(Source)
ProblemKind = Literal["malformed", "duplicate", "revoked"]

# Generous for the largest organisations (a million-line mongoexport of cla-assistant is about
# 400 MB, so those split it), small enough that one upload cannot exhaust a worker's memory.
MAX_IMPORT_BYTES = 64 * 1024 * 1024
# A clock a little ahead of ours must not make a signature made "just now" unimportable.
CLOCK_SKEW = dt.timedelta(minutes=5)

# GitHub logins: alphanumerics and hyphens, at most 39 characters, App bots end in "[bot]".
# Old accounts may break the "no double or trailing hyphen" rule, so it is not enforced.
# The same rule as enforcement/contributors.py, which this layer may not import.
LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?")
MAX_GITHUB_ID = 2**63 - 1  # the signatures table stores ids as BIGINT

CSV_DELIMITERS = (",", ";", "\t")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"

# Ruby's Time#to_s as Rails 3 wrote it into clahub's CSV: "2014-11-06 20:40:40 UTC" or with
# a numeric offset ("2014-11-06 12:40:40 -0800") when the app ran in another zone.
RAILS_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (?:(UTC)|([+-]\d{4}))")


class ImportRefused(AgreementError, ValueError):
    """The whole file is unusable; the message says why and, where it can, where."""


@dataclass(frozen=True)
class ImportRecord:
    """One signature as the old tool recorded it, checked but not changed.

    ``github_id`` or ``login`` (or both) identify the person; a login alone must be resolved
    through GitHub before it can be stored. ``original`` is the row exactly as read (the CSV
    cells by column header, or the JSON object), for the signature's provenance.
    """

    source: Source
    line: int
    github_id: int | None
    login: str | None
    name: str | None
    email: str | None
    signed_at: dt.datetime | None
    original: dict[str, Any] = field(hash=False)
    formula_like: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportProblem:
    """A line that is not imported, and why, in words meant for the person importing."""

    line: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class ImportBatch:
    """Everything read from one file: what can be imported, what cannot, and the file's hash."""

    source: Source
    format: str
    sha256: str
    records: tuple[ImportRecord, ...]
    problems: tuple[ImportProblem, ...]

    @property
    def malformed(self) -> tuple[ImportProblem, ...]:
        return tuple(problem for problem in self.problems if problem.kind == "malformed")

    @property
    def importable(self) -> bool:
        """True when no row is malformed (duplicates and revocations are only reported)."""
        return not self.malformed


class RowProblem(ValueError):
    """Raised inside a row reader; becomes a ``malformed`` ImportProblem for that line."""


def parse(
    source: str,
    data: bytes,
    *,
    now: dt.datetime | None = None,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> ImportBatch:
    """Read ``data`` as an export of ``source`` (one of ``SOURCES``).

    Raises ``ImportRefused`` when the file as a whole cannot be read; row-level trouble is
    reported in ``ImportBatch.problems``. ``now`` (aware) bounds signing times: a signature
    from the future is malformed.
    """
    if source not in SOURCES:
        raise ImportRefused(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if len(data) > max_bytes:
        raise ImportRefused(
            f"the file is {len(data):,} bytes; the limit is {max_bytes:,} bytes "
            "(split it and import the parts one after the other)"
        )
    current = now or dt.datetime.now(dt.UTC)
    if current.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = decode(data)
    if not text.strip():
        raise ImportRefused("the file is empty")
    builder = _BatchBuilder(source, current)
    if source == "csv":
        fmt = _read_plain_csv(text, builder)
    elif source == "clahub":
        fmt = _read_clahub(text, builder)
    elif source == "cla-assistant-lite":
        fmt = _read_lite(text, builder)
    elif text.lstrip().startswith(("{", "[")):
        fmt = _read_mongoexport(text, builder)
    else:
        fmt = _read_cla_assistant_csv(text, builder)
    return ImportBatch(
        source=builder.source,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        records=tuple(builder.records),
        problems=tuple(sorted(builder.problems, key=lambda problem: problem.line)),
    )


def decode(data: bytes) -> str:
    """UTF-8 (with or without a BOM) or UTF-16 with a BOM; anything else is refused.

    Latin-1 and Windows code pages cannot be told apart from each other reliably, and a
    wrong guess changes people's names, so undecodable bytes are reported, not guessed.
    """
    if data.startswith(UTF32_BOMS):
        raise ImportRefused("the file is UTF-32; save it as UTF-8")
    if data.startswith(UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ImportRefused(f"the file starts as UTF-16 but is not: {error.reason}") from None
    else:
        if data.startswith(UTF8_BOM):
            data = data[len(UTF8_BOM) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise ImportRefused(
                f"line {line}: byte 0x{data[error.start]:02x} is not UTF-8; the file is "
                "probably Latin-1 or a Windows code page: save it as UTF-8 and import it again"
            ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportRefused(
            f"line {line}: NUL character (a UTF-16 file without its byte order mark, or a "
            "binary file); save it as UTF-8"
        )
    return text


# --- building the batch ---------------------------------------------------------------------


class _BatchBuilder:
    """Collects records and problems; keeps each person once, at their first line."""

    def __init__(self, source: Source, now: dt.datetime) -> None:
        self.source = source
        self.now = now
        self.records: list[ImportRecord] = []
        self.problems: list[ImportProblem] = []
        self._lines_by_id: dict[int, int] = {}
        self._lines_by_login: dict[str, int] = {}

    def problem(self, line: int, kind: ProblemKind, message: str) -> None:
        self.problems.append(ImportProblem(line, kind, message))

    def add(
        self,
        line: int,
        original: dict[str, Any],
        *,
        github_id: object = None,
        login: object = None,
        name: object = None,
        email: object = None,
        signed_at: dt.datetime | None = None,
        revoked_at: dt.datetime | None = None,
    ) -> None:
        """Check one row's values and keep it, or record why it is not kept."""
        try:
            record = ImportRecord(
                source=self.source,
                line=line,
                github_id=_github_id(github_id),
                login=_login(login),
                name=_optional(name, "name", clean_person_name),
                email=_optional(email, "email", lambda value: clean_email(value, required=False)),
                signed_at=signed_at,
                original=original,
                formula_like=_formula_like(original),
            )
        except RowProblem as error:
            self.problem(line, "malformed", str(error))
            return
        if record.github_id is None and record.login is None:
            self.problem(line, "malformed", "neither a GitHub id nor a login")
            return
        if signed_at is not None and signed_at > self.now + CLOCK_SKEW:
            self.problem(line, "malformed", f"signed in the future ({signed_at.isoformat()})")
            return
        if revoked_at is not None:
            self.problem(
                line,
                "revoked",
                f"{_who(record)}: the signature was revoked on {revoked_at.isoformat()}; "
                "not imported",
            )
            return
        first = self._first_line(record)
        if first is not None:
            self.problem(
                line, "duplicate", f"{_who(record)} already appears on line {first}; not imported"
            )
            return
        if record.github_id is not None:
            self._lines_by_id[record.github_id] = line
        if record.login is not None:
            self._lines_by_login.setdefault(record.login.lower(), line)
        self.records.append(record)

    def _first_line(self, record: ImportRecord) -> int | None:
        # An id is the person; a login is only the person when no id is known, because a
        # login freed by a rename can be taken by someone else.
        if record.github_id is not None:
            return self._lines_by_id.get(record.github_id)
        return self._lines_by_login.get((record.login or "").lower())


def _who(record: ImportRecord) -> str:
    if record.github_id is not None:
        return f"GitHub id {record.github_id}" + (f" ({record.login})" if record.login else "")
    return f"login {record.login}"


def _github_id(value: object) -> int | None:
    """A positive integer, as a JSON number or as digits; ``12.0`` or ``1e3`` are not ids."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowProblem(f"GitHub id {value!r} is not a number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise RowProblem(f"GitHub id {_show(value)} is not a whole number")
    if not 0 < number <= MAX_GITHUB_ID:
        raise RowProblem(f"GitHub id {number} is out of range")
    return number


def _login(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or LOGIN_RE.fullmatch(value) is None:
        raise RowProblem(f"{_show(value)} is not a GitHub login")
    return value


def _optional(value: object, label: str, clean: Callable[[str], str]) -> str | None:
    """Clean with the signing form's own rule; blank is None, anything refused is a problem."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise RowProblem(f"{label} {_show(value)} is not text")
    try:
        return clean(value) or None
    except ValueError as error:
        raise RowProblem(f"{label} {_show(value)}: {error}") from None


def _formula_like(original: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        key
        for key, value in original.items()
        if isinstance(value, str) and value.startswith(FORMULA_PREFIXES)
    )


def _show(value: object) -> str:
    """A value for a message: quoted, control characters visible, never overlong."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- dates ----------------------------------------------------------------------------------


def parse_iso_datetime(value: object) -> dt.datetime | None:
    """An ISO 8601 time with its zone (``Z`` or ``+01:00``), in UTC; blank is None.

    A time without a zone is refused: reading it as UTC would be a guess that can move a
    signature across a day (and across an agreement version's publication).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowProblem(f"date {_show(value)} is not text")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowProblem(f"date {_show(value)} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise RowProblem(f"date {_show(value)} has no time zone (add Z or an offset)")
    return moment.astimezone(dt.UTC)


def parse_rails_time(value: object) -> dt.datetime | None:
    """clahub's ``2014-11-06 20:40:40 UTC`` (or ``-0800``), in UTC; blank is None."""
    if value is None or value == "":
        return None
    match = RAILS_TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise RowProblem(f"date {_show(value)} is not a time like 2014-11-06 20:40:40 UTC")
    day, time, utc, offset = match.groups()
    try:
        moment = dt.datetime.fromisoformat(f"{day}T{time}{'+00:00' if utc else offset}")
    except ValueError:
        raise RowProblem(f"date {_show(value)} does not exist") from None
    return moment.astimezone(dt.UTC)


def parse_mongo_date(value: object) -> dt.datetime | None:
    """A ``Date`` as mongoexport writes it; blank or null is None.

    Relaxed extended JSON (the default since MongoDB 4.2) and the legacy format write
    ``{"$date": "2019-05-14T09:12:33.123Z"}``; canonical mode and dates before 1970 write
    ``{"$date": {"$numberLong": "<milliseconds>"}}``. A plain ISO string (a Mongoose
    ``toJSON``) is accepted too.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_iso_datetime(value)
    if isinstance(value, dict) and set(value) == {"$date"}:
        inner = value["$date"]
        if isinstance(inner, str):
            return parse_iso_datetime(inner)
        if isinstance(inner, dict) and set(inner) == {"$numberLong"}:
            inner = inner["$numberLong"]
            if isinstance(inner, str) and re.fullmatch(r"-?\d{1,15}", inner):
                inner = int(inner)
        if isinstance(inner, int) and not isinstance(inner, bool):
            try:
                return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=inner)
            except OverflowError:
                pass
    raise RowProblem(f"date {_show(value)} is not a MongoDB date")


# --- CSV ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """A CSV file's header (as written, de-duplicated) and its rows with their first line."""

    delimiter: str
    header: tuple[str, ...]
    rows: Iterator[tuple[int, list[str]]]

    def column(self, *names: str) -> str | None:
        """The header as written for the first of ``names`` present (case-insensitive)."""
        lowered: dict[str, str] = {}
        for column in self.header:
            lowered.setdefault(column.strip().lower(), column)  # the first of "Email", "email"
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        return None


def _open_table(text: str, required: Sequence[Sequence[str]], what: str) -> _Table:
    """Find the delimiter for which the header has every required column.

    ``required`` lists alternatives: each inner sequence needs one of its names. The tools
    disagree (cla-assistant's Angular client writes ``;``, spreadsheets re-save with ``,`` or
    tabs), so the header decides, never the data.
    """
    best: tuple[str, ...] = ()
    for delimiter in CSV_DELIMITERS:
        header = _first_row(text, delimiter)
        if len(header) > len(best):
            best = header
        lowered = {column.strip().lower() for column in header}
        if all(any(name.lower() in lowered for name in names) for names in required):
            return _Table(delimiter, _unique(header), _rows(text, delimiter))
    wanted = " and ".join(" or ".join(repr(name) for name in names) for names in required)
    found = ", ".join(repr(column) for column in best) or "nothing"
    raise ImportRefused(f"line 1: not {what}: the header needs {wanted}; it has {found}")


def _reader(text: str, delimiter: str) -> Any:
    # strict: a stray quote is an error rather than a cell silently glued to the next one.
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)


def _first_row(text: str, delimiter: str) -> tuple[str, ...]:
    try:
        for row in _reader(text, delimiter):
            if any(cell.strip() for cell in row):
                return tuple(row)
    except csv.Error:
        return ()
    return ()


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Data rows after the header, each with the line it starts on; blank lines skipped."""
    reader = _reader(text, delimiter)
    seen_header = False
    previous_end = 0
    try:
        for row in reader:
            start, previous_end = previous_end + 1, reader.line_num
            blank = not any(cell.strip() for cell in row)
            if not seen_header:
                # The same rule as _first_row: the header is the first row with a name in it.
                seen_header = not blank
                continue
            if blank and len(row) <= 1:
                continue  # an empty line carries no row; ",,," does, and is reported
            yield start, row
    except csv.Error as error:
        # The row that failed starts after the last one read (an unclosed quote runs to the
        # end of the file, so reader.line_num would point at the last line).
        raise ImportRefused(f"line {previous_end + 1}: unreadable CSV: {error}") from None


def _unique(header: Sequence[str]) -> tuple[str, ...]:
    """Header names as written; a repeated name gets " (2)", " (3)" so no cell is lost."""
    counts: dict[str, int] = {}
    names = []
    for column in header:
        counts[column] = counts.get(column, 0) + 1
        names.append(column if counts[column] == 1 else f"{column} ({counts[column]})")
    return tuple(names)


def _cells(table: _Table) -> Iterator[tuple[int, dict[str, str] | str]]:
    """Each row as {header: cell}, or a message when its cell count differs from the header's."""
    for line, row in table.rows:
        if len(row) != len(table.header):
            yield line, f"{len(row)} cells where the header has {len(table.header)}"
        else:
            yield line, dict(zip(table.header, row, strict=True))


def _get(row: Mapping[str, str], column: str | None) -> str | None:
    return row.get(column) if column is not None else None


def _read_plain_csv(text: str, builder: _BatchBuilder) -> str:
    table = _open_table(text, [("github_id", "login")], "an undersign import CSV")
    github_id, login = table.column("github_id"), table.column("login")
    name, email, signed_at = table.column("name"), table.column("email"), table.column("signed_at")
    for line, row in _cells(table):
        if isinstance(row, str):
            builder.problem(line, "malformed", row)
            continue
        try:
            when = parse_iso_datetime(_get(row, signed_at))
        except RowProblem as error:
            builder.problem(line, "malformed", str(error))
            continue
        builder.add(
            line,
            dict(row),
            github_id=_get(row, github_id),
            login=_get(row, login),
            name=_get(row, name),
            email=_get(row, email),
            signed_at=when,
        )
    return "csv"


def _read_cla_assistant_csv(text: str, builder: _BatchBuilder) -> str:
    # Columns: src/client/controller/settings.js (csvHeader) and the Angular report modal;
    # "User Name" is the login (signature.user), "Signed At" the stored created_at, sent to
    # the browser as JSON and so written as ISO 8601 in UTC.
    table = _open_table(text, [("User Name",), ("Signed At",)], "a cla-assistant CSV export")
    login, signed_at = table.column("User Name"), table.column("Signed At")
    for line, row in _cells(table):
        if isinstance(row, str):
            builder.problem(line, "malformed", row)
            continue
        try:
            when = parse_iso_datetime(_get(row, signed_at))
        except RowProblem as error:
            builder.problem(line, "malformed", str(error))
            continue
        builder.add(line, dict(row), login=_get(row, login), signed_at=when)
    return "cla-assistant-csv"


def _read_clahub(text: str, builder: _BatchBuilder) -> str:
    table = _open_table(
        text,
        [("GitHub username",), ("Signature time", "Date Signed")],
        "a clahub CSV export",
    )
    login = table.column("GitHub username")
    if table.column("Date Signed") is not None:
        # The 2026 rewrite (src/lib/export-csv.ts): ISO times, the GitHub email, revocations.
        fmt, read_time = "clahub-csv", parse_iso_datetime
        signed_at, name, email = (
            table.column("Date Signed"),
            table.column("Name"),
            table.column("Email"),
        )
        revoked_at = table.column("Revoked At")
    else:
        # The Rails app (app/presenters/agreement_csv_presenter.rb): Ruby times, no email.
        fmt, read_time = "clahub-rails-csv", parse_rails_time
        signed_at = table.column("Signature time")
        name = table.column("GitHub Profile name", "Name")
        email = revoked_at = None
    for line, row in _cells(table):
        if isinstance(row, str):
            builder.problem(line, "malformed", row)
            continue
        try:
            when = read_time(_get(row, signed_at))
            revoked = parse_iso_datetime(_get(row, revoked_at))
        except RowProblem as error:
            builder.problem(line, "malformed", str(error))
            continue
        builder.add(
            line,
            dict(row),
            login=_get(row, login),
            name=_get(row, name),
            email=_get(row, email),
            signed_at=when,
            revoked_at=revoked,
        )
    return fmt


# --- JSON -----------------------------------------------------------------------------------


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: ``{"id": 1, "id": 2}`` has no single meaning."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_no_constant)


def _json_value(text: str, position: int) -> tuple[Any, int]:
    """One JSON value at ``position`` (after whitespace), and the position after it."""
    position = _skip_space(text, position)
    try:
        return _DECODER.raw_decode(text, position)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _read_mongoexport(text: str, builder: _BatchBuilder) -> str:
    # Field names: the Mongoose schema in src/server/documents/cla.js (collection "clas").
    if text.lstrip().startswith("["):
        raise ImportRefused(
            "line 1: this is a JSON array (mongoexport --jsonArray); export one document per "
            "line instead (mongoexport without --jsonArray)"
        )
    # Split on "\n" only: str.splitlines() would also split inside a JSON string holding a
    # raw U+2028 or form feed, and report the wrong lines.
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            document, end = _json_value(raw, 0)
            if _skip_space(raw, end) != len(raw):
                raise ValueError("text after the JSON object")
        except json.JSONDecodeError as error:
            builder.problem(number, "malformed", f"not JSON: {error.msg} at column {error.colno}")
            continue
        except ValueError as error:
            builder.problem(number, "malformed", f"not JSON: {error}")
            continue
        if not isinstance(document, dict):
            builder.problem(number, "malformed", "not a JSON object")
            continue
        try:
            signed_at = parse_mongo_date(document.get("created_at"))
            revoked_at = parse_mongo_date(document.get("revoked_at"))
        except RowProblem as error:
            builder.problem(number, "malformed", str(error))
            continue
        builder.add(
            number,
            document,
            github_id=document.get("userId"),
            login=document.get("user"),
            signed_at=signed_at,
            revoked_at=revoked_at,
        )
    return "cla-assistant-mongoexport"


def _read_lite(text: str, builder: _BatchBuilder) -> str:
    """``{"signedContributors": [...]}``, each entry on the line where it starts.

    Written by src/persistence/persistence.ts (JSON.stringify with an indent); the entry
    fields come from src/pullrequest/signatureComment.ts: ``name`` is the commenter's login.
    """
    try:
        entries = _lite_entries(text)
    except ValueError as error:
        raise ImportRefused(f"not a CLA Assistant Lite signatures file: {error}") from None
    counted_to, line = 0, 1
    for position, entry in entries:
        # Entries come in file order: count only the newlines since the previous one.
        line += text.count("\n", counted_to, position)
        counted_to = position
        if not isinstance(entry, dict):
            builder.problem(line, "malformed", "an entry that is not a JSON object")
            continue
        try:
            signed_at = parse_iso_datetime(entry.get("created_at"))
            github_id = _json_integer(entry.get("id"))
        except RowProblem as error:
            builder.problem(line, "malformed", str(error))
            continue
        builder.add(
            line,
            entry,
            github_id=github_id,
            login=entry.get("name"),
            signed_at=signed_at,
        )
    return "cla-assistant-lite-json"


def _json_integer(value: object) -> object:
    """Lite writes ids as JSON numbers; digits in a string are not what it wrote."""
    if isinstance(value, str) and value:
        raise RowProblem(f"id {_show(value)} is a string; Lite writes ids as numbers")
    return value


def _lite_entries(text: str) -> list[tuple[int, Any]]:
    """Walk the top-level object by hand so each entry keeps its offset in the file."""
    position = _skip_space(text, 0)
    if not text.startswith("{", position):
        raise ValueError("line 1: expected a JSON object")
    position = _skip_space(text, position + 1)
    entries: list[tuple[int, Any]] | None = None
    seen: set[str] = set()
    while not text.startswith("}", position):
        if seen:
            if not text.startswith(",", position):
                raise ValueError(f"line {_line_at(text, position)}: expected ',' or '}}'")
            position = _skip_space(text, position + 1)
        key, position = _json_value(text, position)
        if not isinstance(key, str):
            raise ValueError(f"line {_line_at(text, position)}: expected a key")
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen.add(key)
        position = _skip_space(text, position)
        if not text.startswith(":", position):
            raise ValueError(f"line {_line_at(text, position)}: expected ':'")
        if key == "signedContributors":
            entries, position = _array_items(text, position + 1)
        else:
            _, position = _json_value(text, position + 1)
        position = _skip_space(text, position)
    if _skip_space(text, position + 1) != len(text):
        raise ValueError(f"line {_line_at(text, position + 1)}: text after the JSON object")
    if entries is None:
        raise ValueError('no "signedContributors" list')
    return entries


def _array_items(text: str, position: int) -> tuple[list[tuple[int, Any]], int]:
    position = _skip_space(text, position)
    if not text.startswith("[", position):
        raise ValueError(f'line {_line_at(text, position)}: "signedContributors" is not a list')
    position = _skip_space(text, position + 1)
    items: list[tuple[int, Any]] = []
    while not text.startswith("]", position):
        if items:
            if not text.startswith(",", position):
                raise ValueError(f"line {_line_at(text, position)}: expected ',' or ']'")
            position = _skip_space(text, position + 1)
        start = position
        try:
            value, position = _json_value(text, position)
        except ValueError as error:
            raise ValueError(f"line {_line_at(text, start)}: {error}") from None
        items.append((start, value))
        position = _skip_space(text, position)
    return items, position + 1
