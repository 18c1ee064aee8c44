//! The warehouse side of the export tests: a PostgreSQL database per test,
//! and the feature tables read back.

use sqlx::{Connection, PgConnection, Row};
use std::collections::BTreeMap;

/// (count, avg, std, last update ms) per key.
pub type Rows = BTreeMap<i64, (i64, f64, f64, i64)>;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A database of its own on the suite's PostgreSQL server.
pub fn fresh_database(tag: &str) -> String {
    let server = std::env::var("MOVIEREC_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("MOVIEREC_TEST_POSTGRES_URL is not set: run the suite with `bash scripts/test.sh`, which starts PostgreSQL")
    });
    let name = format!("movierec_cdc_{tag}_{}", std::process::id());
    runtime().block_on(async {
        let mut admin = PgConnection::connect(&server).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
    });
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

pub fn warehouse_rows(url: &str, table: &str, key: &str) -> Rows {
    runtime().block_on(async {
        let mut conn = PgConnection::connect(url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, rating_count, avg_rating, std_dev, \
             (EXTRACT(EPOCH FROM last_update) * 1000)::BIGINT FROM {table}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        rows.iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3), row.get(4))))
            .collect()
    })
}

pub fn count(url: &str, sql: &str) -> i64 {
    runtime().block_on(async {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}
