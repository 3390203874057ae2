"""Review of the night's keys read from the `keys` table alone (05796a1, 5c6463a): the journal's
note that every row has its payload keys must not hide rows another writer added since."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, PASSWORD, TOKEN, USER, journal_of


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), username=USER, password=PASSWORD) as box:
        yield box


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"])
def test_rows_written_without_their_keys_after_the_note_are_still_keyed(etl, sandbox, tmp_path: Path,
                                                                         journal, request):
    """A journal shared with a release before 5c6463a (a PostgreSQL journal of several machines
    mid-upgrade, or a rollback and back): that release writes --key rows without keeping their
    payload keys, and knows nothing of the note `every_row_keyed`. A later night of the same
    credit uses, identified by their cells, must stop (as ad34141 does: exit 2, nothing posted),
    never post them a second time."""
    more: tuple[str, ...] = ()
    if journal == "postgresql":
        more = ("--journal", request.getfixturevalue("pg_url"))

    def post(*args):
        return etl("import", *args, *more, "--api-url", sandbox.url, "--rate", "1000", "--token", TOKEN,
                   "--no-check-credits", env=NO_ENV)

    note = "SELECT value FROM meta WHERE key = 'every_row_keyed'"
    if journal == "postgresql":
        import psycopg

        def sql(statement: str, *args: object) -> Any:
            with psycopg.connect(more[1], autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), args)
                return cur.fetchone() if cur.description else cur.rowcount
    else:
        def sql(statement: str, *args: object) -> Any:
            with sqlite3.connect(journal_of(sandbox.url)) as db:
                cur = db.execute(statement, args)
                return cur.fetchone() if cur.description else cur.rowcount

    first = tmp_path / "first.csv"
    first.write_text("CoworkerBookingCreditId,CreditUsed,Description\n11,1.5,first night\n")
    assert post(first).code == 0  # the journal notes that every row has its payload keys
    was = sql(note)
    assert was is not None
    keyed = tmp_path / "keyed.csv"
    keyed.write_text("Ref,CoworkerBookingCreditId,CreditUsed,Description\nA1,12,2,Desk\nA2,13,3,Room\n")
    assert post(keyed, "--key", "Ref").code == 0
    # what the release before writes for those rows: no keys of theirs (it keeps none for --key
    # rows), and the note as it found it (it knows nothing of it)
    assert sql("DELETE FROM keys WHERE identity IN (SELECT identity FROM rows WHERE scheme = 'key:ref')") == 2
    sql("UPDATE meta SET value = ? WHERE key = 'every_row_keyed'", was[0])
    posts = sandbox.stats.posts
    again = tmp_path / "again.csv"
    again.write_text("CoworkerBookingCreditId,CreditUsed,Description\n12,2,Desk\n13,3,Room\n")
    run = post(again)
    assert sandbox.stats.posts == posts, "the credit uses created under --key were posted again"
    assert run.code == 2, run.err
    assert "under another way of identifying rows" in run.err
