"""Whole-group statements that stay one cached statement whatever the group's size.

A group of receipts updates many rows with a value each. Built as `VALUES (...), (...)` or an
`IN (...)` list, the SQL text changes with every group size: SQLAlchemy compiles it anew and
psycopg parses it anew each time, which costs more than the rows. On PostgreSQL the values go
as one array per column instead (`unnest(:ids, :payloads) AS rows(id, payload)`, `= ANY(:ids)`):
one text, compiled once, prepared by the driver. SQLite has no arrays; there the same update is
an executemany of one cached statement, which its driver runs in C.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, JSON, BigInteger, String, Text, bindparam, func, update
from sqlalchemy.types import TypeEngine


def any_of(column: Any, ids: Iterable[Any], dialect: str) -> Any:
    """`column = ANY(:ids)` on PostgreSQL (one statement text for any count), else IN. Ids are
    integers, or strings for a string column."""
    if dialect == "postgresql":
        item = String() if isinstance(column.type, String) else BigInteger()
        return column == func.any(bindparam(None, list(ids), type_=ARRAY(item), unique=True))
    return column.in_(list(ids))


def unnest(name: str, columns: dict[str, TypeEngine], rows: list[tuple[Any, ...]]) -> Any:
    """PostgreSQL: the rows as a derived table `name(col, ...)` from one array per column.
    A JSON column travels as text (cast it back to JSON where it is used)."""
    arrays = []
    for i, (col, type_) in enumerate(columns.items()):
        values = [row[i] for row in rows]
        if isinstance(type_, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
            type_ = Text()
        arrays.append(bindparam(f"{name}_{col}", values, type_=ARRAY(type_)))
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=name)


def update_rows(conn: Any, table: Any, key: str, rows: list[dict[str, Any]], **same: Any) -> None:
    """`UPDATE table SET col = row[col], ... WHERE key = row[key]` for every row (plus the
    `same` values for all of them), in key order, as one statement: from `unnest` on
    PostgreSQL, an executemany elsewhere. Every row names the same columns."""
    if not rows:
        return  # (an empty executemany would run the UPDATE once, unbound)
    rows = sorted(rows, key=lambda row: row[key])
    columns = [name for name in rows[0] if name != key]
    if conn.dialect.name == "postgresql":
        names = [key, *columns]
        source = unnest(
            f"{table.name}_rows",
            {name: table.c[name].type for name in names},
            [tuple(row[name] for name in names) for row in rows],
        )
        conn.execute(
            update(table)
            .where(table.c[key] == source.c[key])
            .values(**{name: source.c[name] for name in columns}, **same)
        )
        return
    conn.execute(
        update(table)
        .where(table.c[key] == bindparam(f"row_{key}"))
        .values(**{name: bindparam(f"row_{name}") for name in columns}, **same),
        [{f"row_{name}": value for name, value in row.items()} for row in rows],
    )
