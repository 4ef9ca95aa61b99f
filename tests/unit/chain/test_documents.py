"""The document entry: one record, one canonical entry, nothing else read as one."""

from __future__ import annotations

import pytest

from chain.documents import DocumentRecord, document_entry, parse_document_entry
from chain.entries import entry_kind
from chain.errors import EncodingError

RECORD = DocumentRecord("veh-1", "doc_1", "inspection", "fleet-a", 1_767_225_600_000, "ab" * 32)


def test_an_entry_reads_back_as_its_record() -> None:
    entry = document_entry(RECORD)
    assert entry.startswith(b"roadledger/document/v1\n{")
    assert entry_kind(entry) == "document"
    assert parse_document_entry(entry) == RECORD


@pytest.mark.parametrize(
    "entry",
    [
        document_entry(RECORD).replace(b'"v":1', b'"v":2'),
        document_entry(RECORD).replace(b",", b", "),
        document_entry(RECORD) + b"\n",
        document_entry(RECORD).replace(b"ab" * 32, b"AB" * 32),
        document_entry(RECORD).replace(b'"kind":"inspection"', b'"kind":"In spection"'),
        b"roadledger/device-key/v1\n{}",
    ],
)
def test_anything_else_is_refused(entry: bytes) -> None:
    with pytest.raises(EncodingError):
        parse_document_entry(entry)
