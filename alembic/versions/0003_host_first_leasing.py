"""Host-first leasing: the ready URLs and the leases in narrow tables of their own, per-host
counts of URLs by state, a retry state; runs say why they failed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("in_flight", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("retrying", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("delay", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("cap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("leased_at", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))

    op.create_table(
        "ready",
        sa.Column("crawl_id", ID, nullable=False),
        sa.Column("host", sa.String(length=300), nullable=False),
        sa.Column("depth", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("url_key", sa.String(length=32), nullable=False),
        sa.Column("frontier_id", ID, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("redirect_hops", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_ready_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("crawl_id", "host", "depth", "url_key", name=op.f("pk_ready")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "leases",
        sa.Column("frontier_id", ID, autoincrement=False, nullable=False),
        sa.Column("crawl_id", ID, nullable=False),
        sa.Column("host", sa.String(length=300), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("url_key", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("redirect_hops", sa.Integer(), nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_leases_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_leases_run_id_runs")),
        sa.PrimaryKeyConstraint("frontier_id", name=op.f("pk_leases")),
    )
    op.create_index("ix_leases_expiry", "leases", ["crawl_id", "expires_at"], unique=False)
    op.create_index("ix_leases_run", "leases", ["run_id"], unique=False)
    op.create_index("ix_leases_host", "leases", ["crawl_id", "host", "depth"], unique=False)

    # A URL marked leased with no owner was nobody's: queued again. A queued URL with a retry
    # time was a retry: it waits in its own state now (a lease queues it once it is due).
    op.execute(
        "UPDATE frontier SET state = 'queued' WHERE state = 'leased' AND lease_owner IS NULL"
    )
    op.execute("UPDATE frontier SET state = 'retry' WHERE state = 'queued' AND next_attempt_at > 0")
    op.execute(
        """
        INSERT INTO leases (frontier_id, crawl_id, host, depth, url_key, url, attempt,
                            redirect_hops, run_id, token, expires_at)
        SELECT id, crawl_id, host, depth, url_key, url, attempts, redirect_hops, lease_owner,
               lease_token, lease_expires_at
        FROM frontier WHERE state = 'leased'
        """
    )
    op.execute(
        """
        INSERT INTO ready (crawl_id, host, depth, url_key, frontier_id, url, attempts,
                           redirect_hops)
        SELECT crawl_id, host, depth, url_key, id, url, attempts, redirect_hops
        FROM frontier WHERE state = 'queued'
        """
    )
    op.execute("UPDATE frontier SET state = 'queued' WHERE state = 'leased'")

    # Every host with URLs gets a row, and its counts.
    op.execute(
        """
        INSERT INTO hosts (crawl_id, host, next_fetch_at, failures, breaker_until, breaker_trips,
                           urls_started)
        SELECT DISTINCT f.crawl_id, f.host, 0, 0, 0, 0, 0 FROM frontier f
        WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.crawl_id = f.crawl_id AND h.host = f.host)
        """
    )
    for column, rows in (
        ("queued", "ready r"),
        ("in_flight", "leases r"),
        ("retrying", "frontier r"),
    ):
        retry_only = " AND r.state = 'retry'" if column == "retrying" else ""
        op.execute(
            f"""
            UPDATE hosts SET {column} = (
                SELECT count(*) FROM {rows}
                WHERE r.crawl_id = hosts.crawl_id AND r.host = hosts.host{retry_only}
            )
            """
        )

    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_lease")
        batch_op.drop_index("ix_frontier_host")
        batch_op.drop_constraint("fk_frontier_lease_owner_runs", type_="foreignkey")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_token")
        batch_op.drop_column("lease_owner")
        batch_op.create_index(
            "ix_frontier_retry",
            ["crawl_id", "next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("state = 'retry'"),
            postgresql_where=sa.text("state = 'retry'"),
        )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_hosts_ready",
            ["crawl_id", "leased_at"],
            unique=False,
            sqlite_where=sa.text("queued > 0"),
            postgresql_where=sa.text("queued > 0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index("ix_hosts_ready")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_retry")
        batch_op.add_column(sa.Column("lease_owner", ID, nullable=True))
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.Float(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_frontier_lease_owner_runs"), "runs", ["lease_owner"], ["id"]
        )
        batch_op.create_index(
            "ix_frontier_host", ["crawl_id", "host", "state", "depth"], unique=False
        )
        batch_op.create_index(
            "ix_frontier_lease", ["crawl_id", "state", "depth", "url_key"], unique=False
        )
    op.execute(
        """
        UPDATE frontier SET
            state = 'leased',
            attempts = (SELECT attempt FROM leases WHERE frontier_id = frontier.id),
            lease_owner = (SELECT run_id FROM leases WHERE frontier_id = frontier.id),
            lease_token = (SELECT substr(token, 1, 32) FROM leases WHERE frontier_id = frontier.id),
            lease_expires_at = (SELECT expires_at FROM leases WHERE frontier_id = frontier.id)
        WHERE id IN (SELECT frontier_id FROM leases)
        """
    )
    op.execute(
        """
        UPDATE frontier SET attempts = coalesce((
            SELECT attempts FROM ready r
            WHERE r.crawl_id = frontier.crawl_id AND r.host = frontier.host
              AND r.depth = frontier.depth AND r.url_key = frontier.url_key
        ), attempts)
        WHERE state = 'queued'
        """
    )
    op.execute("UPDATE frontier SET state = 'queued' WHERE state = 'retry'")
    op.drop_table("leases")
    op.drop_table("ready")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("error")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("leased_at")
        batch_op.drop_column("cap")
        batch_op.drop_column("delay")
        batch_op.drop_column("retrying")
        batch_op.drop_column("in_flight")
        batch_op.drop_column("queued")
