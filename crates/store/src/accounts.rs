//! Web accounts, sessions and API tokens in the serving database. Secrets
//! (session and API tokens) arrive here already hashed: the database never
//! holds anything that opens a session by itself.

use crate::serving::Bind;
use crate::{Context, Result, ServingDb, StoreError, db_int as i};
use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// New sign-ups get rating ids from here up, far above MovieLens' ids
/// (ML-32M ends at 200,948), so their ratings never mix with imported users.
pub const FIRST_ACCOUNT_USER_ID: u64 = 1_000_000_001;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: u64,
    pub username: String,
    pub is_admin: bool,
    /// The account's id in the ratings.
    pub user_id: u64,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    /// Link to an existing rating user (e.g. a MovieLens id); `None` takes
    /// the next id from [`FIRST_ACCOUNT_USER_ID`].
    pub user_id: Option<u64>,
    pub now: i64,
}

/// A live session: its account and the CSRF token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// `StoreError::Conflict` when the username or rating id is taken.
    async fn create_account(&self, new: NewAccount<'_>) -> Result<Account>;
    /// The account and its password hash.
    async fn account_by_name(&self, username: &str) -> Result<Option<(Account, String)>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// `false` when there is no such account.
    async fn set_admin(&self, account_id: u64, is_admin: bool) -> Result<bool>;
    async fn create_session(
        &self,
        token_hash: &str,
        account_id: u64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The session if it exists and has not expired at `now`.
    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    async fn create_api_token(
        &self,
        token_hash: &str,
        account_id: u64,
        name: &str,
        now: i64,
    ) -> Result<()>;
    async fn api_token_account(&self, token_hash: &str) -> Result<Option<Account>>;
}

const ACCOUNT_COLUMNS: &str = "a.id, a.username, a.is_admin, a.user_id, a.created_at";

fn account(row: &AnyRow) -> std::result::Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get::<i64, _>("id")? as u64,
        username: row.try_get("username")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        user_id: row.try_get::<i64, _>("user_id")? as u64,
        created_at: row.try_get("created_at")?,
    })
}

impl ServingDb {
    async fn one_account(&self, sql: &str, binds: &[Bind]) -> Result<Option<AnyRow>> {
        Ok(self.fetch(sql, binds, &[]).await?.into_iter().next())
    }
}

#[async_trait]
impl AccountStore for ServingDb {
    async fn create_account(&self, new: NewAccount<'_>) -> Result<Account> {
        if self.account_by_name(new.username).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "the username `{}` is taken",
                new.username
            )));
        }
        let user_id = match new.user_id {
            Some(id) => {
                let taken = self
                    .fetch(
                        "SELECT username FROM app_user WHERE user_id = ?",
                        &[Bind::Int(i(id))],
                        &[],
                    )
                    .await?;
                if let Some(row) = taken.first() {
                    let owner: String = row.try_get(0).unwrap_or_default();
                    return Err(StoreError::Conflict(format!(
                        "rating user {id} already belongs to the account `{owner}`"
                    )));
                }
                id
            }
            None => {
                let rows = self
                    .fetch(
                        "SELECT MAX(user_id) FROM app_user WHERE user_id >= ?",
                        &[Bind::Int(i(FIRST_ACCOUNT_USER_ID))],
                        &[],
                    )
                    .await?;
                let max: Option<i64> = rows[0]
                    .try_get(0)
                    .context(|| "cannot read the last account id".into())?;
                max.map_or(FIRST_ACCOUNT_USER_ID, |m| m as u64 + 1)
            }
        };
        sqlx::query(self.sql(
            "INSERT INTO app_user (username, password_hash, is_admin, user_id, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(new.username.to_string())
        .bind(new.password_hash.to_string())
        .bind(i64::from(new.is_admin))
        .bind(i(user_id))
        .bind(new.now)
        .execute(&self.pool)
        .await
        // Two sign-ups racing for one name or id: the unique keys decide.
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "the username `{}` or rating user {user_id} was taken meanwhile",
                new.username
            )),
            source => StoreError::Database {
                what: "cannot create the account".into(),
                source,
            },
        })?;
        self.account_by_name(new.username)
            .await?
            .map(|(account, _)| account)
            .ok_or_else(|| StoreError::Invalid("the new account vanished".into()))
    }

    async fn account_by_name(&self, username: &str) -> Result<Option<(Account, String)>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, a.password_hash FROM app_user a WHERE a.username = ?"
        );
        let Some(row) = self
            .one_account(&sql, &[Bind::Text(username.to_string())])
            .await?
        else {
            return Ok(None);
        };
        let found = account(&row)
            .and_then(|a| Ok((a, row.try_get::<String, _>("password_hash")?)))
            .context(|| "cannot decode an account".into())?;
        Ok(Some(found))
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM app_user a ORDER BY a.id");
        self.fetch(&sql, &[], &[])
            .await?
            .iter()
            .map(account)
            .collect::<std::result::Result<_, _>>()
            .context(|| "cannot decode an account".into())
    }

    async fn set_admin(&self, account_id: u64, is_admin: bool) -> Result<bool> {
        let done = sqlx::query(self.sql("UPDATE app_user SET is_admin = ? WHERE id = ?"))
            .bind(i64::from(is_admin))
            .bind(i(account_id))
            .execute(&self.pool)
            .await
            .context(|| "cannot change the account's role".into())?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        account_id: u64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        // Expired sessions go when new ones come: no sweeper task needed.
        sqlx::query(self.sql("DELETE FROM app_session WHERE expires_at < ?"))
            .bind(now)
            .execute(&self.pool)
            .await
            .context(|| "cannot remove expired sessions".into())?;
        sqlx::query(self.sql(
            "INSERT INTO app_session (token_hash, account_id, csrf, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(token_hash.to_string())
        .bind(i(account_id))
        .bind(csrf.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .context(|| "cannot create the session".into())?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, s.csrf FROM app_session s \
             JOIN app_user a ON a.id = s.account_id WHERE s.token_hash = ? AND s.expires_at >= ?"
        );
        let Some(row) = self
            .one_account(&sql, &[Bind::Text(token_hash.to_string()), Bind::Int(now)])
            .await?
        else {
            return Ok(None);
        };
        let session = account(&row)
            .and_then(|account| {
                Ok(Session {
                    account,
                    csrf: row.try_get("csrf")?,
                })
            })
            .context(|| "cannot decode a session".into())?;
        Ok(Some(session))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM app_session WHERE token_hash = ?"))
            .bind(token_hash.to_string())
            .execute(&self.pool)
            .await
            .context(|| "cannot end the session".into())?;
        Ok(())
    }

    async fn create_api_token(
        &self,
        token_hash: &str,
        account_id: u64,
        name: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO app_apitoken (token_hash, account_id, name, created_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(token_hash.to_string())
        .bind(i(account_id))
        .bind(name.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .context(|| "cannot store the API token".into())?;
        Ok(())
    }

    async fn api_token_account(&self, token_hash: &str) -> Result<Option<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM app_apitoken t \
             JOIN app_user a ON a.id = t.account_id WHERE t.token_hash = ?"
        );
        self.one_account(&sql, &[Bind::Text(token_hash.to_string())])
            .await?
            .map(|row| account(&row))
            .transpose()
            .context(|| "cannot decode an account".into())
    }
}
