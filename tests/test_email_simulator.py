"""The email agency simulator as `loket run` starts it: one process with its own mail servers.

It must serve the whole mail loop on a machine with Dovecot, fall back to pymap (pure Python)
without it, and without either still accept cases and say plainly what is missing.
"""

import signal
import socket

import pytest
from loket_simulators.email_agency import dovecot_binary

from adapters.base import Outbound
from adapters.email import EmailAdapter
from hub.config import ROOT
from tests.support.env import free_port, peer_missing, wait_until
from tests.support.peers_email import case_payload

pytestmark = pytest.mark.e2e


def start(processes, imap_server: str) -> dict:
    smtp_port, imap_port = free_port(), free_port()
    args = [
        "-m",
        "loket_simulators",
        "email",
        "--profile",
        "ombudsman-energy",
        "--smtp-port",
        str(smtp_port),
        "--smtp-user",
        "loket",
        "--smtp-password",
        "smtp-pw",
        "--imap-port",
        str(imap_port),
        "--imap-user",
        "loket",
        "--imap-password",
        "imap-pw",
        "--step-seconds",
        "0.5",
        "--contract",
        str(ROOT / "contracts" / "agencies" / "ombudsman-energy"),
        "--imap-server",
        imap_server,
    ]
    proc = processes.start(f"sim-{imap_server}", args, {})
    wait_until(lambda: listening(smtp_port) or proc.poll() is not None, 30, "the simulator")
    assert proc.poll() is None, processes.log(f"sim-{imap_server}")
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": False,
        "smtp_username": "loket",
        "smtp_password": "smtp-pw",
        "from_address": "loket@loket.example",
        "to_address": "klachten@ombudsman-energy.example",
        "imap_host": "127.0.0.1",
        "imap_port": imap_port,
        "imap_ssl": False,
        "imap_username": "loket",
        "imap_password": "imap-pw",
        "reference_pattern": r"^Dossier:\s*(?P<reference>\S+)",
    }


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("imap_server", ["dovecot", "pymap"])
def test_the_simulator_answers_a_case_mail_with_statuses_read_back_over_imap(
    processes, imap_server
):
    if imap_server == "dovecot" and dovecot_binary() is None:
        peer_missing("dovecot not installed: apt-get install dovecot-imapd")
    config = start(processes, imap_server)
    adapter = EmailAdapter(config)
    assert adapter.check().ok, adapter.check().message
    adapter.deliver(
        Outbound(
            "LK-7F3K-9QX2.ombudsman-energy.1", "LK-7F3K-9QX2", "x", case_payload("LK-7F3K-9QX2")
        )
    )
    seen: list[str] = []
    cursor = None

    def resolved():
        nonlocal cursor
        result = adapter.poll(cursor, [])
        cursor = result.cursor
        seen.extend(u.agency_status for u in result.updates)
        return "AFGESLOTEN" in seen

    wait_until(resolved, 30, "the agency's three status mails")
    assert seen == ["ONTVANGEN", "IN_BEHANDELING", "AFGESLOTEN"]

    processes.kill(f"sim-{imap_server}", signal.SIGTERM)
    assert processes.procs[f"sim-{imap_server}"].returncode == 0
    # the mailbox server went with it (stopped by PID), and so did the SMTP server
    assert not listening(config["imap_port"]) and not listening(config["smtp_port"])


def test_without_an_imap_server_cases_still_arrive_and_it_says_what_is_missing(processes):
    config = start(processes, "none")
    adapter = EmailAdapter(config)
    receipt = adapter.deliver(
        Outbound(
            "LK-7F3K-9QX2.ombudsman-energy.1", "LK-7F3K-9QX2", "x", case_payload("LK-7F3K-9QX2")
        )
    )
    assert receipt.agency_reference == "LK-7F3K-9QX2"
    log = processes.log("sim-none")
    assert "apt-get install dovecot-imapd" in log and "cannot be read back" in log
    health = adapter.check()
    assert not health.ok and "IMAP failed" in health.message
