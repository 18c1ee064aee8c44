use crate::{Result, StoreError};

/// The SQL dialects the serving database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
    Postgres,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::Invalid(format!(
                "unsupported database URL `{}`: expected sqlite://, mysql:// or postgres://",
                redact(url)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::MySql => "mysql",
            Self::Postgres => "postgres",
        }
    }

    /// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. Our SQL never
    /// has a `?` inside a string literal, but literals are skipped anyway.
    pub fn placeholders(self, sql: &str) -> String {
        if self != Self::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        let mut in_literal = false;
        for c in sql.chars() {
            match c {
                '\'' => {
                    in_literal = !in_literal;
                    out.push(c);
                }
                '?' if !in_literal => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(c),
            }
        }
        out
    }

    /// `'|' || genres || '|'`: MySQL's `||` is a logical OR.
    pub fn piped(self, column: &str) -> String {
        match self {
            Self::MySql => format!("CONCAT('|', {column}, '|')"),
            _ => format!("('|' || {column} || '|')"),
        }
    }

    /// The upsert clause for a unique `key` updating `columns`.
    pub fn upsert(self, key: &str, columns: &[&str]) -> String {
        match self {
            Self::MySql => format!(
                " ON DUPLICATE KEY UPDATE {}",
                columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!(
                " ON CONFLICT ({key}) DO UPDATE SET {}",
                columns
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A URL with its password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            Dialect::Postgres.placeholders("a = ? AND b LIKE '?' AND c = ?"),
            "a = $1 AND b LIKE '?' AND c = $2"
        );
        assert_eq!(Dialect::MySql.placeholders("a = ?"), "a = ?");
    }

    #[test]
    fn urls() {
        assert_eq!(
            Dialect::from_url("sqlite://data/x.db").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db").unwrap(),
            Dialect::Postgres
        );
        let error = Dialect::from_url("oracle://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(error.contains("oracle://u:***@h/db"), "{error}");
        assert_eq!(
            redact("mysql://app:pw@db:3306/x"),
            "mysql://app:***@db:3306/x"
        );
    }
}
