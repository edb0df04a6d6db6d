"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 19:18:41.993285
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crawls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("urls_started", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crawls")),
        sa.UniqueConstraint("name", name=op.f("uq_crawls_name")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("frontend", sa.String(length=20), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("startup_s", sa.Float(), nullable=True),
        sa.Column("store_s", sa.Float(), nullable=True),
        sa.Column("user_cpu_s", sa.Float(), nullable=True),
        sa.Column("system_cpu_s", sa.Float(), nullable=True),
        sa.Column("peak_rss_kb", sa.Integer(), nullable=True),
        sa.Column("ctx_voluntary", sa.BigInteger(), nullable=True),
        sa.Column("ctx_involuntary", sa.BigInteger(), nullable=True),
        sa.Column("workers", sa.Integer(), nullable=True),
        sa.Column("ipc_bytes", sa.BigInteger(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_runs_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_crawl_id"), ["crawl_id"], unique=False)

    op.create_table(
        "frontier",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_key", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=300), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("redirect_hops", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "lease_owner", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column(
            "found_from", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["crawl_id"],
            ["crawls.id"],
            name=op.f("fk_frontier_crawl_id_crawls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["found_from"], ["frontier.id"], name=op.f("fk_frontier_found_from_frontier")
        ),
        sa.ForeignKeyConstraint(
            ["lease_owner"], ["runs.id"], name=op.f("fk_frontier_lease_owner_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frontier")),
        sa.UniqueConstraint("crawl_id", "url_key", name=op.f("uq_frontier_crawl_id_url_key")),
    )
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.create_index(
            "ix_frontier_lease", ["crawl_id", "state", "depth", "url_key"], unique=False
        )

    op.create_table(
        "fetches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "frontier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("body_bytes", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("queue_wait_s", sa.Float(), nullable=False),
        sa.Column("connect_s", sa.Float(), nullable=True),
        sa.Column("first_byte_s", sa.Float(), nullable=True),
        sa.Column("download_s", sa.Float(), nullable=True),
        sa.Column("parse_s", sa.Float(), nullable=True),
        sa.Column("total_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_fetches_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["frontier_id"],
            ["frontier.id"],
            name=op.f("fk_fetches_frontier_id_frontier"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_fetches_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fetches")),
    )
    with op.batch_alter_table("fetches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fetches_crawl_frontier", ["crawl_id", "frontier_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fetches_error_kind"), ["error_kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_fetches_run_id"), ["run_id"], unique=False)

    op.create_table(
        "pages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crawl_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "frontier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("fetch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("canonical", sa.Text(), nullable=True),
        sa.Column("charset", sa.String(length=40), nullable=True),
        sa.Column("link_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_pages_crawl_id_crawls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["fetch_id"], ["fetches.id"], name=op.f("fk_pages_fetch_id_fetches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["frontier_id"],
            ["frontier.id"],
            name=op.f("fk_pages_frontier_id_frontier"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("frontier_id", name=op.f("uq_pages_frontier_id")),
    )
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pages_crawl_id"), ["crawl_id"], unique=False)

    op.create_table(
        "links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("page_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("anchor_text", sa.Text(), nullable=False),
        sa.Column("rel", sa.String(length=200), nullable=False),
        sa.Column("nofollow", sa.Boolean(), nullable=False),
        sa.Column("followed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"], name=op.f("fk_links_page_id_pages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_links_page_id"), ["page_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_links_page_id"))

    op.drop_table("links")
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pages_crawl_id"))

    op.drop_table("pages")
    with op.batch_alter_table("fetches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fetches_run_id"))
        batch_op.drop_index(batch_op.f("ix_fetches_error_kind"))
        batch_op.drop_index("ix_fetches_crawl_frontier")

    op.drop_table("fetches")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_lease")

    op.drop_table("frontier")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_crawl_id"))

    op.drop_table("runs")
    op.drop_table("crawls")
