"""Schema migrations: a store written by the release with schema version 1 is upgraded in place, on
SQLite and PostgreSQL, and its campaign resumes and finishes; a newer store is refused.

The fixture in ``fixtures/store-v1`` was written by that release itself (``scripts/make_v1_store.py``):
the SQLite file as it is, and for PostgreSQL that release's DDL and the same rows.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from openeo_upscale.backend import LocalBackend
from openeo_upscale.campaign import Campaign, Store, StoreError, TaskState
from openeo_upscale.campaign.store.migrate import HEAD, REVISIONS, alembic_config
from openeo_upscale.campaign.store.schema import SCHEMA_VERSION, metadata
from openeo_upscale.cli import main
from tests.campaign.team import backend_jobs, connect

S = TaskState
FIXTURE = Path(__file__).parent / "fixtures" / "store-v1"
V1_UID = "9ddf9f06ecb3"
"""The uid of the fixture's campaign ``antwerp`` (random when the fixture was written)."""


def _v1_on_postgresql(url: str) -> None:
    """The fixture's store on PostgreSQL: the release's own DDL, then every row."""
    rows = json.loads((FIXTURE / "rows.json").read_text())
    with psycopg.connect(url) as conn:
        conn.execute((FIXTURE / "postgresql.sql").read_text())
        for table in rows["order"]:
            columns = rows["tables"][table]["columns"]
            statement = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            )
            for values in rows["tables"][table]["rows"]:
                conn.execute(statement, values)
            if "id" in columns:
                # Rows were inserted with their ids: move the sequence past them, as a dump does.
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")


@pytest.fixture
def v1_store(store_target: str, tmp_path: Path) -> str:
    """Where a fresh copy of the version-1 store is, on SQLite or PostgreSQL."""
    if "://" in store_target:
        _v1_on_postgresql(store_target)
    else:
        shutil.copy(FIXTURE / "campaign.sqlite", store_target)
    return store_target


def _versions(store: Store) -> tuple[list[str], list[int]]:
    with store.engine.connect() as conn:
        revisions = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        versions = list(conn.execute(sa.text("SELECT version FROM schema_info")).scalars())
    return revisions, versions


def test_a_version_1_store_is_upgraded_and_its_campaign_resumes_and_finishes(
    v1_store: str, backend: LocalBackend, tmp_path: Path
) -> None:
    with Store.open(v1_store) as store:
        assert store.prepared is not None
        assert (store.prepared.found, store.prepared.version) == (1, SCHEMA_VERSION)
        assert _versions(store) == ([HEAD], [SCHEMA_VERSION])
        assert [(c["name"], c["duplicate_of"]) for c in store.campaigns()] == [
            ("antwerp", None),
            ("dup", None),
            ("dup", 2),
        ]
        # The ledger holds every attempt the release's events record, the last one with its job.
        retried, failed, canceled, crashed = 1, 2, 3, 4
        assert [(r.attempt, r.job_id, r.status) for r in store.jobs_of(failed)] == [
            (1, None, "error"),
            (2, None, "error"),
            (3, "j-v1-0002-3", "error"),
        ]
        assert [r.client_token for r in store.jobs_of(failed)] == [f"ou-{V1_UID}-2-{n}" for n in (1, 2, 3)]
        assert [(r.job_id, r.finished is not None) for r in store.jobs_of(retried)] == [("j-v1-0001-1", True)]
        assert [(r.job_id, r.finished) for r in store.jobs_of(crashed)] == [(None, None)]
        assert store.jobs_of(canceled) == []
        with pytest.raises(StoreError, match=r"2 campaigns are named 'dup'.*store repair"):
            Campaign.open(store, "dup")

        campaign = Campaign.open(store, "antwerp")
        moved = {**campaign.settings.to_dict(), "output_dir": str(tmp_path / "results")}
        store.set_campaign_config(campaign.id, moved)
        campaign = Campaign.open(store, "antwerp")
        assert campaign.retry([S.FAILED, S.CANCELED]) == 2
        campaign.add_backend("local", connect(backend), parallel_jobs=3)
        summary = campaign.run()
        assert summary["counts"]["done"] == summary["tasks"] == 9, summary
        listed = backend_jobs(backend)
        new_rows = [r for r in store.ledger(campaign.id) if r.job_id and not r.job_id.startswith("j-v1-")]
        assert sorted(r.job_id for r in new_rows) == sorted(str(job["id"]) for job in listed)
        assert summary["credits"] == pytest.approx(sum(job["costs"] for job in listed))
        # The task left in `creating` by a crash got its job created now, under its recorded token.
        assert [r.client_token for r in store.jobs_of(crashed)] == [f"ou-{V1_UID}-4-1"]


def test_a_store_of_a_newer_release_is_refused(store: Store, store_target: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StoreError, match=r"revision '9999', unknown to this code.*newer openeo-upscale"):
        Store.open(store_target)


@pytest.mark.parametrize("found", [SCHEMA_VERSION + 1, SCHEMA_VERSION + 7])
def test_a_newer_schema_version_is_refused(store: Store, store_target: str, found: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET version = :v"), {"v": found})
    store.close()
    with pytest.raises(
        StoreError, match=rf"schema version {found}, newer than this code's version {SCHEMA_VERSION}"
    ):
        Store.open(store_target)


def test_the_migrations_build_the_tables_the_code_creates(store_target: str) -> None:
    """From nothing through every revision, the schema equals `schema.metadata` (Alembic's own diff)."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from openeo_upscale.campaign.store.connect import engine_for

    engine = engine_for(store_target)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_the_revisions_the_code_knows_are_the_migration_scripts() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert [s.revision for s in reversed(list(scripts.walk_revisions()))] == list(REVISIONS)
    assert scripts.get_current_head() == HEAD


def test_processes_opening_an_old_store_at_once_upgrade_it_once(v1_store: str) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def open_it() -> None:
        barrier.wait()
        try:
            with Store.open(v1_store) as opened:
                outcomes.append(opened.prepared)
        except Exception as exc:  # collected, asserted below
            outcomes.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert sorted(getattr(o, "found", None) for o in outcomes) == [1, *[SCHEMA_VERSION] * 3]
    with Store.open(v1_store) as store:
        assert _versions(store) == ([HEAD], [SCHEMA_VERSION])


def test_store_upgrade_and_repair_commands(v1_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "upgrade", v1_store]) == 0
    assert f"from schema version 1 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["store", "upgrade", v1_store]) == 0
    assert "nothing to do" in capsys.readouterr().out

    assert main(["status", v1_store, "--name", "dup"]) == 2
    assert "store repair" in capsys.readouterr().err
    assert main(["store", "repair", v1_store]) == 0
    out = capsys.readouterr().out
    assert (
        "campaign 3 (0 done) renamed 'dup-duplicate-3'" in out
        and "campaign 2 (0 done) keeps the name 'dup'" in out
    )
    assert main(["store", "repair", v1_store]) == 0
    assert "nothing to repair" in capsys.readouterr().out
    for name in ("dup", "dup-duplicate-3", "antwerp"):
        assert main(["status", v1_store, "--name", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["campaign"] == name
