//! Query-string validation that names the parameter at fault.

use crate::ApiError;
use std::collections::HashMap;
use std::str::FromStr;

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// What a movie listing (the API's and the browse page's) accepts.
pub const MOVIE_LIST_PARAMS: [&str; 8] = [
    "q",
    "genre",
    "year_from",
    "year_to",
    "min_count",
    "sort",
    "page",
    "page_size",
];

pub struct Params(HashMap<String, String>);

impl Params {
    /// Rejects parameters the endpoint does not know and repeated ones.
    pub fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_parameter(
                    &name,
                    format!(
                        "unknown parameter; this endpoint accepts {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad_parameter(&name, "given more than once"));
            }
        }
        Ok(Self(map))
    }

    /// A non-empty string of at most `max_len` characters.
    pub fn text(&self, name: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.0.get(name).map(|v| v.trim()) {
            None => Ok(None),
            Some("") => Err(ApiError::bad_parameter(name, "must not be empty")),
            Some(v) if v.chars().count() > max_len => Err(ApiError::bad_parameter(
                name,
                format!("longer than {max_len} characters"),
            )),
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    /// An integer in `min..=max`.
    pub fn int<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, ApiError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        let expected = || format!("expected an integer from {min} to {max}, got `{text}`");
        let value: T = text
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_parameter(name, expected()))?;
        if value < min || value > max {
            return Err(ApiError::bad_parameter(name, expected()));
        }
        Ok(Some(value))
    }

    pub fn page(&self) -> Result<movierec_store::Page, ApiError> {
        Ok(movierec_store::Page {
            page: self.int("page", 1, 1_000_000)?.unwrap_or(1),
            page_size: self
                .int("page_size", 1, MAX_PAGE_SIZE)?
                .unwrap_or(DEFAULT_PAGE_SIZE),
        })
    }

    /// `sort`, one of [`movierec_store::MovieSort::NAMES`].
    pub fn sort(
        &self,
        default: movierec_store::MovieSort,
    ) -> Result<movierec_store::MovieSort, ApiError> {
        match self.text("sort", 20)? {
            None => Ok(default),
            Some(text) => movierec_store::MovieSort::parse(&text).ok_or_else(|| {
                ApiError::bad_parameter(
                    "sort",
                    format!(
                        "expected one of {}, got `{text}`",
                        movierec_store::MovieSort::NAMES
                    ),
                )
            }),
        }
    }

    pub fn filter(&self) -> Result<movierec_store::MovieFilter, ApiError> {
        let filter = movierec_store::MovieFilter {
            q: self.text("q", 200)?,
            genre: self.text("genre", 50)?,
            year_from: self.int("year_from", 1800, 2200)?,
            year_to: self.int("year_to", 1800, 2200)?,
            min_count: self.int("min_count", 0, i64::MAX as u64)?,
        };
        if let (Some(from), Some(to)) = (filter.year_from, filter.year_to)
            && from > to
        {
            return Err(ApiError::bad_parameter(
                "year_from",
                format!("{from} is after year_to {to}"),
            ));
        }
        Ok(filter)
    }
}

/// A path id: a positive integer.
pub fn path_id(name: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| (1..=i64::MAX as u64).contains(id))
        .ok_or_else(|| {
            ApiError::bad_parameter(name, format!("expected a positive integer, got `{text}`"))
        })
}
