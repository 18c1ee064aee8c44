//! Loading a manifest into the warehouse, once.
//!
//! - PostgreSQL: in one transaction, check the load is not recorded, COPY
//!   the rows into a temporary staging table, upsert the newest row per key
//!   into the target (only where the staged version is newer), record the
//!   load. A row PostgreSQL rejects (a non-numeric count, …) is isolated by
//!   bisection under savepoints and returned as rejected; the rest loads.
//! - Redshift: the same shape over its PostgreSQL protocol, with
//!   `COPY … FROM '<manifest>' IAM_ROLE … MANIFEST` (Redshift reads the files
//!   itself) and DELETE + INSERT instead of ON CONFLICT. Untested against a
//!   live Redshift; the statements are unit-tested.

use crate::change::FeatureTable;
use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};
use std::time::Duration;

/// Columns of the staging table, in file order.
const STAGE_COLUMNS: &str = "key, op, version, rating_count, avg_rating, std_dev, last_update";
/// The table recording each load, in the same transaction as its rows.
pub const LOADS_TABLE: &str = "movierec_export_loads";

/// Why a load failed, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The connection (or server) failed: retry later.
    #[error("{0}")]
    Transient(String),
    /// The warehouse rejected the data and cannot say which row.
    #[error("{0}")]
    Rejected(String),
    /// Anything else (permissions, a missing table): stop and report.
    #[error("{0}")]
    Fatal(String),
}

impl LoadError {
    fn from_sqlx(what: &str, error: sqlx::Error) -> Self {
        let message = format!("{what}: {error}");
        match &error {
            sqlx::Error::Database(db) => match db.code().as_deref().map(|c| &c[..2]) {
                // Data exceptions, integrity violations.
                Some("22") | Some("23") => Self::Rejected(message),
                // Connection exceptions, operator intervention (shutdown),
                // insufficient resources.
                Some("08") | Some("57") | Some("53") | Some("40") => Self::Transient(message),
                _ => Self::Fatal(message),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Transient(message),
            _ => Self::Fatal(message),
        }
    }
}

/// One load: a manifest's rows for one table.
#[derive(Debug)]
pub struct Load<'a> {
    pub load_id: &'a str,
    pub table: FeatureTable,
    /// The manifest's URL (Redshift reads it; PostgreSQL gets `rows`).
    pub manifest_url: &'a str,
    pub rows: &'a [Vec<u8>],
}

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    /// The load was recorded already: nothing was done.
    pub already_loaded: bool,
    pub rows: u64,
    /// Rows the warehouse rejected: (index in the load, reason).
    pub rejected: Vec<(usize, String)>,
}

/// Called inside a load's transaction, before it commits, with the rows the
/// warehouse rejected: their dead letters are written before the load can
/// count as done, so a crash between the two loses none.
#[async_trait]
pub trait BeforeCommit: Send + Sync {
    async fn rejected(&self, load: &Load<'_>, rows: &[(usize, String)]) -> Result<(), String>;
}

#[async_trait]
pub trait Warehouse: Send + Sync {
    /// For messages: the kind and host, never the password.
    fn describe(&self) -> String;
    /// Creates the target tables and the loads table if missing.
    async fn prepare(&self) -> Result<(), LoadError>;
    /// Loads once: a load already recorded is a no-op.
    async fn load(
        &self,
        load: &Load<'_>,
        before_commit: &dyn BeforeCommit,
    ) -> Result<LoadReport, LoadError>;
    /// Whether the load is recorded.
    async fn is_loaded(&self, load_id: &str) -> Result<bool, LoadError>;
}

fn target_ddl(table: FeatureTable) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (\
         {key} BIGINT PRIMARY KEY, \
         rating_count BIGINT, \
         avg_rating DOUBLE PRECISION, \
         std_dev DOUBLE PRECISION, \
         last_update TIMESTAMPTZ, \
         source_version BIGINT NOT NULL)",
        name = table.name(),
        key = table.key_column()
    )
}

fn loads_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (\
         load_id VARCHAR(200) PRIMARY KEY, \
         table_name VARCHAR(100) NOT NULL, \
         rows_loaded BIGINT NOT NULL, \
         rows_rejected BIGINT NOT NULL, \
         loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
}

fn stage_ddl(temp_name: &str) -> String {
    format!(
        "CREATE TEMP TABLE {temp_name} (\
         seq BIGSERIAL, key BIGINT NOT NULL, op CHAR(1) NOT NULL, version BIGINT NOT NULL, \
         rating_count BIGINT, avg_rating DOUBLE PRECISION, std_dev DOUBLE PRECISION, \
         last_update TIMESTAMPTZ) ON COMMIT DROP"
    )
}

/// PostgreSQL's upsert of the newest staged row per key: a delete removes
/// an older row, an upsert replaces an older one; equal or older versions
/// change nothing (a replay).
pub fn postgres_upsert_sql(table: FeatureTable, stage: &str) -> String {
    let name = table.name();
    let key = table.key_column();
    format!(
        "WITH latest AS (\
           SELECT DISTINCT ON (key) key, op, version, rating_count, avg_rating, std_dev, last_update \
           FROM {stage} ORDER BY key, seq DESC), \
         removed AS (\
           DELETE FROM {name} t USING latest l \
           WHERE l.op = 'D' AND t.{key} = l.key AND t.source_version <= l.version) \
         INSERT INTO {name} ({key}, rating_count, avg_rating, std_dev, last_update, source_version) \
         SELECT key, rating_count, avg_rating, std_dev, last_update, version FROM latest WHERE op = 'U' \
         ON CONFLICT ({key}) DO UPDATE SET \
           rating_count = EXCLUDED.rating_count, avg_rating = EXCLUDED.avg_rating, \
           std_dev = EXCLUDED.std_dev, last_update = EXCLUDED.last_update, \
           source_version = EXCLUDED.source_version \
         WHERE {name}.source_version < EXCLUDED.source_version"
    )
}

/// PostgreSQL (or anything speaking its protocol with COPY FROM STDIN).
#[derive(Debug, Clone)]
pub struct Postgres {
    url: String,
}

impl Postgres {
    pub fn new(url: &str) -> Self {
        Self { url: url.into() }
    }

    async fn connect(&self) -> Result<PgConnection, LoadError> {
        tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&self.url))
            .await
            .map_err(|_| LoadError::Transient(format!("{}: no answer in 10 s", self.describe())))?
            .map_err(|e| LoadError::from_sqlx(&format!("cannot connect to {}", self.describe()), e))
    }
}

#[async_trait]
impl Warehouse for Postgres {
    fn describe(&self) -> String {
        describe_url(&self.url)
    }

    async fn prepare(&self) -> Result<(), LoadError> {
        let mut conn = self.connect().await?;
        for ddl in FeatureTable::ALL
            .into_iter()
            .map(target_ddl)
            .chain([loads_ddl()])
        {
            conn.execute(AssertSqlSafe(ddl))
                .await
                .map_err(|e| LoadError::from_sqlx("cannot create the warehouse tables", e))?;
        }
        Ok(())
    }

    async fn is_loaded(&self, load_id: &str) -> Result<bool, LoadError> {
        let mut conn = self.connect().await?;
        loaded(&mut conn, load_id).await
    }

    async fn load(
        &self,
        load: &Load<'_>,
        before_commit: &dyn BeforeCommit,
    ) -> Result<LoadReport, LoadError> {
        let mut conn = self.connect().await?;
        let sql = |what: &'static str| move |e| LoadError::from_sqlx(what, e);
        let mut tx = conn.begin().await.map_err(sql("cannot begin"))?;
        // Taken before the check, so two loaders of one manifest queue here.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(load.load_id)
            .execute(&mut *tx)
            .await
            .map_err(sql("cannot lock the load"))?;
        if loaded(&mut tx, load.load_id).await? {
            return Ok(LoadReport {
                already_loaded: true,
                ..LoadReport::default()
            });
        }
        let stage = "movierec_stage";
        tx.execute(AssertSqlSafe(stage_ddl(stage)))
            .await
            .map_err(sql("cannot create the staging table"))?;
        let upsert = postgres_upsert_sql(load.table, stage);
        let copy = format!("COPY {stage} ({STAGE_COLUMNS}) FROM STDIN WITH (FORMAT csv)");

        // Whole first; a rejected chunk is rolled back and halved, down to
        // the single rows PostgreSQL refuses.
        let mut rejected = Vec::new();
        let mut loaded_rows = 0u64;
        let mut chunks = vec![(0usize, load.rows.len())];
        while let Some((lo, hi)) = chunks.pop() {
            if lo == hi {
                continue;
            }
            tx.execute("SAVEPOINT chunk")
                .await
                .map_err(sql("cannot make a savepoint"))?;
            match copy_and_upsert(&mut tx, &copy, &upsert, stage, &load.rows[lo..hi]).await {
                Ok(()) => {
                    tx.execute("RELEASE SAVEPOINT chunk")
                        .await
                        .map_err(sql("cannot release a savepoint"))?;
                    loaded_rows += (hi - lo) as u64;
                }
                Err(LoadError::Rejected(reason)) => {
                    tx.execute("ROLLBACK TO SAVEPOINT chunk")
                        .await
                        .map_err(sql("cannot roll back to a savepoint"))?;
                    if hi - lo == 1 {
                        rejected.push((lo, reason));
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        chunks.push((mid, hi));
                        chunks.push((lo, mid));
                    }
                }
                Err(other) => return Err(other),
            }
        }
        rejected.sort_by_key(|(index, _)| *index);
        if !rejected.is_empty() {
            before_commit
                .rejected(load, &rejected)
                .await
                .map_err(LoadError::Fatal)?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {LOADS_TABLE} (load_id, table_name, rows_loaded, rows_rejected) VALUES ($1, $2, $3, $4)"
        )))
        .bind(load.load_id)
        .bind(load.table.name())
        .bind(loaded_rows as i64)
        .bind(rejected.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(sql("cannot record the load"))?;
        tx.commit().await.map_err(sql("cannot commit the load"))?;
        Ok(LoadReport {
            already_loaded: false,
            rows: loaded_rows,
            rejected,
        })
    }
}

async fn loaded(conn: &mut PgConnection, load_id: &str) -> Result<bool, LoadError> {
    let found: Option<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT 1 FROM {LOADS_TABLE} WHERE load_id = $1"
    )))
    .bind(load_id)
    .fetch_optional(conn)
    .await
    .map_err(|e| LoadError::from_sqlx("cannot read the loads table", e))?;
    Ok(found.is_some())
}

async fn copy_and_upsert(
    conn: &mut PgConnection,
    copy: &str,
    upsert: &str,
    stage: &str,
    rows: &[Vec<u8>],
) -> Result<(), LoadError> {
    let sql = |what: &'static str| move |e| LoadError::from_sqlx(what, e);
    let mut copy_in = conn
        .copy_in_raw(copy)
        .await
        .map_err(sql("cannot start COPY"))?;
    // Sent in ~1 MiB messages.
    let mut message = Vec::with_capacity(1 << 20);
    for row in rows {
        message.extend_from_slice(row);
        if message.len() >= 1 << 20 {
            copy_in
                .send(std::mem::take(&mut message))
                .await
                .map_err(sql("COPY"))?;
        }
    }
    if !message.is_empty() {
        copy_in.send(message).await.map_err(sql("COPY"))?;
    }
    copy_in.finish().await.map_err(sql("COPY"))?;
    conn.execute(AssertSqlSafe(upsert.to_string()))
        .await
        .map_err(sql("upsert"))?;
    conn.execute(AssertSqlSafe(format!("TRUNCATE {stage}")))
        .await
        .map_err(sql("cannot empty the staging table"))?;
    Ok(())
}

/// Redshift: COPY from the manifest (Redshift reads the files from S3 with
/// `iam_role`), then the staging-table merge AWS documents.
#[derive(Debug, Clone)]
pub struct Redshift {
    /// `postgres://…` form of the `redshift://` URL (same protocol).
    url: String,
    iam_role: String,
    region: String,
}

impl Redshift {
    pub fn new(url: &str, iam_role: &str, region: &str) -> Self {
        Self {
            url: url.replacen("redshift://", "postgres://", 1),
            iam_role: iam_role.into(),
            region: region.into(),
        }
    }

    /// The statements of one load, in order, inside one transaction.
    pub fn load_statements(&self, load: &Load<'_>) -> Vec<String> {
        let name = load.table.name();
        let key = load.table.key_column();
        let stage = "movierec_stage";
        let latest = "movierec_latest";
        vec![
            "BEGIN".into(),
            format!(
                "CREATE TEMP TABLE {stage} (key BIGINT, op CHAR(1), version BIGINT, \
                 rating_count BIGINT, avg_rating DOUBLE PRECISION, std_dev DOUBLE PRECISION, \
                 last_update TIMESTAMPTZ)"
            ),
            format!(
                "COPY {stage} ({STAGE_COLUMNS}) FROM {} IAM_ROLE {} MANIFEST CSV GZIP \
                 TIMEFORMAT 'auto' REGION {}",
                quote(load.manifest_url),
                quote(&self.iam_role),
                quote(&self.region)
            ),
            format!(
                "CREATE TEMP TABLE {latest} AS SELECT key, op, version, rating_count, avg_rating, \
                 std_dev, last_update FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY key \
                 ORDER BY version DESC) AS rn FROM {stage}) WHERE rn = 1"
            ),
            format!(
                "DELETE FROM {name} USING {latest} \
                 WHERE {name}.{key} = {latest}.key AND {name}.source_version < {latest}.version"
            ),
            format!(
                "DELETE FROM {name} USING {latest} WHERE {name}.{key} = {latest}.key \
                 AND {latest}.op = 'D' AND {name}.source_version <= {latest}.version"
            ),
            format!(
                "INSERT INTO {name} ({key}, rating_count, avg_rating, std_dev, last_update, source_version) \
                 SELECT l.key, l.rating_count, l.avg_rating, l.std_dev, l.last_update, l.version \
                 FROM {latest} l LEFT JOIN {name} t ON t.{key} = l.key \
                 WHERE l.op = 'U' AND t.{key} IS NULL"
            ),
            format!(
                "INSERT INTO {LOADS_TABLE} (load_id, table_name, rows_loaded, rows_rejected) \
                 SELECT {}, {}, COUNT(*), 0 FROM {stage}",
                quote(load.load_id),
                quote(name)
            ),
            format!("DROP TABLE {latest}"),
            format!("DROP TABLE {stage}"),
            "COMMIT".into(),
        ]
    }
}

/// A SQL string literal.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[async_trait]
impl Warehouse for Redshift {
    fn describe(&self) -> String {
        format!("Redshift {}", describe_url(&self.url))
    }

    async fn prepare(&self) -> Result<(), LoadError> {
        let mut conn = PgConnection::connect(&self.url)
            .await
            .map_err(|e| LoadError::from_sqlx("cannot connect to Redshift", e))?;
        for ddl in FeatureTable::ALL
            .into_iter()
            .map(target_ddl)
            .chain([loads_ddl().replace(" DEFAULT now()", " DEFAULT GETDATE()")])
        {
            conn.execute(AssertSqlSafe(ddl))
                .await
                .map_err(|e| LoadError::from_sqlx("cannot create the warehouse tables", e))?;
        }
        Ok(())
    }

    async fn is_loaded(&self, load_id: &str) -> Result<bool, LoadError> {
        let mut conn = PgConnection::connect(&self.url)
            .await
            .map_err(|e| LoadError::from_sqlx("cannot connect to Redshift", e))?;
        loaded(&mut conn, load_id).await
    }

    async fn load(
        &self,
        load: &Load<'_>,
        _before_commit: &dyn BeforeCommit,
    ) -> Result<LoadReport, LoadError> {
        if self.is_loaded(load.load_id).await? {
            return Ok(LoadReport {
                already_loaded: true,
                ..LoadReport::default()
            });
        }
        let mut conn = PgConnection::connect(&self.url)
            .await
            .map_err(|e| LoadError::from_sqlx("cannot connect to Redshift", e))?;
        for statement in self.load_statements(load) {
            if let Err(error) = conn.execute(AssertSqlSafe(statement)).await {
                let _ = conn.execute("ROLLBACK").await;
                return Err(LoadError::from_sqlx(
                    "Redshift load (see STL_LOAD_ERRORS for COPY's rejected rows)",
                    error,
                ));
            }
        }
        Ok(LoadReport {
            already_loaded: false,
            rows: load.rows.len() as u64,
            rejected: Vec::new(),
        })
    }
}

/// `postgres://user@host:port/db`, without the password.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the warehouse".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redshift_copies_from_the_manifest_and_merges_through_staging() {
        let redshift = Redshift::new(
            "redshift://loader:secret@example.redshift.amazonaws.com:5439/dev",
            "arn:aws:iam::123456789012:role/copy",
            "eu-west-1",
        );
        let rows = vec![b"1,U,2,3,3.5,0.5,2025-03-15T10:00:00Z\n".to_vec()];
        let load = Load {
            load_id: "20251201T000000000Z-abc",
            table: FeatureTable::MovieFeatures,
            manifest_url: "s3://lake/exports/_manifests/pending/movie_features/x.manifest",
            rows: &rows,
        };
        let statements = redshift.load_statements(&load);
        assert_eq!(statements.first().unwrap(), "BEGIN");
        assert_eq!(statements.last().unwrap(), "COMMIT");
        assert_eq!(
            statements[2],
            "COPY movierec_stage (key, op, version, rating_count, avg_rating, std_dev, last_update) \
             FROM 's3://lake/exports/_manifests/pending/movie_features/x.manifest' \
             IAM_ROLE 'arn:aws:iam::123456789012:role/copy' MANIFEST CSV GZIP TIMEFORMAT 'auto' \
             REGION 'eu-west-1'"
        );
        let merge = statements.join(";\n");
        assert!(merge.contains("DELETE FROM movie_features USING movierec_latest WHERE movie_features.movie_id = movierec_latest.key AND movie_features.source_version < movierec_latest.version"), "{merge}");
        assert!(
            merge.contains("WHERE l.op = 'U' AND t.movie_id IS NULL"),
            "{merge}"
        );
        assert!(
            merge.contains("INSERT INTO movierec_export_loads"),
            "{merge}"
        );
        assert!(merge.contains("'20251201T000000000Z-abc'"), "{merge}");
        assert!(!merge.contains("secret"));
        assert_eq!(
            redshift.describe(),
            "Redshift postgres://loader@example.redshift.amazonaws.com:5439/dev"
        );
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote("it's"), "'it''s'");
    }
}
