"""The `loket` command: serve, worker, run, db, agencies, mappings, evidence, gdpr, simulate."""

from __future__ import annotations

import logging
import os
import sys

import click

from hub.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _hub(settings: Settings):
    from hub.routing import RoutingError
    from hub.services import Hub
    from mappings.engine import MappingError

    try:
        return Hub.from_settings(settings)
    except (MappingError, RoutingError) as exc:
        raise click.ClickException(
            f"{exc}\n(run `loket mappings validate` to check every file)"
        ) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("apscheduler", "paramiko", "asyncssh"):  # one line per SFTP connection
            logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Loket: the integration hub behind one front desk for consumers."""


# ------------------------------------------------------------------------------------------ db


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the database schema up to date."""
    from hub.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {_safe_url(settings.database_url)} is at {revision}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------ processes


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--quiet", is_flag=True, help="no access log; warnings and errors only")
def serve(host: str, port: int, workers: int, quiet: bool) -> None:
    """Serve the web app and API with gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings = _settings()
    _hub(settings).close()  # fail fast on a broken mapping, before forking

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            if not quiet:
                self.cfg.set("accesslog", "-")
            self.cfg.set("logger_class", "loket.accesslog.PrivateAccessLogger")
            self.cfg.set("loglevel", "warning" if quiet else "info")
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("proc_name", "loket-web")

        def load(self):
            from loket.app import create_app

            return create_app(settings)

    Server().run()


@main.command()
@click.option("-v", "--verbose", is_flag=True)
def worker(verbose: bool) -> None:
    """Run the worker: deliver cases to agencies and poll their status."""
    from scheduler.worker import Worker

    _logging(verbose)
    Worker(_hub(_settings())).run()


@main.command()
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=int,
    envvar="LOKET_WEB_PORT",
    help="web port (env LOKET_WEB_PORT)",
)
def run(port: int) -> None:
    """Start the whole system on this machine: simulators, web and worker, on SQLite."""
    from loket.devrun import run_all

    sys.exit(run_all(_settings(), web_port=port))


# ------------------------------------------------------------------------------------- agencies


@main.group()
def agencies() -> None:
    """The connected agencies."""


@agencies.command("list")
def agencies_list() -> None:
    """List agencies with their transport, what their configured adapter does, and name."""
    hub = _hub(_settings())
    for agency_id in hub.directory.ids():
        m = hub.directory[agency_id]
        click.echo(
            f"{agency_id:24} {m.adapter_kind or 'referral':6} {_capabilities(hub, agency_id):44} {m.name('en')}"
        )


@agencies.command("check")
@click.argument("agency_id", required=False)
def agencies_check(agency_id: str | None) -> None:
    """Test the connection to each agency (or one) and print a table."""
    from hub import operations, queries

    hub = _hub(_settings())
    ids = queries.agency_ids(hub)
    if agency_id is not None:
        _known_agency(hub, agency_id)
        ids = [agency_id]
    failed = 0
    click.echo(f"{'agency':24} {'kind':6} {'ok':3} {'ms':>7}  {'capabilities':44} message")
    for aid in ids:
        result = operations.check_agency(hub, aid)
        failed += not result.ok
        ms = result.latency_ms
        click.echo(
            f"{aid:24} {result.kind:6} {'yes' if result.ok else 'NO':3} "
            f"{(f'{ms:7.1f}' if ms is not None else '      -')}  "
            f"{_capabilities(hub, aid):44} {result.message}"
        )
    hub.close()
    if failed:
        sys.exit(1)


@agencies.command("pause")
@click.argument("agency_id")
@click.option("--reason", required=True, help="shown to other operators")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def agencies_pause(agency_id: str, reason: str, operator: str) -> None:
    """Stop delivering to an agency (its cases wait; nothing is lost). On the evidence log."""
    from hub import operations

    hub = _hub(_settings())
    _known_agency(hub, agency_id)
    state = operations.pause_agency(hub, agency_id, operator=operator, reason=reason)
    click.echo(f"{agency_id} paused by {state.paused_by}: {state.paused_reason}")


@agencies.command("resume")
@click.argument("agency_id")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def agencies_resume(agency_id: str, operator: str) -> None:
    """Resume delivering to an agency (and close its circuit breaker). On the evidence log."""
    from hub import operations

    hub = _hub(_settings())
    _known_agency(hub, agency_id)
    operations.resume_agency(hub, agency_id, operator=operator)
    click.echo(f"{agency_id} resumed")


@agencies.command("status")
def agencies_status() -> None:
    """Per agency: breaker, pause, and the delivery queue."""
    from hub import queries

    hub = _hub(_settings())
    click.echo(
        f"{'agency':24} {'breaker':9} {'paused':6} {'pending':>7} {'retry':>5} "
        f"{'leased':>6} {'dead':>4} {'done':>6}  note"
    )
    for flow in queries.agency_flows(hub):
        st, c = flow.control, flow.counts
        note = ""
        if st and st.paused:
            note = f"paused by {st.paused_by}: {st.paused_reason}"
        elif st and st.breaker != "closed":
            note = (
                f"probe at {st.probe_at:%H:%M:%S}; last error: {st.last_error}"
                if st.probe_at
                else ""
            )
        click.echo(
            f"{flow.id:24} {flow.breaker:9} "
            f"{('yes' if flow.paused else 'no'):6} {c.get('pending', 0):>7} "
            f"{c.get('retry', 0):>5} {c.get('leased', 0):>6} {c.get('dead', 0):>4} "
            f"{c.get('done', 0):>6}  {note}"
        )


def _capabilities(hub, agency_id: str) -> str:
    """What the agency's configured adapter does (deliver, poll, messages, ...), as a column."""
    from hub import queries

    capabilities = queries.capabilities(hub, agency_id)
    return "(configuration error)" if capabilities is None else ",".join(sorted(capabilities))


def _known_agency(hub, agency_id: str, param_hint: str = "AGENCY_ID") -> None:
    from hub import queries

    known = queries.agency_ids(hub)
    if agency_id not in known:
        raise click.BadParameter(
            f"no agency {agency_id!r}; known: {', '.join(known)}", param_hint=param_hint
        )


# ---------------------------------------------------------------------------------------- cases


@main.group()
def cases() -> None:
    """Look at a case and act on it as an operator."""


def _reference(text: str) -> str:
    from hub import queries

    reference = queries.case_reference(text)
    if reference is None:
        raise click.BadParameter(
            f"{text!r} is not a case reference (LK-XXXX-XXXX)", param_hint="REFERENCE"
        )
    return reference


@cases.command("show")
@click.argument("reference")
@click.pass_context
def cases_show(ctx: click.Context, reference: str) -> None:
    """The case's lines per agency and its whole timeline (operator view).

    The same view of the case as the consumer's page and the API (hub/caseview.py), with the
    canonical statuses an operator needs. A Hub given as the context object (tests, embedding)
    is used instead of one built from the environment."""
    from hub import caseview
    from hub import reference as references
    from hub.services import Hub

    hub = ctx.obj if isinstance(ctx.obj, Hub) else _hub(_settings())
    if references.normalise(reference) is None:
        raise click.BadParameter(
            f"{reference!r} is not a case reference (LK-XXXX-XXXX)", param_hint="REFERENCE"
        )
    view = caseview.for_operator(hub, reference)
    if view is None:
        raise click.BadParameter(
            f"no case {references.normalise(reference)}", param_hint="REFERENCE"
        )
    expected = (
        f"  expected answer by {view.expected_answer_by:%Y-%m-%d}"
        if view.expected_answer_by
        else ""
    )
    click.echo(
        f"{view.reference}  {view.kind} about {view.domain}  status {view.status}  "
        f"filed {view.created_at:%Y-%m-%d %H:%M}{expected}"
    )
    for line in view.lines:
        due = f"answer by {line.answer_by:%Y-%m-%d}" if line.answer_by else ""
        late = " PAST DUE" if line.past_due else ""
        ref = line.agency_reference or "-"
        if line.reference_provisional:
            ref += " (provisional)"
        click.echo(f"  #{line.id:<5} {line.agency_id:24} {line.status:22} {ref:18} {due}{late}")
    click.echo("timeline:")
    for e in view.timeline:
        move = f"{e.from_status or ''} -> {e.to_status}" if e.to_status else ""
        click.echo(
            f"  {e.at:%Y-%m-%d %H:%M:%S} {e.actor:8} "
            f"{e.agency_id or '':20} {move:32} {e.message or ''}"
        )


@cases.command("search")
@click.argument("q", required=False, default="")
@click.option("--agency", "agency_id", help="only cases with a line at this agency")
@click.option("--status", help="only cases with this status")
@click.option("--limit", default=50, show_default=True, type=int)
def cases_search(q: str, agency_id: str | None, status: str | None, limit: int) -> None:
    """Find cases by reference, e-mail, enterprise number or a name's start (newest first;
    without Q, the newest cases): the console's search box."""
    from hub import queries

    hub = _hub(_settings())
    if agency_id:
        _known_agency(hub, agency_id, "--agency")
    if status and status not in queries.statuses():
        raise click.BadParameter(
            f"no status {status!r}; known: {', '.join(queries.statuses())}", param_hint="--status"
        )
    hits = queries.search_cases(hub, q, agency=agency_id, status=status, limit=limit)
    if not hits:
        click.echo("no case found")
        return
    for h in hits:
        click.echo(
            f"{h.reference:14} {h.created_at:%Y-%m-%d %H:%M} {h.kind:10} {h.domain:24} "
            f"{h.status:22} {', '.join(h.agencies) or '-':30} {h.consumer or ''}"
        )


@cases.command("refer")
@click.argument("reference")
@click.option("--to", "to_agency", help="the competent agency (default: what routing finds next)")
@click.option(
    "--from",
    "from_agency",
    help="the agency whose line moves on (default: the open line, if there is one)",
)
@click.option("--reason", help="shown to the consumer and the new agency")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def cases_refer(
    reference: str,
    to_agency: str | None,
    from_agency: str | None,
    reason: str | None,
    operator: str,
) -> None:
    """Refer a case to the competent agency, with its history (or route a case nobody has)."""
    from hub import operations, queries

    hub = _hub(_settings())
    if to_agency:
        _known_agency(hub, to_agency, "--to")
    reference = _reference(reference)
    case = queries.case_detail(hub, reference)
    if case is None:
        raise click.BadParameter(f"no case {reference}", param_hint="REFERENCE")
    if from_agency is None:
        open_lines = [line.agency_id for line in case.lines if line.referable]
        if len(open_lines) > 1:
            raise click.UsageError(
                "the case has several open lines ("
                + ", ".join(open_lines)
                + "); say which with --from AGENCY"
            )
        from_agency = open_lines[0] if open_lines else None
    try:
        done = operations.refer_case(
            hub,
            case.reference,
            operator=operator,
            from_agency=from_agency,
            to_agency=to_agency,
            reason=reason,
        )
    except operations.CommandError as exc:
        raise click.ClickException(str(exc)) from None
    if done.to_agency is None:
        raise click.ClickException("routing found no other competent agency; name one with --to")
    click.echo(f"{done.case_reference}: {done.from_agency or '(no agency)'} -> {done.to_agency}")


# --------------------------------------------------------------------------------- dead letters


@main.group("dead-letters")
def dead_letters() -> None:
    """Deliveries that failed for good: inspect and resend them safely."""


@dead_letters.command("list")
@click.option("--agency", "agency_id", help="only this agency's")
@click.option(
    "--json", "as_json", is_flag=True, help="machine-readable, with payloads and attempts"
)
def dead_letters_list(agency_id: str | None, as_json: bool) -> None:
    """List dead letters with their last error."""
    from hub import queries

    hub = _hub(_settings())
    if agency_id:
        _known_agency(hub, agency_id, "--agency")
    letters = queries.dead_letters(hub, agency_id)
    if as_json:
        import dataclasses
        import json

        click.echo(json.dumps([dataclasses.asdict(d) for d in letters], default=str, indent=2))
        return
    if not letters:
        click.echo("no dead letters")
        return
    click.echo(f"{'id':>6} {'agency':24} {'case':14} {'tries':>5} {'dead since':20} last error")
    for d in letters:
        when = f"{d.dead_at:%Y-%m-%d %H:%M:%S}" if d.dead_at else "-"
        click.echo(
            f"{d.delivery_id:>6} {d.agency_id:24} {d.case_reference:14} {d.attempts:>5} "
            f"{when:20} [{d.last_error_kind}] {d.last_error}"
        )


@dead_letters.command("resend")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--agency", "agency_id", help="resend all of this agency's dead letters")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def dead_letters_resend(
    delivery_ids: tuple[int, ...], agency_id: str | None, operator: str
) -> None:
    """Resend dead letters (by id, or all of an agency's) with their original idempotency key."""
    from hub import operations

    if not delivery_ids and not agency_id:
        raise click.UsageError(
            "name the dead letters to resend (ids from `loket dead-letters "
            "list`) or give --agency AGENCY_ID"
        )
    hub = _hub(_settings())
    if agency_id:
        _known_agency(hub, agency_id, "--agency")
    result = operations.resend_dead_letters(
        hub, operator=operator, delivery_ids=list(delivery_ids), agency_id=agency_id
    )
    for delivery_id in result.resent:
        click.echo(f"resent {delivery_id}")
    for delivery_id, why in result.skipped:
        click.echo(f"skipped {delivery_id}: {why}", err=True)
    click.echo(f"{len(result.resent)} resent, {len(result.skipped)} skipped")
    if result.skipped and not result.resent:
        sys.exit(1)


@main.group()
def deliveries() -> None:
    """Deliveries waiting in the outbox."""


@deliveries.command("retry-now")
@click.argument("delivery_id", type=int)
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def deliveries_retry_now(delivery_id: int, operator: str) -> None:
    """Send a delivery that waits for its next retry at the next dispatch (same idempotency
    key; after the agency says it is back, say)."""
    from hub import operations

    try:
        operations.retry_now(_hub(_settings()), delivery_id, operator=operator)
    except operations.CommandError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"delivery {delivery_id} goes out at the next dispatch")


# ---------------------------------------------------------------------------------------- stats


@main.group()
def stats() -> None:
    """Public statistics: daily rollups and the anonymised open data."""


@stats.command("rollup")
@click.option("--full", is_flag=True, help="recompute every day since the first case")
def stats_rollup(full: bool) -> None:
    """Recompute the statistics' daily rollups (from the last run's day, or all with --full)."""
    from hub import statistics

    hub = _hub(_settings())
    run = statistics.rollup(hub.db, hub.clock.now(), full=full)
    click.echo(f"rollups: {run.rows} rows for {run.first}..{run.last}")


@stats.command("export")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="folder for cases.csv and datapackage.json (default: <var>/opendata, what the "
    "statistics page serves)",
)
def stats_export(out: str | None) -> None:
    """Write the anonymised case-level dataset and its Frictionless Data package."""
    from pathlib import Path

    from hub import opendata

    settings = _settings()
    hub = _hub(settings)
    folder = Path(out) if out else opendata.directory_of(settings.var_dir)
    export = opendata.write(hub.db, folder, hub.clock.now())
    click.echo(
        f"{folder / 'cases.csv'}: {len(export.rows)} rows of {export.total} "
        f"({export.suppressed} left out, {export.generalised} enterprise numbers emptied; "
        f"k = {opendata.K})"
    )
    click.echo(f"{folder / 'datapackage.json'}: the schema and the suppression rule")


# ---------------------------------------------------------------------------------------- users


@main.group()
def users() -> None:
    """Back-office accounts: operators (every agency) and agency staff (their own cases)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["operator", "agency", "inspector"]), required=True)
@click.option("--agency", "agency_id", help="the agency an agency account works for")
@click.option(
    "--password-stdin", is_flag=True, help="read the password from stdin instead of generating one"
)
@click.option("--email", default=None, help="where a password-reset link is mailed")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def users_add(
    name: str,
    role: str,
    agency_id: str | None,
    password_stdin: bool,
    operator: str,
    email: str | None = None,
) -> None:
    """Create an account; a generated password is printed once."""
    from hub import operations

    hub = _hub(_settings())
    if agency_id:
        _known_agency(hub, agency_id, "--agency")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and len(password or "") < 10:
        raise click.UsageError("the password on stdin must have at least 10 characters")
    try:
        account = operations.add_user(
            hub,
            name,
            role,
            operator=operator,
            agency_id=agency_id,
            password=password,
            email=email,
        )
    except operations.CommandError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"account {name} ({role}{': ' + agency_id if agency_id else ''}) created")
    if not password_stdin:
        click.echo(f"password (shown once): {account.password}")


@users.command("list")
def users_list() -> None:
    """List accounts."""
    from hub import queries

    rows = queries.users(_hub(_settings()))
    if not rows:
        click.echo("no accounts; add one with `loket users add NAME --role operator`")
    for u in rows:
        click.echo(
            f"{u.name:24} {u.role:9} {u.agency_id or '-':26} {'disabled' if u.disabled else ''}"
        )


@users.command("reset")
@click.argument("name")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def users_reset(name: str, operator: str) -> None:
    """Mail the account a one-time link to choose a new password (valid 30 minutes)."""
    from hub import operations

    if operations.request_password_reset(_hub(_settings()), name, by=operator):
        click.echo(f"a reset link was mailed to {name}'s address")
    else:
        raise click.ClickException(
            f"no link mailed: {name} is unknown, disabled or has no mail address, or the mail "
            "server refused (see the evidence log)"
        )


@users.command("disable")
@click.argument("name")
@click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)
def users_disable(name: str, operator: str) -> None:
    """Disable an account: it can no longer sign in, its sessions end."""
    from hub import operations

    try:
        operations.disable_user(_hub(_settings()), name, operator=operator)
    except operations.CommandError as exc:
        raise click.ClickException(f"{exc} (see `loket users list`)") from None
    click.echo(f"account {name} disabled")


# ------------------------------------------------------------------------------------- mappings


@main.group()
def mappings() -> None:
    """Agency mapping files."""


@mappings.command("validate")
def mappings_validate() -> None:
    """Check every mapping file and the routing rules; print each error with its fix."""
    from hub.mapping_check import validate_all
    from hub.routing import Router, RoutingError

    settings = _settings()
    problems, loaded = validate_all(settings.agencies_dir, settings.routing_file)
    errors = [str(problem) for problem in problems]
    for err in errors:
        click.echo(f"ERROR {err}", err=True)
    try:
        Router.from_file(settings.routing_file, loaded)
    except RoutingError as exc:
        errors.append(str(exc))
        click.echo(f"ERROR {exc}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} problem(s) in the mappings")
    click.echo(f"{len(loaded)} agency mapping(s) and the routing rules are valid")


@mappings.command("preview")
@click.argument("agency_id")
@click.argument("reference")
def mappings_preview(agency_id: str, reference: str) -> None:
    """Print the payload AGENCY_ID would receive for case REFERENCE (nothing is sent)."""
    import json

    from hub import queries
    from mappings.engine import RenderError

    hub = _hub(_settings())
    _known_agency(hub, agency_id)
    reference = _reference(reference)
    try:
        payload = queries.agency_payload(hub, agency_id, reference)
    except RenderError as exc:
        raise click.ClickException(f"{agency_id} cannot receive {reference}: {exc}") from None
    if payload is None:
        raise click.BadParameter(f"no case {reference}", param_hint="REFERENCE")
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str))


# -------------------------------------------------------------------------------------- evidence


@main.group()
def evidence() -> None:
    """The evidence log: signed checkpoints, a whole-log check, a case's bundle checked offline."""


def _evidence_db(settings: Settings):
    from hub.db import Database

    return Database(settings.database_url)


@evidence.command("checkpoint")
def evidence_checkpoint() -> None:
    """Number the entries written since the last checkpoint and sign the new tree head (the
    worker does this every few minutes). The first run makes the signing key."""
    import json

    from hub import evidence as ev
    from hub.clock import SystemClock

    settings = _settings()
    db = _evidence_db(settings)
    try:
        cp = ev.checkpoint(db, ev.KeyStore.from_settings(settings), SystemClock().now())
    except ev.EvidenceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    if cp is None:
        click.echo("nothing new since the last checkpoint")
        return
    click.echo(json.dumps(cp.to_json(), indent=2))


@evidence.command("rotate-key")
def evidence_rotate_key() -> None:
    """Make a new signing key; the old one stays in the keyring, valid until now, so the
    checkpoints it signed still verify."""
    from hub import evidence as ev
    from hub.clock import SystemClock

    store = ev.KeyStore.from_settings(_settings())
    key = store.rotate(SystemClock().now())
    click.echo(f"signing with key {key.key_id} from {key.valid_from.isoformat()}")
    click.echo(f"public keyring: {store.keyring_path}")


@evidence.command("verify")
def evidence_verify() -> None:
    """Walk the whole log; name the first entry altered, removed, inserted or reordered, and a
    log shorter than its last signed checkpoint. Exits 1 when anything is wrong."""
    from hub import evidence as ev

    settings = _settings()
    store = ev.KeyStore.from_settings(settings)
    ring = store.keyring() if store.keyring_path.exists() else None
    db = _evidence_db(settings)
    try:
        report = ev.verify(db, ring, store.published())
    except ev.EvidenceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    if report.checkpoint is not None and ring is None:
        raise click.ClickException(
            f"checkpoints exist but there is no keyring at {store.keyring_path} to check their "
            "signatures (set LOKET_EVIDENCE_DIR)"
        )
    if report.first is not None:
        click.echo(f"evidence log BROKEN: {report.first.message}", err=True)
        more = len(report.findings) - 1
        for finding in report.findings[1:11]:
            click.echo(f"  then: {finding.message}", err=True)
        if more > 10:
            click.echo(f"  ... and {more - 10} more", err=True)
        sys.exit(1)
    cp = report.checkpoint
    covered = (
        f"; checkpoint of {cp.size} signed by {cp.key_id} at {cp.at}"
        if cp
        else "; no signed checkpoint yet (`loket evidence checkpoint`)"
    )
    click.echo(f"evidence log intact: {report.entries} entries{covered}")


@evidence.command("export")
@click.argument("reference")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="default: REFERENCE.json")
def evidence_export(reference: str, output: str | None) -> None:
    """Write a case's entries with their Merkle inclusion proofs, the signed checkpoint and the
    public keyring as one JSON file, for `loket evidence check` anywhere."""
    from hub import evidence as ev
    from hub.clock import SystemClock

    settings = _settings()
    db = _evidence_db(settings)
    ref = _reference(reference)
    try:
        raw = ev.export_case(db, ev.KeyStore.from_settings(settings), ref, SystemClock().now())
    except ev.EvidenceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    path = output or f"{ref}.json"
    with open(path, "wb") as out:
        out.write(raw)
    click.echo(f"wrote {path}")


@evidence.command("check")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--keyring",
    type=click.Path(exists=True, dir_okay=False),
    help="the hub's public keyring to trust (default: the one inside the bundle)",
)
def evidence_check(bundle: str, keyring: str | None) -> None:
    """Verify an exported bundle without the database: every entry's hash and chain, its
    inclusion in the signed log, and the checkpoint's signature. Exits 1 when anything is wrong."""
    from pathlib import Path

    from hub import evidence as ev

    try:
        ring = ev.Keyring.load(Path(keyring)) if keyring else None
        summary = ev.check_bundle(Path(bundle).read_bytes(), ring)
    except ev.EvidenceError as exc:
        click.echo(f"bundle NOT valid: {exc}", err=True)
        sys.exit(1)
    click.echo(summary)
    if ring is None:
        click.echo("(signed by a key the bundle names; pass --keyring to trust the hub's own)")


# ----------------------------------------------------------------------------------- personal data


@main.group()
def gdpr() -> None:
    """Personal data: a case's export, its erasure, retention housekeeping, consumers' requests."""


def _privacy_db():
    from hub.db import Database

    return Database(_settings().database_url)


@gdpr.command("export")
@click.argument("reference")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="the zip to write (default: REFERENCE-personal-data.zip); never overwritten",
)
@click.option("--operator", default=lambda: os.environ.get("USER", "cli"), show_default="$USER")
def gdpr_export(reference: str, output: str | None, operator: str) -> None:
    """Write everything held about case REFERENCE (a JSON document and its attachments) as a
    zip readable by its owner only; the export is recorded in the evidence log."""
    from hub import gdpr as privacy
    from hub.clock import SystemClock

    ref = _reference(reference)
    path = output or f"{ref}-personal-data.zip"
    if os.path.exists(path):
        raise click.BadParameter(f"{path} exists; name another file", param_hint="--output")
    db = _privacy_db()
    try:
        raw = privacy.export_case(db, ref, SystemClock().now(), actor=f"operator:{operator}")
    except privacy.PrivacyError as exc:
        raise click.BadParameter(str(exc), param_hint="REFERENCE") from None
    finally:
        db.dispose()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
    click.echo(f"wrote {path} ({len(raw)} bytes): personal-data.json and the attachments")


@gdpr.command("erase")
@click.argument("reference")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--operator", default=lambda: os.environ.get("USER", "cli"), show_default="$USER")
@click.option(
    "--reason",
    type=click.Choice(["request", "decision"]),
    default="request",
    show_default=True,
    help="the consumer asked, or the front desk decided",
)
def gdpr_erase(reference: str, yes: bool, operator: str, reason: str) -> None:
    """Erase the personal data and attachments of case REFERENCE now. Statuses, agency
    references and statistics stay; the erasure is recorded in the evidence log, which still
    verifies. Cannot be undone."""
    from hub import gdpr as privacy
    from hub.clock import SystemClock

    ref = _reference(reference)
    if not yes:
        click.confirm(
            f"Erase the personal data and attachments of {ref}? This cannot be undone",
            abort=True,
        )
    db = _privacy_db()
    try:
        done = privacy.erase_case(
            db, ref, SystemClock().now(), actor=f"operator:{operator}", reason=reason
        )
    except privacy.PrivacyError as exc:
        raise click.BadParameter(str(exc), param_hint="REFERENCE") from None
    finally:
        db.dispose()
    kept = (
        f"; {done.legacy_entries} evidence entries older than migration 0014 kept their data"
        if done.legacy_entries
        else ""
    )
    click.echo(
        f"erased {done.reference}: {done.rows} rows, {done.attachments} attachments, "
        f"{done.evidence_entries} evidence entries emptied (digests kept){kept}"
    )


@gdpr.command("housekeeping")
@click.option("--limit", default=200, show_default=True, type=int, help="cases per run")
def gdpr_housekeeping(limit: int) -> None:
    """Erase the cases past their retention period (contracts/retention.yaml); the worker
    runs this every day."""
    from hub import gdpr as privacy
    from hub.clock import SystemClock

    try:
        retention = privacy.retention_periods()
    except privacy.RetentionError as exc:
        raise click.ClickException(str(exc)) from None
    db = _privacy_db()
    try:
        done = privacy.housekeeping(db, SystemClock().now(), retention, limit=limit)
    finally:
        db.dispose()
    for d in done:
        click.echo(f"erased {d.reference}: {d.rows} rows, {d.attachments} attachments")
    click.echo(f"{len(done)} case(s) past retention erased")


@gdpr.command("retention")
def gdpr_retention() -> None:
    """Print the retention periods in force."""
    from hub import gdpr as privacy

    try:
        r = privacy.retention_periods()
    except privacy.RetentionError as exc:
        raise click.ClickException(str(exc)) from None
    for kind, period in r.closed.items():
        click.echo(f"{kind:12} {period.text} after the case is closed")
    for status, period in r.by_status.items():
        click.echo(f"{'closed ' + status:12} {period.text} instead")
    click.echo(f"{'never closed':12} {r.inactive.text} after its last activity")


@gdpr.command("requests")
@click.option("--all", "everything", is_flag=True, help="done ones too")
def gdpr_requests(everything: bool) -> None:
    """Consumers' erasure requests, the most urgent first, with the date each is due."""
    from hub import gdpr as privacy
    from hub.clock import SystemClock

    db = _privacy_db()
    try:
        rows = privacy.requests(db, pending_only=not everything)
    finally:
        db.dispose()
    now = SystemClock().now()
    for r in rows:
        late = " OVERDUE" if r.overdue(now) else ""
        done = f" done {r.done_at:%Y-%m-%d} by {r.done_by}" if r.done_at else ""
        click.echo(
            f"#{r.id:<5} {r.reference}  asked {r.requested_at:%Y-%m-%d}  "
            f"due {r.due_at:%Y-%m-%d}{late}{done}"
        )
    if not rows:
        click.echo("no erasure requests waiting")


# ------------------------------------------------------------------------------------ simulators


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("kind")
@click.pass_context
def simulate(ctx: click.Context, kind: str) -> None:
    """Run an agency simulator of KIND: rest, soap, email or sftp (its options: `loket simulate
    KIND --help`). Comes with the loket-simulators distribution (pip install -e ./simulators)."""
    from loket.devrun import SimulatorsMissing, simulators

    try:
        module = simulators().kind_module(kind)
    except SimulatorsMissing as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="KIND") from None
    module.main(ctx.args)


@main.group()
def contracts() -> None:
    """The published contracts (contracts/)."""


@contracts.command("sync")
@click.option("--check", is_flag=True, help="only say whether the file is current (exit 1 if not)")
def contracts_sync(check: bool) -> None:
    """Write the domain codes and each domain's case kinds from contracts/domains.yaml into
    contracts/case.schema.json, so the contract accepts exactly the cases the hub takes."""
    import json

    from hub import taxonomy
    from hub.config import CONTRACTS_DIR

    path = CONTRACTS_DIR / "case.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    rules = taxonomy.contract_rules()
    current = (
        schema["properties"]["domain"].get("enum") == rules["domain_enum"]
        and schema.get("allOf") == rules["allOf"]
    )
    if check:
        click.echo(
            f"{path}: " + ("current" if current else "out of date; run `loket contracts sync`")
        )
        sys.exit(0 if current else 1)
    schema["properties"]["domain"]["enum"] = rules["domain_enum"]
    schema["allOf"] = rules["allOf"]
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    click.echo(f"{path}: {len(rules['domain_enum'])} domains, {len(rules['allOf'])} kind rules")


if __name__ == "__main__":
    main()


# -------------------------------------------------------------------------------- agency API


@main.group("agency-client")
def agency_client() -> None:
    """OAuth 2.0 clients of the agency API (/api/v1/agency): one per agency."""


def _client_command(action: str, agency_id: str, operator: str, **options):
    from hub import agencyclients

    hub = _hub(_settings())
    try:
        return getattr(agencyclients, action)(hub, agency_id, by=f"operator:{operator}", **options)
    except agencyclients.ClientError as exc:
        raise click.ClickException(str(exc)) from None


_OPERATOR = click.option(
    "--operator", default=lambda: os.environ.get("USER", "operator"), show_default="$USER"
)


def _print_credentials(creds) -> None:
    click.echo(f"agency         {creds.agency_id}")
    click.echo(f"client_id      {creds.client_id}")
    click.echo(f"client_secret  {creds.client_secret}")
    if creds.previous_valid_until is not None:
        click.echo(f"the previous secret works until {creds.previous_valid_until.isoformat()}")
    click.echo("The secret is shown this once; only its hash is kept.", err=True)


@agency_client.command("create")
@click.argument("agency_id")
@_OPERATOR
def agency_client_create(agency_id: str, operator: str) -> None:
    """Make the agency's client; prints its id and secret once."""
    _print_credentials(_client_command("create", agency_id, operator))


@agency_client.command("rotate")
@click.argument("agency_id")
@click.option(
    "--overlap-hours",
    type=click.IntRange(0, 24 * 30),
    default=24,
    show_default=True,
    help="how long the previous secret keeps working",
)
@_OPERATOR
def agency_client_rotate(agency_id: str, overlap_hours: int, operator: str) -> None:
    """A new secret, printed once; the previous one works for the overlap period."""
    from datetime import timedelta

    _print_credentials(
        _client_command("rotate", agency_id, operator, overlap=timedelta(hours=overlap_hours))
    )


@agency_client.command("revoke")
@click.argument("agency_id")
@_OPERATOR
def agency_client_revoke(agency_id: str, operator: str) -> None:
    """End the client and every token it holds, now."""
    client_id = _client_command("revoke", agency_id, operator)
    click.echo(f"{client_id} revoked; its tokens no longer work")
