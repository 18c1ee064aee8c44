//! Passwords (argon2id), session and CSRF tokens, login rate limiting, and
//! the bearer tokens of programmatic clients.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "mr_session";
pub const CSRF_COOKIE: &str = "mr_csrf";

/// A fresh 256-bit secret, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the database keeps of a secret.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tokens we issued are 64 hex digits; anything else is not worth a lookup.
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares without an early exit, so timing says nothing about the prefix.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes), as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Hashing a password nobody has keeps a login for an unknown name as slow
/// as one with a wrong password: timing does not reveal which names exist.
pub fn burn_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default());
    let _ = verify_password(password, dummy);
}

/// What a username and password must look like; the message says why not.
pub fn check_new_credentials(username: &str, password: &str) -> Result<(), String> {
    let length = username.chars().count();
    if !(3..=32).contains(&length) {
        return Err("the username must be 3 to 32 characters long".into());
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("the username may contain only letters, digits, '_', '-' and '.'".into());
    }
    let length = password.chars().count();
    if length < 8 {
        return Err("the password must be at least 8 characters long".into());
    }
    if length > 256 {
        return Err("the password must be at most 256 characters long".into());
    }
    Ok(())
}

/// Failed logins per username and per client address in a sliding window:
/// past the limit, further attempts are refused until the oldest failure
/// leaves the window, whether or not the password would be right.
pub struct LoginLimiter {
    window: Duration,
    per_name: usize,
    per_client: usize,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_name: usize, per_client: usize) -> Self {
        Self {
            window,
            per_name,
            per_client,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, client: &str) -> [String; 2] {
        [
            format!("name:{}", username.to_lowercase()),
            format!("client:{client}"),
        ]
    }

    /// `Err(seconds)` to wait when either key is over its limit.
    pub fn check(&self, username: &str, client: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let [name, client] = Self::keys(username, client);
        let mut wait = None;
        for (key, limit) in [(name, self.per_name), (client, self.per_client)] {
            if let Some(times) = failures.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < self.window);
                if times.len() >= limit {
                    let oldest = times[0];
                    let left = self.window.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.unwrap_or(0).max(left.as_secs() + 1));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, username: &str, client: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded memory under a flood of names: forget stale entries.
        if failures.len() > 100_000 {
            failures.retain(|_, times| {
                times
                    .last()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for key in Self::keys(username, client) {
            failures.entry(key).or_default().push(now);
        }
    }

    pub fn succeeded(&self, username: &str) {
        let [name, _] = Self::keys(username, "");
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(well_formed(&a));
        assert!(!well_formed("abc"));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
    }

    #[test]
    fn credentials_are_checked_with_reasons() {
        assert!(check_new_credentials("alice", "long enough").is_ok());
        assert!(
            check_new_credentials("al", "long enough")
                .unwrap_err()
                .contains("3 to 32")
        );
        assert!(
            check_new_credentials("a b c", "long enough")
                .unwrap_err()
                .contains("letters")
        );
        assert!(
            check_new_credentials("alice", "short")
                .unwrap_err()
                .contains("at least 8")
        );
    }

    #[test]
    fn the_limiter_blocks_after_the_limit_per_name_and_per_client() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(limiter.check("Alice", "1.2.3.4").is_ok());
            limiter.failed("alice", "1.2.3.4");
        }
        let wait = limiter.check("ALICE", "5.6.7.8").unwrap_err();
        assert!((1..=61).contains(&wait), "{wait}");
        assert!(limiter.check("bob", "5.6.7.8").is_ok());
        limiter.failed("bob", "1.2.3.4");
        limiter.failed("carol", "1.2.3.4");
        assert!(
            limiter.check("dave", "1.2.3.4").is_err(),
            "5 failures from one client"
        );
        limiter.succeeded("bob");
        assert!(limiter.check("bob", "9.9.9.9").is_ok());
    }
}
