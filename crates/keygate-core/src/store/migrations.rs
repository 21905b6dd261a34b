//! Embedded, ordered migrations, each with its SQLite and PostgreSQL text, applied in one
//! transaction per migration and recorded in `keygate_migrations`.

use super::{Store, StoreError};

/// One schema change.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "instance",
        sqlite: "CREATE TABLE IF NOT EXISTS keygate_instance (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    INSERT OR IGNORE INTO keygate_instance (id) VALUES (1);",
        postgres: "CREATE TABLE IF NOT EXISTS keygate_instance (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    INSERT INTO keygate_instance (id) VALUES (1) ON CONFLICT DO NOTHING;",
    },
    Migration {
        version: 2,
        name: "virtual keys and spend log",
        sqlite: "CREATE TABLE keygate_keys (
        token_id TEXT PRIMARY KEY,
        key_name TEXT NOT NULL,
        key_alias TEXT UNIQUE,
        models TEXT NOT NULL DEFAULT '[]',
        spend REAL NOT NULL DEFAULT 0,
        max_budget REAL,
        soft_budget REAL,
        budget_duration TEXT,
        budget_reset_at INTEGER,
        rpm_limit INTEGER,
        tpm_limit INTEGER,
        max_parallel_requests INTEGER,
        metadata TEXT NOT NULL DEFAULT '{}',
        team_id TEXT,
        user_id TEXT,
        blocked BOOLEAN NOT NULL DEFAULT FALSE,
        expires INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX keygate_keys_user ON keygate_keys (user_id);
    CREATE INDEX keygate_keys_team ON keygate_keys (team_id);
    CREATE TABLE keygate_spend_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_id TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        status INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX keygate_spend_log_token ON keygate_spend_log (token_id, created_at);",
        postgres: "CREATE TABLE keygate_keys (
        token_id TEXT PRIMARY KEY,
        key_name TEXT NOT NULL,
        key_alias TEXT UNIQUE,
        models TEXT NOT NULL DEFAULT '[]',
        spend DOUBLE PRECISION NOT NULL DEFAULT 0,
        max_budget DOUBLE PRECISION,
        soft_budget DOUBLE PRECISION,
        budget_duration TEXT,
        budget_reset_at BIGINT,
        rpm_limit BIGINT,
        tpm_limit BIGINT,
        max_parallel_requests BIGINT,
        metadata TEXT NOT NULL DEFAULT '{}',
        team_id TEXT,
        user_id TEXT,
        blocked BOOLEAN NOT NULL DEFAULT FALSE,
        expires BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_used_at BIGINT
    );
    CREATE INDEX keygate_keys_user ON keygate_keys (user_id);
    CREATE INDEX keygate_keys_team ON keygate_keys (team_id);
    CREATE TABLE keygate_spend_log (
        id BIGSERIAL PRIMARY KEY,
        token_id TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        status INTEGER NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX keygate_spend_log_token ON keygate_spend_log (token_id, created_at);",
    },
    Migration {
        version: 3,
        name: "engine roles and leases",
        sqlite: "CREATE TABLE keygate_roles (
        mount TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (mount, name)
    );
    CREATE TABLE keygate_leases (
        lease_id TEXT PRIMARY KEY,
        mount TEXT NOT NULL,
        role TEXT NOT NULL,
        token_id TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_renewal INTEGER,
        revoked_at INTEGER
    );
    CREATE INDEX keygate_leases_live ON keygate_leases (expires_at) WHERE revoked_at IS NULL;",
        postgres: "CREATE TABLE keygate_roles (
        mount TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (mount, name)
    );
    CREATE TABLE keygate_leases (
        lease_id TEXT PRIMARY KEY,
        mount TEXT NOT NULL,
        role TEXT NOT NULL,
        token_id TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_renewal BIGINT,
        revoked_at BIGINT
    );
    CREATE INDEX keygate_leases_live ON keygate_leases (expires_at) WHERE revoked_at IS NULL;",
    },
    Migration {
        version: 4,
        name: "cluster-wide limits",
        // One SQLite file serves one instance: its limits stay in memory.
        sqlite: "SELECT 1;",
        postgres: "ALTER TABLE keygate_keys ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE keygate_instances (
        instance_id TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
    );
    CREATE TABLE keygate_reservations (
        instance_id TEXT NOT NULL,
        token_id TEXT NOT NULL,
        micros BIGINT NOT NULL,
        PRIMARY KEY (instance_id, token_id)
    );
    CREATE TABLE keygate_rate_windows (
        token_id TEXT NOT NULL,
        minute BIGINT NOT NULL,
        requests BIGINT NOT NULL DEFAULT 0,
        tokens BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (token_id, minute)
    );",
    },
];

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS keygate_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL
)";

/// The advisory lock key that serialises migrations on PostgreSQL ("keygate" in ASCII).
const MIGRATION_LOCK: i64 = 0x006b_6579_6761_7465;

/// Applies every migration not yet recorded.
pub async fn run(store: &Store) -> Result<(), StoreError> {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query(BOOKKEEPING).execute(pool).await?;
            for m in MIGRATIONS {
                let mut tx = pool.begin().await?;
                let done: Option<(i64,)> =
                    sqlx::query_as("SELECT version FROM keygate_migrations WHERE version = ?")
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if done.is_none() {
                    sqlx::raw_sql(m.sqlite).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO keygate_migrations (version, name) VALUES (?, ?)")
                        .bind(m.version)
                        .bind(m.name)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Store::Postgres(pool) => {
            // One transaction under an advisory lock: instances starting together on one
            // database take turns (concurrent `CREATE TABLE IF NOT EXISTS` races in PostgreSQL),
            // and a failed migration leaves nothing half-applied.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            sqlx::query(BOOKKEEPING).execute(&mut *tx).await?;
            for m in MIGRATIONS {
                let done: Option<(i64,)> =
                    sqlx::query_as("SELECT version FROM keygate_migrations WHERE version = $1")
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if done.is_none() {
                    sqlx::raw_sql(m.postgres).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO keygate_migrations (version, name) VALUES ($1, $2)")
                        .bind(m.version)
                        .bind(m.name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The versions recorded as applied.
pub async fn applied(store: &Store) -> Result<Vec<i64>, StoreError> {
    let sql = "SELECT version FROM keygate_migrations ORDER BY version";
    let rows: Vec<(i64,)> = match store {
        Store::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(|(v,)| v).collect())
}
