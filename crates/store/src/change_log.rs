//! The feature tables' change log in the SQLite store: what the warehouse
//! export reads in SQL mode (`feature_changes`, migration 0002).
//!
//! Triggers write it, so every path that changes a feature row (the
//! consumer's batches, the API's direct writes, a rebuild after an import)
//! is logged in the same transaction as the change, with nothing to forget
//! in the code that writes features.

use crate::{Context, Result, SqliteRatingStore, StoreError, db_int};
use movierec_core::FeatureAccumulator;
use sqlx::{AssertSqlSafe, Row};

/// The feature tables the log covers, with their key columns.
pub const LOGGED_TABLES: [(&str, &str); 2] =
    [("user_features", "user_id"), ("movie_features", "movie_id")];

/// One logged change.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedChange {
    pub seq: i64,
    pub table: String,
    pub key: i64,
    pub row: LoggedRow,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoggedRow {
    Upserted(FeatureAccumulator),
    Deleted,
    /// Columns that are not integers (SQLite stores what it is given): the
    /// raw text of rating_count, sum_half, sum_sq_quarter, last_update_ms,
    /// passed on for the warehouse to reject rather than dropped here.
    Undecodable(Vec<String>),
}

fn table_key(table: &str) -> Result<&'static str> {
    LOGGED_TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, key)| *key)
        .ok_or_else(|| StoreError::Invalid(format!("`{table}` is not a feature table")))
}

impl SqliteRatingStore {
    /// Starts logging feature changes (idempotent). Rows written before are
    /// not in the log: `cdc backfill` exports them.
    pub async fn enable_change_log(&self) -> Result<()> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context(|| "cannot start a transaction".into())?;
        for (table, key) in LOGGED_TABLES {
            let insert = |event: &str, row: &str, op: &str, values: &str| {
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {table}_log_{event} AFTER {event} ON {table} BEGIN \
                     INSERT INTO feature_changes \
                     (table_name, key, op, rating_count, sum_half, sum_sq_quarter, last_update_ms) \
                     VALUES ('{table}', {row}.{key}, '{op}', {values}); END"
                )
            };
            let new_values =
                "NEW.rating_count, NEW.sum_half, NEW.sum_sq_quarter, NEW.last_update_ms";
            for sql in [
                insert("INSERT", "NEW", "U", new_values),
                insert("UPDATE", "NEW", "U", new_values),
                insert("DELETE", "OLD", "D", "NULL, NULL, NULL, NULL"),
            ] {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .context(|| format!("cannot create the change log trigger on {table}"))?;
            }
        }
        tx.commit()
            .await
            .context(|| "cannot commit the change log triggers".into())
    }

    /// Up to `limit` changes after `seq`, oldest first.
    pub async fn changes_after(&self, seq: i64, limit: usize) -> Result<Vec<LoggedChange>> {
        let rows = sqlx::query(
            "SELECT seq, table_name, key, op, rating_count, sum_half, sum_sq_quarter, last_update_ms \
             FROM feature_changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(db_int(limit as u64))
        .fetch_all(self.pool())
        .await
        .context(|| format!("cannot read the change log after {seq}"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let op: String = row.get(3);
                let logged = if op == "D" {
                    LoggedRow::Deleted
                } else {
                    let ints: Option<Vec<i64>> =
                        (4..8).map(|i| row.try_get::<i64, _>(i).ok()).collect();
                    match ints {
                        Some(v) => LoggedRow::Upserted(FeatureAccumulator {
                            count: v[0] as u64,
                            sum_half: v[1] as u64,
                            sum_sq_quarter: v[2] as u64,
                            last_update_ms: v[3],
                        }),
                        None => LoggedRow::Undecodable(
                            (4..8)
                                .map(|i| {
                                    row.try_get::<String, _>(i)
                                        .or_else(|_| {
                                            row.try_get::<i64, _>(i).map(|n| n.to_string())
                                        })
                                        .unwrap_or_default()
                                })
                                .collect(),
                        ),
                    }
                };
                LoggedChange {
                    seq: row.get(0),
                    table: row.get(1),
                    key: row.get(2),
                    row: logged,
                }
            })
            .collect())
    }

    /// The newest sequence number ever logged (0 if none).
    pub async fn last_change_seq(&self) -> Result<i64> {
        // AUTOINCREMENT keeps the high-water mark even after the rows are dropped.
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'feature_changes'")
                .fetch_optional(self.pool())
                .await
                .context(|| "cannot read the change log's sequence".into())?;
        Ok(seq.unwrap_or(0))
    }

    /// Changes logged after `seq` (the lag of an exporter at `seq`).
    pub async fn changes_pending(&self, seq: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM feature_changes WHERE seq > ?")
            .bind(seq)
            .fetch_one(self.pool())
            .await
            .context(|| "cannot count the change log".into())?;
        Ok(n as u64)
    }

    /// Drops the log up to and including `seq` (exported).
    pub async fn drop_changes_through(&self, seq: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM feature_changes WHERE seq <= ?")
            .bind(seq)
            .execute(self.pool())
            .await
            .context(|| format!("cannot drop the change log through {seq}"))?;
        Ok(done.rows_affected())
    }

    /// A page of a feature table in key order, after `after` (exclusive).
    pub async fn feature_page(
        &self,
        table: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, FeatureAccumulator)>> {
        let key = table_key(table)?;
        let sql = format!(
            "SELECT {key}, rating_count, sum_half, sum_sq_quarter, last_update_ms FROM {table} \
             WHERE {key} > ? ORDER BY {key} LIMIT ?"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after.unwrap_or(i64::MIN))
            .bind(db_int(limit as u64))
            .fetch_all(self.pool())
            .await
            .context(|| format!("cannot read a page of {table}"))?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    FeatureAccumulator {
                        count: row.get::<i64, _>(1) as u64,
                        sum_half: row.get::<i64, _>(2) as u64,
                        sum_sq_quarter: row.get::<i64, _>(3) as u64,
                        last_update_ms: row.get(4),
                    },
                )
            })
            .collect())
    }
}
