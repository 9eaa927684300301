"""Status and case files from the far side are hostile until read: every bad file is one
FormatError (the SFTP adapter moves it to `failed/` with the reason), never a RecursionError or
an expanded entity."""

from __future__ import annotations

import pytest

from adapters.fileformats import MAX_DEPTH, FormatError, read_case, read_records

DEEP_JSON = b"[" * 200_000 + b"]" * 200_000
RECORD = b'{"reference": "EI-1", "status": "OPEN"}'
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<statuses><status><reference>&lol2;</reference></status></statuses>"""


def _nested_xml(levels: int) -> bytes:
    return (
        b"<statuses><status>" + b"<a>" * levels + b"x" + b"</a>" * levels + b"</status></statuses>"
    )


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (DEEP_JSON, "json", "nested deeper"),
        (
            b'{"statuses": [' + b'{"a":' * (MAX_DEPTH + 5) + b"1" + b"}" * (MAX_DEPTH + 5) + b"]}",
            "json",
            "nested deeper",
        ),
        (_nested_xml(10_000), "xml", "nested deeper"),
        (BOMB, "xml", "DOCTYPE"),
        (
            BOMB.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
            .decode()
            .encode("utf-16"),
            "xml",
            "DOCTYPE",
        ),
        (b'{"statuses": [' + RECORD, "json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "json", "not valid JSON"),
        (b"<statuses><status>", "xml", "not well-formed"),
    ],
    ids=[
        "deep-json-200k",
        "deep-json-record",
        "deep-xml",
        "entity-bomb",
        "utf16-doctype",
        "partial-json",
        "not-utf8",
        "partial-xml",
    ],
)
def test_a_hostile_status_file_is_one_format_error(data: bytes, fmt: str, expected: str) -> None:
    with pytest.raises(FormatError, match=expected):
        read_records(data, fmt)


def test_a_deep_case_file_is_a_format_error_too() -> None:
    with pytest.raises(FormatError, match="nested deeper"):
        read_case(DEEP_JSON, "json")


def test_good_files_with_a_bom_or_crlf_still_read() -> None:
    assert read_records(b"\xef\xbb\xbf" + RECORD, "json") == [
        {"reference": "EI-1", "status": "OPEN"}
    ]
    xml = b'<?xml version="1.0"?>\r\n<statuses>\r\n<status><reference>EI-1</reference></status>\r\n</statuses>\r\n'
    assert read_records(xml, "xml") == [{"reference": "EI-1"}]
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><status><reference>EI-2</reference></status>'
    assert read_records(utf16.encode("utf-16"), "xml") == [{"reference": "EI-2"}]
