"""Fault spec grammar and rule bookkeeping (the HTTP effects are tested in test_server_faults)."""

from __future__ import annotations

import pytest

from histo_renn_dagster.core.errors import FaultSpecError
from histo_renn_dagster.emulator.faults import FaultRule, FaultSet, parse_faults


def test_parse_full_grammar() -> None:
    rules = parse_faults(
        " 429:0@/files*2 ; drop:50000@/data;corrupt:100@/v0/data*inf;504;norange@/data"
    )
    assert rules == [
        FaultRule("429", 0, "/files", 2),
        FaultRule("drop", 50000, "/data", 1),
        FaultRule("corrupt", 100, "/data", None),
        FaultRule("504", None, "/", 1),
        FaultRule("norange", None, "/data", 1),
    ]
    assert parse_faults("") == [] and parse_faults(None) == []
    assert parse_faults("429")[0].arg == 1  # default Retry-After
    assert parse_faults("truncate")[0].arg is None  # default: half the body


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("teapot", "unknown kind"),
        ("200", "400-599"),
        ("500:3", "takes no argument"),
        ("drop:1.5", "whole number"),
        ("drop:-1", ">= 0"),
        ("429:soon", "must be a number"),
        ("500@files", "start with '/'"),
        ("500*0", "positive integer"),
        ("500*many", "positive integer"),
    ],
)
def test_bad_specs_name_the_rule(spec: str, needle: str) -> None:
    with pytest.raises(FaultSpecError, match=needle) as info:
        parse_faults(spec)
    assert spec.split("*")[0].split("@")[0] in str(info.value)


def test_rules_fire_in_order_for_their_count_then_stop() -> None:
    faults = FaultSet("429:0@/files*2;500@/files")
    fired = [faults.take("/files") for _ in range(4)]
    assert [r.kind if r else None for r in fired] == ["429", "429", "500", None]
    assert faults.pending() == []
    assert len(faults.fired) == 3


def test_routes_match_whole_segments() -> None:
    faults = FaultSet("500@/data*inf")
    assert faults.take("/database") is None
    assert faults.take("/files") is None
    assert faults.take("/data") is not None
    assert faults.take("/data/abc") is not None


def test_norange_waits_for_a_ranged_request() -> None:
    faults = FaultSet("norange@/data")
    assert faults.take("/data/x") is None
    assert faults.take("/data/x", ranged=True) is not None
    assert faults.take("/data/x", ranged=True) is None


def test_set_replaces_clear_empties_and_bad_set_keeps_old_rules() -> None:
    faults = FaultSet("500")
    with pytest.raises(FaultSpecError):
        faults.set("bogus")
    assert len(faults.pending()) == 1
    faults.set("503*3")
    assert [str(r) for r in faults.pending()] == ["503@/*3"]
    faults.add("504")
    assert len(faults.pending()) == 2
    faults.clear()
    assert faults.pending() == [] and faults.take("/x") is None
