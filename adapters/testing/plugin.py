"""pytest plugin of the conformance kit (entry point group `pytest11`, name `loket_adapters`)."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "conformance: a test of the adapter conformance kit (adapters.testing)"
    )


def pytest_collection_modifyitems(items) -> None:
    import pytest

    from adapters.testing.suite import AdapterConformance

    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, AdapterConformance):
            item.add_marker(pytest.mark.conformance)


def pytest_report_header(config) -> str:
    from adapters import registry

    return "loket adapters: " + ", ".join(registry.known_kinds())
