//! The durable store: SQLite (embedded default) or PostgreSQL, chosen by URL, with migrations
//! embedded in the binary and applied at start. Later concerns (keys, leases, spend) add their
//! tables as new migrations; a migration once released is never edited.

/// Runs `$body` with `$pool` bound to the right pool and `$sql` to the statement text in the
/// right placeholder style (`pg` and `Store` must be in scope). The body is written once and
/// compiled for both databases.
macro_rules! on_store {
    ($store:expr, $text:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                let $sql: String = $text.to_string();
                $body
            }
            Store::Postgres($pool) => {
                let $sql: String = pg(&$text);
                $body
            }
        }
    };
}

mod cluster;
mod engine;
mod keys;
mod migrations;

pub use cluster::{BudgetState, Leadership, WindowState};
pub use engine::LeaseRecord;
pub use keys::{KeyColumn, KeyFilter, KeyRecord, Releases, SpendEntry};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL scheme (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl,
    /// A unique field (`key_alias`, or the key itself) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database could not be opened or a statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The store, on one of the two supported databases.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite file.
    Sqlite(SqlitePool),
    /// PostgreSQL server.
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating an SQLite file on first start) and migrates the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            Self::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            Self::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// The same database for writes that may be lost if the database server itself crashes
    /// (not if keygate does), for budget reservations, rate windows and batched spend. Keys,
    /// roles and leases are never written through it.
    /// - PostgreSQL: a second, lazily connected pool whose commits do not wait for the WAL
    ///   flush (`synchronous_commit = off`).
    /// - SQLite: one lazily opened connection with `synchronous = NORMAL`: a commit is in the
    ///   WAL when it returns (a crash of keygate loses nothing), and only the operating system's
    ///   crash could lose the last ones. Being one connection, it also keeps its page cache
    ///   between batches: a pool's connections in turn would each re-read the pages the others
    ///   changed.
    pub fn relaxed(&self) -> Self {
        match self {
            Self::Sqlite(pool) => {
                let options = pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .synchronous(SqliteSynchronous::Normal);
                Self::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_lazy_with(options),
                )
            }
            Self::Postgres(pool) => {
                let options = pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .options([("synchronous_commit", "off")]);
                Self::Postgres(
                    PgPoolOptions::new()
                        .max_connections(8)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_lazy_with(options),
                )
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let rows_affected = match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await?.rows_affected(),
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await?.rows_affected(),
        };
        tracing::trace!(rows_affected, "store ping");
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// The applied migration versions, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        migrations::applied(self).await
    }
}

/// `?` placeholders rewritten as PostgreSQL's `$1, $2, ...`.
fn pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:*****{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:*****@h/db"
        );
        assert_eq!(redact_url("sqlite://keygate.db"), "sqlite://keygate.db");
    }

    #[tokio::test]
    async fn sqlite_file_is_created_and_migrated_twice_safely() {
        let dir = std::env::temp_dir().join(format!("kg-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/k.db", dir.display());
        let store = Store::connect(&url).await.unwrap();
        store.ping().await.unwrap();
        let first = store.applied_migrations().await.unwrap();
        store.close().await;
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.applied_migrations().await.unwrap(), first);
        assert!(!first.is_empty());
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        assert!(matches!(
            Store::connect("mysql://x").await,
            Err(StoreError::UnsupportedUrl)
        ));
    }
}
