//! `movierec admin`: web accounts and API tokens, for bootstrapping the
//! first admin and for scripts.

use crate::cli::AdminCommand;
use anyhow::{Context, Result, bail};
use movierec_config::Config;
use movierec_server::credentials;
use movierec_store::{AccountStore, NewAccount, ServingDb, StoreError};
use std::io::BufRead;

/// $MOVIEREC_PASSWORD, else the first line of stdin (so it never shows in
/// `ps` or the shell history).
fn read_password() -> Result<String> {
    if let Ok(password) = std::env::var("MOVIEREC_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password: set MOVIEREC_PASSWORD or pipe it in, e.g. `printf '%s\\n' \"$PW\" | movierec admin create-user NAME --admin`"
        );
    }
    Ok(password)
}

async fn account(db: &ServingDb, username: &str) -> Result<movierec_store::Account> {
    Ok(db
        .account_by_name(username)
        .await?
        .with_context(|| format!("no account named `{username}` (see `movierec admin users`)"))?
        .0)
}

pub async fn run(config: &Config, command: &AdminCommand) -> Result<()> {
    let db = ServingDb::connect(&config.serving.database_url).await?;
    let now = chrono::Utc::now().timestamp();
    let result = match command {
        AdminCommand::CreateUser {
            username,
            admin,
            user_id,
        } => {
            let password = read_password()?;
            credentials::check_new_credentials(username, &password)
                .map_err(|problem| anyhow::anyhow!("cannot create `{username}`: {problem}"))?;
            let hash = credentials::hash_password(&password).map_err(anyhow::Error::msg)?;
            let created = db
                .create_account(NewAccount {
                    username,
                    password_hash: &hash,
                    is_admin: *admin,
                    user_id: *user_id,
                    now,
                })
                .await;
            match created {
                Ok(account) => {
                    println!(
                        "created {} `{}` (rating user id {}) in {}",
                        if account.is_admin { "admin" } else { "user" },
                        account.username,
                        account.user_id,
                        db.display_url()
                    );
                    Ok(())
                }
                Err(StoreError::Conflict(message)) => Err(anyhow::anyhow!("{message}")),
                Err(error) => Err(error.into()),
            }
        }
        AdminCommand::CreateToken { username, name } => {
            let account = account(&db, username).await?;
            let token = credentials::new_token();
            db.create_api_token(&credentials::hash_token(&token), account.id, name, now)
                .await?;
            eprintln!(
                "API token `{name}` for `{username}` (shown once; send it as `Authorization: Bearer TOKEN`):"
            );
            println!("{token}");
            Ok(())
        }
        AdminCommand::Users { json } => {
            let accounts = db.accounts().await?;
            if *json {
                for account in &accounts {
                    println!("{}", serde_json::to_string(account)?);
                }
            } else {
                println!("{:<24} {:<6} {:>14}", "username", "role", "rating user");
                for a in &accounts {
                    let role = if a.is_admin { "admin" } else { "user" };
                    println!("{:<24} {role:<6} {:>14}", a.username, a.user_id);
                }
            }
            Ok(())
        }
        AdminCommand::SetRole { username, role } => {
            let account = account(&db, username).await?;
            db.set_admin(account.id, role == "admin").await?;
            println!("`{username}` is now {role}");
            Ok(())
        }
    };
    db.close().await;
    result
}
