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

const MIGRATIONS: &[Migration] = &[Migration {
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
}];

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
