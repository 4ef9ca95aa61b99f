"""The ``chain_broken`` warning from the verifier's header on a verified record."""

from __future__ import annotations

from analytics.warnings.detectors import chain_broken_warning
from analytics.warnings.model import Evidence, Severity, Warning, WarningType
from contracts.topics import parse_links
from ingest.chain_links import ChainBreak, header_value
from tests.unit.analytics.warnings.test_detectors import T0, Rules


def test_one_warning_per_link_whichever_end_carries_it() -> None:
    ten = Evidence("veh-1", 10, b"\x01" * 32, "raw:0:10")
    eleven = Evidence("veh-1", 11, b"\x02" * 32, "raw:0:11")
    a = chain_broken_warning(eleven, T0, 10, "prev is not the hash of seq 10", Rules())
    b = chain_broken_warning(ten, T0 - 1000, 10, "seq 11 names another prev", Rules())
    assert a.type is WarningType.CHAIN_BROKEN
    assert a.severity is Severity.CRITICAL
    assert a.warning_id == b.warning_id, "one event: the link 10 -> 11 of veh-1"
    assert a.detail == {"from_seq": 10, "to_seq": 11, "detail": "prev is not the hash of seq 10"}
    assert a.evidence == (eleven,)
    assert a.rule_version == "test@1"
    assert Warning.from_json(a.to_json()) == a
    other = chain_broken_warning(eleven, T0, 11, "", Rules())
    assert other.warning_id != a.warning_id


def test_the_header_round_trips_and_junk_parts_are_left_out() -> None:
    breaks = [ChainBreak("veh-1", 4, "a"), ChainBreak("veh-1", 5, "b")]
    assert header_value(breaks) == ("4->5,5->6", "a; b")
    assert parse_links("4->5,5->6") == [4, 5]
    assert parse_links("4->6,x->y,,-1->0,7->8") == [7]
