"""Adapters are found by kind: entry points (third-party packages) and register() for tests."""

import pytest
from click.testing import CliRunner

from adapters import registry
from adapters.base import Adapter, ConfigurationError, Health
from adapters.rest import RestAdapter
from hub.agencies import Directory
from loket.cli import main as cli
from mappings import AGENCIES_DIR
from mappings.engine import load_agency


def test_built_in_rest_is_found_by_its_entry_point():
    assert registry.get("rest") is RestAdapter
    assert "rest" in registry.known_kinds()


def test_an_unknown_kind_names_the_known_ones_and_a_close_match():
    with pytest.raises(registry.UnknownAdapter) as info:
        registry.get("rets")
    message = str(info.value)
    assert "No such adapter kind 'rets'" in message
    assert "Did you mean 'rest'?" in message
    assert "rest" in message.split("Known kinds:")[1]


def test_register_makes_a_kind_available_at_run_time():
    class Fake(Adapter):
        kind = "fake"
        config_schema = RestAdapter.config_schema
        declared_capabilities = frozenset({"deliver"})

        def deliver(self, item):
            raise NotImplementedError

        def check(self):
            return Health(True, "fine")

    registry.register("fake", Fake)
    try:
        assert registry.get("fake") is Fake
        assert "fake" in registry.known_kinds()
    finally:
        registry.unregister("fake")
    with pytest.raises(registry.UnknownAdapter):
        registry.get("fake")


def test_an_adapter_with_the_older_class_attribute_still_has_one_capabilities_per_instance():
    """Adapters written before `declared_capabilities` set `capabilities` on the class."""

    class Older(Adapter):
        kind = "older"
        config_schema = RestAdapter.config_schema
        capabilities = frozenset({"deliver", "poll", "poll_changes"})

        def deliver(self, item):
            raise NotImplementedError

        def check(self):
            return Health(True, "fine")

    adapter = Older({"base_url": "http://127.0.0.1:9"})
    assert Older.declared_capabilities == {"deliver", "poll", "poll_changes"}
    assert adapter.capabilities == Older.declared_capabilities
    assert isinstance(Adapter.__dict__["capabilities"], property)


# ---------------------------------------------------------------- a third-party adapter package

SPOOL_INSTALLED = "spool" in registry.known_kinds()
needs_spool = pytest.mark.skipif(
    not SPOOL_INSTALLED,
    reason="tests/thirdparty/loket-spool is not installed (make install does: "
    "pip install -e tests/thirdparty/loket-spool)",
)


@needs_spool
def test_the_third_party_package_is_discovered_by_entry_point_not_by_register():
    from loket_spool import SpoolAdapter

    assert registry.get("spool") is SpoolAdapter
    assert "spool" not in registry._registered


@needs_spool
def test_the_third_party_adapter_is_configured_from_a_mapping_file(tmp_path):
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    text = (AGENCIES_DIR / "ombudsman-telecom.yaml").read_text()
    start = text.index("adapter:")
    end = text.index("fields:")
    text = (
        text[:start] + f"adapter:\n  kind: spool\n  inbox: {inbox}\n  outbox: {outbox}\n"
        "  token: ${SPOOL_TOKEN:-t0ps3cret}\n" + text[end:]
    )
    text = text.replace("simulator: {kind: rest, profile: telecom}\n", "")
    path = tmp_path / "ombudsman-telecom.yaml"
    path.write_text(text)
    mapping = load_agency(path, env={})
    directory = Directory({mapping.id: mapping})
    adapter = directory.adapter(mapping.id)
    assert adapter.kind == "spool" and adapter.check().ok
    assert adapter.masked_config()["token"] == "***"
    assert directory.capabilities(mapping.id) == {"deliver", "poll", "poll_changes"}


@needs_spool
def test_an_agency_whose_adapter_configuration_is_refused_has_no_capabilities_to_show(tmp_path):
    text = (AGENCIES_DIR / "ombudsman-telecom.yaml").read_text()
    start, end = text.index("adapter:"), text.index("fields:")
    text = text[:start] + "adapter:\n  kind: spool\n  inbox: 42\n" + text[end:]
    path = tmp_path / "ombudsman-telecom.yaml"
    path.write_text(text.replace("simulator: {kind: rest, profile: telecom}\n", ""))
    mapping = load_agency(path, env={})
    directory = Directory({mapping.id: mapping})
    assert directory.capabilities(mapping.id) is None
    with pytest.raises(ConfigurationError) as info:
        directory.adapter(mapping.id)
    assert "outbox" in info.value.detail


def test_agencies_check_prints_a_table_and_fails_when_an_agency_is_down(sims, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(cli, ["agencies", "check", "ombudsman-telecom"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["agency", "kind", "ok"]
    [telecom] = [line for line in lines if line.startswith("ombudsman-telecom")]
    assert " yes " in telecom
    # what its configured adapter does (changes feed, replies; no attachments_field)
    assert "deliver,messages,poll,poll_changes " in telecom
    monkeypatch.setenv("LOKET_CONSUMER_MEDIATION_KEY", "wrong")
    result = runner.invoke(cli, ["agencies", "check", "consumer-mediation"])
    assert result.exit_code == 1
    assert "NO" in result.output and "API key" in result.output
    result = runner.invoke(cli, ["agencies", "check", "ombudsman-tlecom"])
    assert result.exit_code == 2 and "no agency 'ombudsman-tlecom'" in result.output


def test_agencies_list_shows_what_each_configured_adapter_does():
    result = CliRunner().invoke(cli, ["agencies", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()}
    assert rows["favv"][1:3] == ["soap", "deliver,messages,poll,poll_changes"]
    assert rows["ombudsman-telecom"][1:3] == ["rest", "deliver,messages,poll,poll_changes"]
