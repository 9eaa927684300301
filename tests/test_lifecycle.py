"""The status machine, the consumer's one status from many agencies, and the answer clock."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from hub import lifecycle
from hub.config import CONTRACTS_DIR
from hub.models import Assignment

VOCAB = yaml.safe_load((CONTRACTS_DIR / "statuses.yaml").read_text())
STATUSES = list(VOCAB["statuses"])
PRECEDENCE = VOCAB["aggregate"]["precedence"]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(STATUSES, STATUSES)))
def test_every_pair_of_states_aggregates_by_the_written_rule(a, b):
    """contracts/statuses.yaml: map each through consumer_sees, take the first in precedence."""
    result = lifecycle.aggregate([a, b])
    seen = [lifecycle.consumer_sees(a), lifecycle.consumer_sees(b)]
    assert result == min(seen, key=PRECEDENCE.index)
    assert result == lifecycle.aggregate([b, a])  # order of the lines does not matter
    assert result in seen  # the case never shows a status none of its lines has
    assert result != "undeliverable"  # the consumer sees "being forwarded" instead


@pytest.mark.parametrize(
    ("lines", "shown"),
    [
        # the consumer must act: that comes first, whatever else is going on
        (["resolved", "waiting_for_consumer"], "waiting_for_consumer"),
        (["queued", "waiting_for_consumer"], "waiting_for_consumer"),
        # otherwise the least advanced open line is the honest answer
        (["resolved", "in_progress"], "in_progress"),
        (["received", "in_progress"], "received"),
        (["sent", "resolved"], "sent"),
        (["undeliverable", "in_progress"], "queued"),
        # a referred line gives way to the line it was referred to
        (["referred", "queued"], "queued"),
        (["referred", "resolved"], "resolved"),
        (["not_competent", "received"], "received"),
        # all closed: the best end state
        (["resolved", "closed_no_individual_follow_up"], "resolved"),
        (["closed_no_individual_follow_up", "referred"], "closed_no_individual_follow_up"),
        (["withdrawn", "withdrawn"], "withdrawn"),
        ([], "queued"),
    ],
)
def test_what_a_consumer_sees_for_typical_fan_outs(lines, shown):
    assert lifecycle.aggregate(lines) == shown


def test_every_status_can_be_left_or_is_an_end():
    for status in STATUSES:
        targets = VOCAB["transitions"][status]
        assert targets or lifecycle.is_terminal(status), status
    assert lifecycle.can_move("in_progress", "waiting_for_consumer")
    assert lifecycle.can_move("waiting_for_consumer", "in_progress")
    assert not lifecycle.can_move("resolved", "queued")
    assert lifecycle.can_move("not_competent", "referred")


T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def line(status="in_progress", **kw) -> Assignment:
    return Assignment(
        agency_id="x",
        status=status,
        paused_seconds=0,
        answer_due_at=kw.pop("answer_due_at", T0 + timedelta(days=30)),
        acknowledge_due_at=kw.pop("acknowledge_due_at", T0 + timedelta(days=3)),
        **kw,
    )


def test_the_answer_clock_pauses_while_the_agency_waits_for_the_consumer():
    a = line()
    a.status = "waiting_for_consumer"
    lifecycle._clock(a, "in_progress", "waiting_for_consumer", T0 + timedelta(days=10))
    assert a.paused_at == T0 + timedelta(days=10)
    assert not lifecycle.is_past_due(a, T0 + timedelta(days=45))  # paused: never late
    a.status = "in_progress"
    lifecycle._clock(a, "waiting_for_consumer", "in_progress", T0 + timedelta(days=17))
    assert a.paused_at is None and a.paused_seconds == 7 * 86400
    assert a.answer_due_at == T0 + timedelta(days=37)  # moved by the seven days it stood still
    assert not lifecycle.is_past_due(a, T0 + timedelta(days=36))
    assert lifecycle.is_past_due(a, T0 + timedelta(days=38))


def test_past_due_covers_a_missed_acknowledgement_and_ends_with_the_case():
    waiting_for_ack = line(status="sent")
    assert lifecycle.is_past_due(waiting_for_ack, T0 + timedelta(days=4))
    acknowledged = line(status="received")
    assert not lifecycle.is_past_due(acknowledged, T0 + timedelta(days=4))
    assert not lifecycle.is_past_due(line(status="resolved"), T0 + timedelta(days=400))


@pytest.mark.parametrize(
    ("lines", "shown"),
    [
        # the mediation resolved; the inspection it informed never answers: the case is resolved
        ([("resolved", "handle", False), ("sent", "inform", False)], "resolved"),
        ([("in_progress", "handle", False), ("queued", "inform", False)], "in_progress"),
        # an informed line waiting or late does not make the consumer act
        ([("received", "handle", False), ("waiting_for_consumer", "inform", False)], "received"),
        # a case with only informed lines (a report) is told by them
        ([("closed_no_individual_follow_up", "inform", False)], "closed_no_individual_follow_up"),
        ([("sent", "handle", False)], "sent"),
        # the consumer answered: the service handles it until it asks again
        ([("waiting_for_consumer", "handle", True)], "in_progress"),
        ([("waiting_for_consumer", "handle", False)], "waiting_for_consumer"),
        # another service still waits for an answer: the consumer must still act
        (
            [("waiting_for_consumer", "handle", True), ("waiting_for_consumer", "handle", False)],
            "waiting_for_consumer",
        ),
    ],
)
def test_the_lines_that_answer_the_consumer_make_the_case_status(lines, shown):
    """docs/statuses.md: inform-only lines never hold the case's status; an answered request
    shows as handled."""
    assert lifecycle.case_status(lines) == shown


def test_a_reply_answers_the_latest_request_only():
    # (line, event id, actor, kind, to_status)
    asked = (1, 10, "agency", "agency_status", "waiting_for_consumer")
    replied = (1, 11, "consumer", "consumer_reply", None)
    asked_again = (1, 12, "agency", "agency_status", "waiting_for_consumer")
    late_note = (1, 13, "agency", "agency_note", "waiting_for_consumer")
    assert lifecycle.answered_lines([asked]) == set()
    assert lifecycle.answered_lines([asked, replied]) == {1}
    assert lifecycle.answered_lines([asked, replied, late_note]) == {1}  # a stale repeat
    assert lifecycle.answered_lines([asked, replied, asked_again]) == set()


def test_the_consumer_should_reply_within_the_written_period():
    asked = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    days = VOCAB["case"]["reply_within_days"]
    assert lifecycle.reply_by("waiting_for_consumer", asked) == asked + timedelta(days=days)
    assert lifecycle.reply_by("in_progress", asked) is None
