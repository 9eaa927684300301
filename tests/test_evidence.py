"""The evidence log a third party can verify: every tampering with raw SQL is named by
`loket evidence verify`, a case's bundle is proved offline and fails when one byte changes, and a
rotated key keeps the old checkpoints verifiable. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from adapters.base import StatusUpdate
from hub import accounts, audit, evidence, inbound, operations, queries
from hub.models import Assignment, AuditEntry, Case, Delivery
from loket.cli import main as cli
from scheduler.worker import Worker
from tests.support.cases import TELECOM, assignment, file


@pytest.fixture
def store(hub, tmp_path) -> evidence.KeyStore:
    hub.settings = replace(hub.settings, evidence_dir=tmp_path / "evidence")
    return evidence.KeyStore.from_settings(hub.settings)


@pytest.fixture
def logged(hub, store, clock):
    """Three cases delivered, one with agency updates (one applied, one refused), an operator's
    pause and resume (entries without a case), all under a signed checkpoint."""
    refs = [file(hub).reference for _ in range(3)]
    Worker(hub, "w1").dispatch_once()
    a = assignment(hub, refs[0])
    clock.advance(seconds=60)
    inbound.apply_updates(
        hub.db,
        hub.directory.agencies[TELECOM],
        (
            StatusUpdate("ASSIGNED", clock.now(), agency_reference=a.agency_reference),
            StatusUpdate("NO_SUCH_CODE", clock.now(), agency_reference=a.agency_reference),
        ),
        clock.now(),
    )
    operations.pause_agency(hub, TELECOM, operator="olga", reason="maintenance")
    operations.resume_agency(hub, TELECOM, operator="olga")
    clock.advance(seconds=60)
    assert evidence.checkpoint(hub.db, store, clock.now()) is not None
    return refs


def run(hub, store, *args, env=None):
    env = {
        "LOKET_DATABASE_URL": hub.db.url,
        "LOKET_EVIDENCE_DIR": str(store.dir),
        **(env or {}),
    }
    return CliRunner().invoke(cli, ["evidence", *args], env=env)


def sql(hub, statement: str, **params) -> list:
    with hub.db.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def entries(hub) -> list[AuditEntry]:
    with hub.db.session(read_only=True) as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def case_id(hub, reference: str) -> int:
    with hub.db.session(read_only=True) as s:
        return s.scalar(select(Case.id).where(Case.reference == reference))


def test_every_exchange_and_action_is_on_one_numbered_log(hub, logged):
    log = entries(hub)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    actions = [e.action for e in log]
    assert actions.count("case.filed") == 3 and actions.count("delivery.receipt") == 3
    assert "status.applied" in actions and "status.unknown" in actions  # applied and refused
    assert "agency.paused" in actions and "agency.resumed" in actions  # entries without a case
    [applied] = [e for e in log if e.action == "status.applied"]
    assert applied.data["agency_status"] == "ASSIGNED" and applied.case_id is not None


def test_an_update_the_hub_cannot_store_is_on_the_log_as_a_refused_item(hub, store, clock):
    long_reference = "X" * 500
    stats = inbound.apply_updates(
        hub.db,
        hub.directory.agencies[TELECOM],
        (StatusUpdate("ASSIGNED", clock.now(), agency_reference=long_reference),),
        clock.now(),
    )
    assert stats.counts == {"problem": 1}
    [entry] = [e for e in entries(hub) if e.action == "inbound.problem"]
    assert entry.case_id is None and entry.agency_id == TELECOM
    assert "agency reference is 500 characters long" in entry.data["reason"]


def test_a_log_without_checkpoints_says_so(hub, store):
    file(hub)
    answer = run(hub, store, "verify")
    assert answer.exit_code == 0, answer.output
    assert "evidence log intact: 1 entries; no signed checkpoint yet" in answer.output


def test_rotate_key_from_the_cli_keeps_the_old_key_listed(hub, store, logged):
    answer = run(hub, store, "rotate-key")
    assert answer.exit_code == 0, answer.output
    old, new = store.keyring().keys
    assert f"signing with key {new.key_id}" in answer.output
    assert old.valid_to == new.valid_from and new.valid_to is None
    assert (store.dir / "keys" / f"{new.key_id}.pem").exists()


def test_an_intact_log_verifies(hub, store, logged):
    answer = run(hub, store, "verify")
    assert answer.exit_code == 0, answer.output
    assert f"evidence log intact: {len(entries(hub))} entries" in answer.output


def _swap(hub, a: int, b: int) -> None:
    sql(hub, "UPDATE audit_entries SET seq = -1 WHERE seq = :a", a=a)
    sql(hub, "UPDATE audit_entries SET seq = :a WHERE seq = :b", a=a, b=b)
    sql(hub, "UPDATE audit_entries SET seq = :b WHERE seq = -1", b=b)


def _insert_at(hub, p: int) -> None:
    """Make room at #p (renumber the rest) and put a forged entry there."""
    sql(hub, "UPDATE audit_entries SET seq = -seq - 1 WHERE seq >= :p", p=p)
    sql(hub, "UPDATE audit_entries SET seq = -seq WHERE seq < 0")
    [(cid, prev)] = sql(hub, "SELECT case_id, hash FROM audit_entries WHERE seq = :q", q=p - 1)
    row = audit.entry_row(
        prev, at=entries(hub)[0].at, actor="operator", action="case.forged", data={"x": 1}
    )
    sql(
        hub,
        "INSERT INTO audit_entries (at, actor, action, case_id, data, prev_hash, hash, seq) "
        "VALUES (:at, :actor, :action, :case_id, :data, :prev_hash, :hash, :seq)",
        **{**row, "at": row["at"].replace(tzinfo=None), "data": json.dumps(row["data"])},
        case_id=cid,
        seq=p,
    )


def _rewrite(hub, seq: int) -> None:
    """Change an entry's data and recompute its hash and those after it in its case's chain:
    every per-case check passes; only the signed checkpoint can tell."""
    target = next(e for e in entries(hub) if e.seq == seq)
    chain = [e for e in entries(hub) if e.case_id == target.case_id]
    chain.sort(key=lambda e: e.id)
    prev = None
    for e in chain:
        data = {"forged": True} if e.id == target.id else e.data
        row = audit.entry_row(
            prev, at=e.at, actor=e.actor, action=e.action, agency_id=e.agency_id, data=data
        )
        if e.id >= target.id:
            sql(
                hub,
                "UPDATE audit_entries SET data = :data, data_sha256 = :d, prev_hash = :p, "
                "hash = :h WHERE id = :id",
                data=json.dumps(data),
                d=row["data_sha256"],
                p=prev,
                h=row["hash"],
                id=e.id,
            )
        prev = row["hash"]


def _seqs(hub, reference: str) -> list[int]:
    cid = case_id(hub, reference)
    return sorted(e.seq for e in entries(hub) if e.case_id == cid)


def edit(hub, refs):
    sql(hub, "UPDATE audit_entries SET actor = 'nobody' WHERE seq = 4")
    return "entry #4 (id 4, delivery.receipt", "was altered: its content no longer matches"


def garble_a_hash(hub, refs):
    sql(hub, "UPDATE audit_entries SET hash = 'not a hash' WHERE seq = 3")
    return "entry #3 (id 3", "was altered"


def edit_without_case(hub, refs):
    sql(hub, "UPDATE audit_entries SET actor = 'nobody' WHERE action = 'agency.paused'")
    return "agency.paused, no case", "was altered"


def delete_middle(hub, refs):
    sql(hub, "DELETE FROM audit_entries WHERE seq = 2")
    return "entry #2 was removed", "removed"


def delete_last_of_case(hub, refs):
    last = _seqs(hub, refs[1])[-1]
    sql(hub, "DELETE FROM audit_entries WHERE seq = :s", s=last)
    return f"entry #{last} was removed", "removed"


def delete_all_of_case(hub, refs):
    first = _seqs(hub, refs[1])[0]
    sql(hub, "DELETE FROM audit_entries WHERE case_id = :c", c=case_id(hub, refs[1]))
    return f"entry #{first} was removed", "removed"


def insert(hub, refs):
    _insert_at(hub, 5)
    return "entry #5 (id", "case.forged"


def swap(hub, refs):
    _swap(hub, 3, 6)
    return "entry #3 (id", "was reordered: the checkpoint has it at #6"


def rewrite(hub, refs):
    _rewrite(hub, 4)
    return "entry #4 (id 4", "was rewritten (its hashes recomputed)"


def truncate(hub, refs):
    sql(hub, "DELETE FROM audit_entries WHERE seq > 5")
    return "the log is truncated", "the log ends at #5 (#6 is the first missing)"


TAMPERINGS = [
    edit,
    garble_a_hash,
    edit_without_case,
    delete_middle,
    delete_last_of_case,
    delete_all_of_case,
    insert,
    swap,
    rewrite,
    truncate,
]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
def test_verify_names_the_first_entry_tampered_with(hub, store, logged, tamper):
    names, says = tamper(hub, logged)
    answer = run(hub, store, "verify")
    assert answer.exit_code == 1, answer.output
    first = answer.output.splitlines()[0]
    assert first.startswith("evidence log BROKEN: "), answer.output
    assert names in first and says in first, answer.output


def test_an_entry_forged_into_a_case_after_the_checkpoint_breaks_its_chain(hub, store, logged):
    cid = case_id(hub, logged[0])
    row = audit.entry_row("00" * 32, at=entries(hub)[0].at, actor="agency", action="forged")
    sql(
        hub,
        "INSERT INTO audit_entries (at, actor, action, case_id, prev_hash, hash) "
        "VALUES (:at, :actor, :action, :case_id, :prev_hash, :hash)",
        at=row["at"].replace(tzinfo=None),
        actor="agency",
        action="forged",
        case_id=cid,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
    answer = run(hub, store, "verify")
    assert answer.exit_code == 1
    assert (
        "forged" in answer.output and "does not follow the case's previous entry" in answer.output
    )


def test_a_log_cut_back_with_its_checkpoints_falls_short_of_the_published_one(
    hub, store, logged, clock
):
    file(hub)
    clock.advance(seconds=60)
    cp = evidence.checkpoint(hub.db, store, clock.now())
    assert cp is not None and store.published() == cp
    # Cut back the last checkpoint and the entries it added: the database alone cannot tell.
    sql(hub, "DELETE FROM evidence_checkpoints WHERE size = :n", n=cp.size)
    sql(hub, "DELETE FROM audit_entries WHERE seq = :n", n=cp.size)
    answer = run(hub, store, "verify")
    assert answer.exit_code == 1
    assert f"the published checkpoint signed {cp.size} entries" in answer.output
    store.published_path.unlink()
    assert run(hub, store, "verify").exit_code == 0  # why the head is published


def test_a_changed_checkpoint_is_refused(hub, store, logged):
    sql(hub, "UPDATE evidence_checkpoints SET size = size + 1")
    answer = run(hub, store, "verify")
    assert answer.exit_code == 1 and "not signed by key" in answer.output


def test_the_case_page_uses_the_signed_checkpoint(hub, store, logged):
    detail = queries.case_detail(hub, logged[0])
    assert detail is not None and detail.evidence_intact
    assert detail.evidence_checkpointed == len(detail.evidence) > 2
    _rewrite(hub, _seqs(hub, logged[0])[0])
    detail = queries.case_detail(hub, logged[0])
    assert detail is not None and not detail.evidence_intact
    assert "is not the entry the checkpoint signed" in (detail.evidence_problem or "")


def test_the_back_office_case_page_names_what_is_wrong(hub, store, logged, client):
    from tests.support.backoffice import PASSWORD, sign_in

    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    page = client.get(f"/admin/cases/{logged[0]}").get_data(as_text=True)
    assert "(chain intact)" in page and "entries under a signed checkpoint" in page
    sql(hub, "DELETE FROM audit_entries WHERE seq = :s", s=_seqs(hub, logged[0])[0])
    page = client.get(f"/admin/cases/{logged[0]}").get_data(as_text=True)
    assert "(chain BROKEN)" in page and "does not follow the case&#39;s previous entry" in page


# ---------------------------------------------------------------------------------------- bundles


def test_an_exported_bundle_verifies_offline_and_fails_when_one_byte_changes(
    hub, store, logged, tmp_path
):
    out = tmp_path / "case.json"
    answer = run(hub, store, "export", logged[0], "-o", str(out))
    assert answer.exit_code == 0, answer.output
    # No database and no settings: only the bundle and the public keyring.
    offline = {"LOKET_DATABASE_URL": "postgresql://nowhere.invalid/none", "LOKET_EVIDENCE_DIR": ""}
    answer = CliRunner().invoke(
        cli, ["evidence", "check", str(out), "--keyring", str(store.keyring_path)], env=offline
    )
    assert answer.exit_code == 0, answer.output
    assert f"entries of case {logged[0]} verified" in answer.output
    raw = out.read_bytes()
    ring = store.keyring()
    for i in range(len(raw)):
        changed = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(evidence.EvidenceError):
            evidence.check_bundle(changed, ring)
    out.write_bytes(raw.replace(b'"actor":"agency"', b'"actor":"agenc!"', 1))
    answer = CliRunner().invoke(cli, ["evidence", "check", str(out)], env=offline)
    assert answer.exit_code == 1 and "bundle NOT valid" in answer.output


def test_a_bundle_is_refused_with_another_hubs_keyring(hub, store, logged, tmp_path, clock):
    raw = evidence.export_case(hub.db, store, logged[0], clock.now())
    other = evidence.KeyStore(tmp_path / "other")
    other.rotate(clock.now())
    with pytest.raises(evidence.EvidenceError, match="not the keyring given"):
        evidence.check_bundle(raw, other.keyring())


def test_export_puts_new_entries_under_a_checkpoint_first(hub, store, logged, clock):
    operations.pause_agency(hub, TELECOM, operator="olga", reason="again")
    clock.advance(seconds=5)
    a = assignment(hub, logged[2])
    inbound.apply_updates(
        hub.db,
        hub.directory.agencies[TELECOM],
        (StatusUpdate("ASSIGNED", clock.now(), agency_reference=a.agency_reference),),
        clock.now(),
    )
    raw = evidence.export_case(hub.db, store, logged[2], clock.now())
    doc = json.loads(raw)
    assert doc["entries"][-1]["action"] == "status.applied"
    assert doc["checkpoint"]["size"] == len(entries(hub))
    assert "3 entries" in evidence.check_bundle(raw, store.keyring())


# ------------------------------------------------------------------------------------------- keys


def test_a_rotated_key_keeps_old_checkpoints_verifiable(hub, store, logged, clock):
    first_key = store.keyring().current()
    clock.advance(seconds=60)
    store.rotate(clock.now())  # what `loket evidence rotate-key` does, on the test's clock
    ring = store.keyring()
    old, new = ring.keys
    assert old.key_id == first_key.key_id and old.valid_to is not None and new.valid_to is None
    clock.advance(seconds=60)
    file(hub)
    cp = evidence.checkpoint(hub.db, store, clock.now())
    assert cp is not None and cp.key_id == new.key_id
    assert run(hub, store, "verify").exit_code == 0
    bundle = evidence.export_case(hub.db, store, logged[0], clock.now())
    assert new.key_id in evidence.check_bundle(bundle, store.keyring())
    # A key used outside its validity is refused: the old key's life now starts after its checkpoint.
    doc = json.loads(store.keyring_path.read_text())
    doc["keys"][0]["valid_from"] = doc["keys"][0]["valid_to"]
    store.keyring_path.write_text(json.dumps(doc))
    answer = run(hub, store, "verify")
    assert answer.exit_code == 1 and "was not valid at" in answer.output


def test_the_signing_key_lives_outside_the_database(hub, store, logged):
    [pem] = (store.dir / "keys").iterdir()
    assert pem.stat().st_mode & 0o077 == 0  # only the owner reads it
    assert b"PRIVATE KEY" in pem.read_bytes()
    assert "PRIVATE" not in json.dumps(sql(hub, "SELECT * FROM evidence_checkpoints"), default=str)


def test_the_worker_signs_a_checkpoint_when_entries_wait(hub, store, clock):
    hub.settings = replace(hub.settings, checkpoint_entries=2, checkpoint_seconds=3600)
    worker = Worker(hub, "w1")
    file(hub)
    assert worker.checkpoint_evidence() == 1  # the log's first checkpoint comes at once
    file(hub)
    assert worker.checkpoint_evidence() == 0  # one entry waits, the last checkpoint is recent
    file(hub)
    assert worker.checkpoint_evidence() == 3  # two wait
    file(hub)
    clock.advance(seconds=7200)
    assert worker.checkpoint_evidence() == 4  # the last checkpoint is old: any waiting entry goes


def test_a_receipt_names_the_digest_of_the_payload_sent(hub, logged):
    with hub.db.session(read_only=True) as s:
        for reference in logged:
            d = s.scalars(
                select(Delivery).join(Assignment).join(Case).where(Case.reference == reference)
            ).one()
            [receipt] = [
                e
                for e in s.scalars(
                    select(AuditEntry).where(AuditEntry.case_id == d.assignment.case_id)
                )
                if e.action == "delivery.receipt"
            ]
            assert receipt.data["payload_sha256"] == audit.payload_digest(d.payload) is not None


# ----------------------------------------------------------------------------------------- Merkle


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, as written: the largest power of two smaller than n splits."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << (len(leaves) - 1).bit_length() - 1
    return evidence.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << (len(leaves) - 1).bit_length() - 1
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33])
def test_tree_heads_and_proofs_are_rfc_6962s(n):
    leaves = [evidence.leaf_hash(bytes([i]) * 32) for i in range(n)]
    root = _mth(leaves)
    assert evidence.merkle_root(leaves) == root
    for cut in range(n + 1):  # a checkpoint's saved edge carries on as if never stopped
        f = evidence.Frontier()
        for leaf in leaves[:cut]:
            f.append(leaf)
        f = evidence.Frontier.restore(cut, f.state())
        for leaf in leaves[cut:]:
            f.append(leaf)
        assert f.root() == root
    levels = evidence._levels(leaves)
    for m in range(n):
        proof = evidence._proof(levels, m)
        assert proof == _path(m, leaves)
        assert evidence.verify_inclusion(m, n, leaves[m], proof, root)
        assert not evidence.verify_inclusion(m, n, evidence.leaf_hash(b"x" * 32), proof, root)
        if n > 1:
            assert not evidence.verify_inclusion((m + 1) % n, n, leaves[m], proof, root)


def test_checkpoints_taken_while_cases_are_filed_leave_one_gapless_verified_log(hub, store, clock):
    """Writers never wait for the sequencer; two sequencers at once take turns."""
    import threading

    errors: list[BaseException] = []

    def guarded(fn):
        def run_it():
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run_it

    def writer():
        for _ in range(5):
            file(hub)

    def sequencer():
        for _ in range(5):
            evidence.checkpoint(hub.db, store, clock.now())

    threads = [threading.Thread(target=guarded(writer)) for _ in range(3)]
    threads += [threading.Thread(target=guarded(sequencer)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    evidence.checkpoint(hub.db, store, clock.now())
    log = entries(hub)
    assert [e.seq for e in log] == list(range(1, 16))
    report = evidence.verify(hub.db, store.keyring(), store.published())
    assert report.ok and report.checkpoint is not None and report.checkpoint.size == 15


def test_sequencers_publishing_at_once_leave_the_largest_checkpoint_and_no_stray_file(store, clock):
    """Each publishes from a temporary file of its own and never over a larger checkpoint: with
    one shared temporary name, the second rename found the file gone, and an older checkpoint
    could be published after a newer one."""
    import random
    import threading

    sizes = list(range(1, 41))
    errors: list[BaseException] = []

    def sequencer(seed: int) -> None:
        mine = sizes[:]
        random.Random(seed).shuffle(mine)
        try:
            for size in mine:
                store.publish(evidence.Checkpoint(size, "00" * 32, clock.now(), "k", "sig"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sequencer, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.published().size == 40
    assert sorted(p.name for p in store.dir.iterdir() if p.name.endswith(".tmp")) == []
