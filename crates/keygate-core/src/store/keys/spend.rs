//! Settled spend: added to each key and appended to the spend log, in batches; budget periods
//! reset on schedule.

use sqlx::Row;

use super::{pg, Store, StoreError};

/// One settled request, for the spend log.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendEntry {
    /// The key that paid.
    pub token_id: String,
    /// The model asked for.
    pub model: String,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// USD.
    pub cost: f64,
    /// HTTP status answered.
    pub status: i64,
    /// Wall time of the request.
    pub latency_ms: f64,
    /// When it finished (ms).
    pub created_at: i64,
}

/// The row counts of spend-log INSERTs (8 parameters per row, far under both databases'
/// limits): a batch is cut into chunks of these sizes only, largest first, so each database
/// connection prepares four statements once and keeps them, instead of parsing a statement of
/// a new size for every batch.
const LOG_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// `entries` cut into chunks of [`LOG_CHUNKS`] sizes.
fn log_chunks(entries: &[SpendEntry]) -> impl Iterator<Item = &[SpendEntry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        let size = LOG_CHUNKS.into_iter().find(|&size| size <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The spend-log INSERT of a chunk of rows, in the pool's placeholder style: written once per
/// chunk size, and bound with the entries' strings borrowed.
trait LogInsert {
    fn log_insert(&self, rows: usize) -> &'static str;
}

impl LogInsert for sqlx::SqlitePool {
    fn log_insert(&self, rows: usize) -> &'static str {
        &log_inserts().0[chunk_index(rows)]
    }
}

impl LogInsert for sqlx::PgPool {
    fn log_insert(&self, rows: usize) -> &'static str {
        &log_inserts().1[chunk_index(rows)]
    }
}

/// Where `rows` is in [`LOG_CHUNKS`] (chunks come only in those sizes).
fn chunk_index(rows: usize) -> usize {
    LOG_CHUNKS
        .iter()
        .position(|&size| size == rows)
        .unwrap_or(LOG_CHUNKS.len() - 1)
}

/// The INSERT texts per chunk size: with `?` (SQLite) and with `$n` (PostgreSQL).
fn log_inserts() -> &'static ([String; 4], [String; 4]) {
    static TEXTS: std::sync::OnceLock<([String; 4], [String; 4])> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let sqlite = LOG_CHUNKS.map(|rows| {
            let row = format!("({})", ["?"; 8].join(", "));
            format!(
                "INSERT INTO keygate_spend_log (token_id, model, prompt_tokens, \
                 completion_tokens, cost, status, latency_ms, created_at) VALUES {}",
                vec![row; rows].join(", ")
            )
        });
        let postgres = sqlite.clone().map(|text| pg(&text));
        (sqlite, postgres)
    })
}

/// Cluster-wide reservations given back in the same transaction as the spend (PostgreSQL).
#[derive(Debug, Clone, Copy)]
pub struct Releases<'a> {
    /// The instance that holds them.
    pub instance: &'a str,
    /// (token id, micro-USD), sorted by token id.
    pub releases: &'a [(String, i64)],
    /// (token id, minute, tokens) settled into the per-minute windows, sorted.
    pub windows: &'a [(String, i64, i64)],
}

impl Store {
    /// Adds settled spend to keys and appends the spend log, in one transaction.
    pub async fn record_spend(
        &self,
        deltas: &[(String, f64)],
        entries: &[SpendEntry],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.record_spend_and_release(deltas, entries, now_ms, None)
            .await
    }

    /// Adds settled spend to keys (give `deltas` sorted by token id: concurrent writers lock
    /// rows in that order), appends the spend log and then gives back `releases`, in one
    /// transaction: the cluster never sees a reservation gone before its cost arrives.
    pub async fn record_spend_and_release(
        &self,
        deltas: &[(String, f64)],
        entries: &[SpendEntry],
        now_ms: i64,
        releases: Option<Releases<'_>>,
    ) -> Result<(), StoreError> {
        let add = "UPDATE keygate_keys SET spend = spend + ?, last_used_at = ? WHERE token_id = ?";
        on_store!(self, add, |pool, sql| {
            let mut tx = pool.begin().await?;
            for (token_id, delta) in deltas {
                sqlx::query(&sql)
                    .bind(*delta)
                    .bind(now_ms)
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await?;
            }
            // Many rows per statement: the log grows by one row per request.
            for rows in log_chunks(entries) {
                let mut insert = sqlx::query(pool.log_insert(rows.len()));
                for e in rows {
                    insert = insert
                        .bind(e.token_id.as_str())
                        .bind(e.model.as_str())
                        .bind(e.prompt_tokens)
                        .bind(e.completion_tokens)
                        .bind(e.cost)
                        .bind(i32::try_from(e.status).unwrap_or(0))
                        .bind(e.latency_ms)
                        .bind(e.created_at);
                }
                insert.execute(&mut *tx).await?;
            }
            // Only ever given on PostgreSQL (one SQLite file, one instance, local limits).
            if let Some(cluster) = releases {
                for (token_id, micros) in cluster.releases {
                    sqlx::query(super::super::cluster::RELEASE)
                        .bind(cluster.instance)
                        .bind(token_id)
                        .bind(*micros)
                        .execute(&mut *tx)
                        .await?;
                }
                for (token_id, minute, tokens) in cluster.windows {
                    sqlx::query(super::super::cluster::ADD_TOKENS)
                        .bind(token_id)
                        .bind(*minute)
                        .bind(*tokens)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Sets a key's spend to zero and its next reset time, if the reset is still due.
    pub async fn reset_spend(
        &self,
        token_id: &str,
        due: i64,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        let text = "UPDATE keygate_keys SET spend = 0, budget_reset_at = ? \
                    WHERE token_id = ? AND budget_reset_at = ?";
        let rows = on_store!(self, text, |pool, sql| {
            sqlx::query(&sql)
                .bind(next)
                .bind(token_id)
                .bind(due)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(rows > 0)
    }

    /// The spend log of one key, newest first.
    pub async fn spend_log(
        &self,
        token_id: &str,
        limit: i64,
    ) -> Result<Vec<SpendEntry>, StoreError> {
        let text =
            "SELECT token_id, model, prompt_tokens, completion_tokens, cost, status, latency_ms, \
                    created_at FROM keygate_spend_log WHERE token_id = ? ORDER BY id DESC LIMIT ?";
        on_store!(self, text, |pool, sql| {
            let rows = sqlx::query(&sql)
                .bind(token_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(SpendEntry {
                    token_id: row.try_get("token_id")?,
                    model: row.try_get("model")?,
                    prompt_tokens: row.try_get("prompt_tokens")?,
                    completion_tokens: row.try_get("completion_tokens")?,
                    cost: row.try_get("cost")?,
                    status: i64::from(row.try_get::<i32, _>("status")?),
                    latency_ms: row.try_get("latency_ms")?,
                    created_at: row.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chunk_size_has_its_insert_with_eight_placeholders_a_row() {
        let (sqlite, postgres) = log_inserts();
        for (i, rows) in LOG_CHUNKS.into_iter().enumerate() {
            assert_eq!(chunk_index(rows), i);
            assert_eq!(sqlite[i].matches('?').count(), 8 * rows);
            assert!(
                postgres[i].ends_with(&format!("${})", 8 * rows)),
                "{}",
                postgres[i]
            );
            assert!(!postgres[i].contains('?'));
        }
    }

    #[test]
    fn a_batch_is_cut_into_the_fixed_sizes_only() {
        let entry = SpendEntry {
            token_id: "t".to_owned(),
            model: "m".to_owned(),
            prompt_tokens: 1,
            completion_tokens: 1,
            cost: 0.0,
            status: 200,
            latency_ms: 1.0,
            created_at: 0,
        };
        let sizes = |n: usize| {
            let entries = vec![entry.clone(); n];
            log_chunks(&entries).map(<[_]>::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(3), [1, 1, 1]);
        assert_eq!(sizes(150), [64, 64, 16, 4, 1, 1]);
        assert_eq!(sizes(1000).iter().sum::<usize>(), 1000);
    }
}
