"""Tables of the application store (SQLAlchemy Core).

Both planes share this database; DBOS keeps its own system tables beside it.
Times are UNIX seconds (float) so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_users_tenant", "tenant_id"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("family_id", sa.String(36), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),  # set when rotated: a second use is reuse
    sa.Column("revoked_at", sa.Float),
    sa.Index("ix_refresh_tokens_family", "family_id"),
    sa.Index("ix_refresh_tokens_user", "user_id"),
)

# Access tokens are JWTs; logout and user disabling revoke them by token id.
revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", sa.String(36), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(36)),  # None for anonymous sessions
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("context", JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    # The last seq handed out: bumped in the transaction that appends an event,
    # whose row lock orders concurrent appends to the same session.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_sessions_tenant_user", "tenant_id", "user_id"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # also the DBOS workflow id
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(36)),
    sa.Column("session_id", sa.String(36)),
    sa.Column("parent_id", sa.String(64)),
    sa.Column("retry_of", sa.String(64)),
    sa.Column("intent", sa.String(200), nullable=False),
    sa.Column("params", JSON, nullable=False),
    sa.Column("params_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("result", JSON),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("progress", sa.Float),
    sa.Column("progress_message", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Index("ix_executions_tenant_status", "tenant_id", "status"),
    sa.Index("ix_executions_session", "session_id"),
    sa.Index("ix_executions_tenant_created", "tenant_id", "created_at"),
)

# The event log. Execution events are keyed by (execution_id, n): a replay
# after crash recovery re-appends the same n, which the unique key turns into
# a no-op, so every event is recorded exactly once. Events of a session also
# carry the session's gapless seq.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(64)),
    sa.Column("n", sa.Integer),
    sa.Column("session_id", sa.String(36)),
    sa.Column("seq", sa.BigInteger),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("data", JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("execution_id", "n", name="uq_events_execution_n"),
    sa.UniqueConstraint("session_id", "seq", name="uq_events_session_seq"),
    sa.Index("ix_events_created", "created_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("actor_id", sa.String(36)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("detail", JSON, nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_audit_log_tenant_created", "tenant_id", "created_at"),
)

# Runtime replicas announce themselves here; a replica whose heartbeat is
# stale is dead, and the first live replica to claim it recovers its work.
runtime_replicas = sa.Table(
    "runtime_replicas",
    metadata,
    sa.Column("executor_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)
