//! Event time: epoch milliseconds in UTC, parsed from ISO-8601 (with or
//! without a zone; no zone means UTC) or epoch seconds (MovieLens).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime(pub i64);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "timestamp `{0}` is not ISO-8601 (e.g. 2025-03-15T10:30:00 or 2025-03-15T10:30:00+02:00) nor epoch seconds"
    )]
    Unparseable(String),
    #[error("timestamp {0} is out of the supported range (years 1970 to 9999)")]
    OutOfRange(String),
}

/// Latest accepted instant: 9999-12-31T23:59:59Z.
const MAX_MILLIS: i64 = 253_402_300_799_000;

impl EventTime {
    pub fn from_epoch_seconds(seconds: i64) -> Result<Self, TimeError> {
        seconds
            .checked_mul(1000)
            .filter(|ms| (0..=MAX_MILLIS).contains(ms))
            .map(Self)
            .ok_or_else(|| TimeError::OutOfRange(seconds.to_string()))
    }

    pub fn from_epoch_seconds_f64(seconds: f64) -> Result<Self, TimeError> {
        let ms = seconds * 1000.0;
        if !ms.is_finite() || !(0.0..=MAX_MILLIS as f64).contains(&ms) {
            return Err(TimeError::OutOfRange(seconds.to_string()));
        }
        Ok(Self(ms.round() as i64))
    }

    /// Parses ISO-8601 text or a run of digits meaning epoch seconds.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let seconds: i64 = text
                .parse()
                .map_err(|_| TimeError::OutOfRange(text.to_string()))?;
            return Self::from_epoch_seconds(seconds);
        }
        let millis = if let Ok(with_zone) = DateTime::parse_from_rfc3339(text) {
            with_zone.timestamp_millis()
        } else {
            let naive = [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .ok_or_else(|| TimeError::Unparseable(text.to_string()))?;
            Utc.from_utc_datetime(&naive).timestamp_millis()
        };
        if !(0..=MAX_MILLIS).contains(&millis) {
            return Err(TimeError::OutOfRange(text.to_string()));
        }
        Ok(Self(millis))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// ISO-8601 in UTC with a `Z`, milliseconds only when present.
    pub fn to_iso8601(self) -> String {
        let instant = Utc
            .timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_default();
        let format = if self.0 % 1000 == 0 {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Millis
        };
        instant.to_rfc3339_opts(format, true)
    }

    /// The `YYYY-MM-DD` partition date (UTC) of the lake layout.
    pub fn date(self) -> String {
        self.to_iso8601()[..10].to_string()
    }
}

impl serde::Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_iso8601())
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        let utc = EventTime::parse("2025-03-15T10:30:00").unwrap();
        assert_eq!(utc.to_iso8601(), "2025-03-15T10:30:00Z");
        assert_eq!(EventTime::parse("2025-03-15T10:30:00Z").unwrap(), utc);
        assert_eq!(EventTime::parse("2025-03-15T12:30:00+02:00").unwrap(), utc);
        assert_eq!(EventTime::parse("2025-03-15 10:30:00").unwrap(), utc);
        assert_eq!(
            EventTime::parse("964982703").unwrap().to_iso8601(),
            "2000-07-30T18:45:03Z"
        );
        assert_eq!(
            EventTime::parse("2025-03-15T10:30:00.250")
                .unwrap()
                .to_iso8601(),
            "2025-03-15T10:30:00.250Z"
        );
        assert_eq!(utc.date(), "2025-03-15");
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(matches!(
            EventTime::parse("yesterday"),
            Err(TimeError::Unparseable(_))
        ));
        assert!(EventTime::parse("2025-13-01T00:00:00").is_err());
        assert!(matches!(
            EventTime::parse("99999999999999999999"),
            Err(TimeError::OutOfRange(_))
        ));
        assert!(EventTime::from_epoch_seconds(-5).is_err());
    }
}
