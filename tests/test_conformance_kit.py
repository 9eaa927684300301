"""The conformance kit itself: it must fail an adapter that breaks a promise.

Each class below is the third-party spool adapter with one promise broken; the kit, run on them
in a subprocess, must fail exactly the test that holds that promise (and nothing else).
"""

import pytest

from adapters import registry

pytestmark = pytest.mark.skipif(
    "spool" not in registry.known_kinds(), reason="tests/thirdparty/loket-spool is not installed"
)

BROKEN_PROMISES = '''
import socket
import uuid

import pytest
from loket_spool import SpoolAdapter

from adapters.base import DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM, ConfigurationError
from adapters.base import PollResult, Receipt
from adapters.testing import AdapterConformance, Peer


class SpoolPeer(Peer):
    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox

    def case_count(self):
        return len(list(self.inbox.glob("*.json")))

    def payload(self, case_reference):
        return {"ref": case_reference}

    def advance(self, agency_reference):
        with open(self.outbox / "status.jsonl", "a") as fh:
            fh.write('{"ref": "%s", "status": "NEXT", "at": "2026-12-04T12:00:00+00:00"}\\n'
                     % agency_reference)
        return "NEXT"


class Spool(AdapterConformance):
    cls = SpoolAdapter

    @pytest.fixture
    def folders(self, tmp_path):
        (tmp_path / "in").mkdir(); (tmp_path / "out").mkdir()
        return tmp_path / "in", tmp_path / "out"

    @pytest.fixture
    def adapter(self, folders):
        return self.cls({"inbox": str(folders[0]), "outbox": str(folders[1])})

    @pytest.fixture
    def broken_adapter(self, tmp_path):
        return self.cls({"inbox": str(tmp_path / "x"), "outbox": str(tmp_path / "x")})

    @pytest.fixture
    def peer(self, folders):
        return SpoolPeer(*folders)

    @pytest.fixture
    def bad_config(self):
        return {"inbox": 42}

    @pytest.fixture
    def paged_adapter(self, folders):
        return self.cls({"inbox": str(folders[0]), "outbox": str(folders[1]), "max_lines": 2})


class Forgetful(SpoolAdapter):
    """Ignores the idempotency key: every delivery writes a new file."""

    def deliver(self, item):
        name = uuid.uuid4().hex + ".json"
        (self._dir("inbox") / name).write_text("{}")
        return Receipt(agency_reference=name)


class TestForgetful(Spool):
    cls = Forgetful


class SkipsOnAStrangeCursor(SpoolAdapter):
    """Takes a cursor it never issued for "nothing new": the agency's changes are lost."""

    def poll(self, cursor, open_items):
        if cursor and not cursor.isdigit():
            return PollResult((), cursor)
        return super().poll(cursor, open_items)


class TestSkipsOnAStrangeCursor(Spool):
    cls = SkipsOnAStrangeCursor


class LosesTheRestOfAPage(SpoolAdapter):
    """Reads a page, then moves its cursor to the end of the file."""

    def poll(self, cursor, open_items):
        result = super().poll(cursor, open_items)
        end = (self._dir("outbox") / "status.jsonl").stat().st_size if result.updates else None
        return PollResult(result.updates, str(end) if end else result.cursor)


class TestLosesTheRestOfAPage(Spool):
    cls = LosesTheRestOfAPage


class ClaimsPerItemPolling(SpoolAdapter):
    """Says it polls per open case, yet reads the whole feed whatever it is asked about."""

    declared_capabilities = frozenset({DELIVER, POLL, POLL_CHANGES, POLL_PER_ITEM})

    @property
    def capabilities(self):
        return frozenset({DELIVER, POLL, POLL_PER_ITEM})


class TestClaimsPerItemPolling(Spool):
    cls = ClaimsPerItemPolling


class PollsWhatItDoesNotOffer(SpoolAdapter):
    """Its configuration offers no polling, yet poll() goes ahead instead of refusing."""

    @property
    def capabilities(self):
        return frozenset({DELIVER})


class TestPollsWhatItDoesNotOffer(Spool):
    cls = PollsWhatItDoesNotOffer


class AcceptsAnyConfiguration(SpoolAdapter):
    """Swallows a configuration its schema refuses: the typo surfaces at the first delivery."""

    def __init__(self, config):
        try:
            super().__init__(config)
        except ConfigurationError:
            self.config = dict(config)


class TestAcceptsAnyConfiguration(Spool):
    cls = AcceptsAnyConfiguration


class KeepsAConnection(SpoolAdapter):
    """Opens a connection in check() and never lets it go."""

    def check(self):
        self.kept = socket.socket()
        return super().check()


class TestKeepsAConnection(Spool):
    cls = KeepsAConnection
'''

# fnmatch patterns of node ids ("?" for the brackets of a parameter, which fnmatch reads as a set)
EXPECTED_FAILURES = [
    "TestForgetful::test_a_repeat_with_the_same_idempotency_key_creates_nothing_new",
    "TestSkipsOnAStrangeCursor::test_a_cursor_the_adapter_never_issued_is_refused_or_read_from_the_start?not-a-cursor *",
    "TestSkipsOnAStrangeCursor::test_a_cursor_the_adapter_never_issued_is_refused_or_read_from_the_start?{*",
    "TestLosesTheRestOfAPage::test_a_changes_feed_longer_than_a_page_comes_back_whole_across_polls",
    "TestClaimsPerItemPolling::test_per_item_polling_asks_about_each_open_case_and_only_those",
    "TestPollsWhatItDoesNotOffer::test_what_the_configuration_does_not_offer_is_refused_as_permanent",
    "TestAcceptsAnyConfiguration::test_a_bad_configuration_is_refused_when_the_adapter_is_made",
    "TestKeepsAConnection::test_close_releases_connections_and_may_be_called_twice",
]


def test_each_broken_promise_fails_exactly_the_kit_test_that_holds_it(pytester):
    from hub.config import ROOT

    pytester.makepyfile(test_broken_promises=BROKEN_PROMISES)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", f"--rootdir={pytester.path}", "-o", f"pythonpath={ROOT}"
    )
    failed = [line for line in result.stdout.lines if line.startswith("FAILED")]
    result.stdout.fnmatch_lines_random([f"FAILED *{name}*" for name in EXPECTED_FAILURES])
    assert len(failed) == len(EXPECTED_FAILURES), "\n".join(failed)
    assert result.parseoutcomes()["passed"] > 0
