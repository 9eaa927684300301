"""The conformance kit itself: it must fail an adapter that breaks a promise."""

import pytest

from adapters import registry

pytestmark = pytest.mark.skipif(
    "spool" not in registry.known_kinds(), reason="tests/thirdparty/loket-spool is not installed"
)

FORGETFUL = '''
import uuid
import pytest
from loket_spool import SpoolAdapter
from adapters.base import Receipt
from adapters.testing import AdapterConformance
from tests.test_registry import SpoolPeer


class Forgetful(SpoolAdapter):
    """Ignores the idempotency key: every delivery writes a new file."""

    def deliver(self, item):
        name = uuid.uuid4().hex + ".json"
        (self._dir("inbox") / name).write_text("{}")
        return Receipt(agency_reference=name)


class TestForgetful(AdapterConformance):
    @pytest.fixture
    def folders(self, tmp_path):
        (tmp_path / "in").mkdir(); (tmp_path / "out").mkdir()
        return tmp_path / "in", tmp_path / "out"

    @pytest.fixture
    def adapter(self, folders):
        return Forgetful({"inbox": str(folders[0]), "outbox": str(folders[1])})

    @pytest.fixture
    def broken_adapter(self, tmp_path):
        return Forgetful({"inbox": str(tmp_path / "x"), "outbox": str(tmp_path / "x")})

    @pytest.fixture
    def peer(self, folders):
        return SpoolPeer(*folders)
'''


def test_an_adapter_that_ignores_the_idempotency_key_fails_the_kit(pytester):
    from hub.config import ROOT

    pytester.makepyfile(test_forgetful=FORGETFUL)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", f"--rootdir={pytester.path}", "-o", f"pythonpath={ROOT}"
    )
    result.assert_outcomes(failed=1, passed=8, skipped=6)
    result.stdout.fnmatch_lines(
        ["*FAILED*test_a_repeat_with_the_same_idempotency_key_creates_nothing_new*"]
    )
