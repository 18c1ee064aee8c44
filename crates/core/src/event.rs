//! Rating events as they arrive on the `user-events` topic, and the rules that
//! decide whether one is accepted or sent to the dead-letter topic.

use crate::{EventTime, Rating};
use serde_json::{Map, Value};

/// Largest payload accepted; anything bigger is dead-lettered unread.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Largest id accepted: ids are stored as signed 64-bit integers everywhere.
pub const MAX_ID: u64 = i64::MAX as u64;

/// A validated rating event.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingEvent {
    pub user_id: u64,
    pub movie_id: u64,
    pub rating: Rating,
    pub timestamp: EventTime,
    /// Optional idempotency key; without it the source position identifies the event.
    pub event_id: Option<String>,
}

/// Why an event was rejected. The `code` names the reason in dead-letter headers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("payload is {0} bytes, more than the {MAX_EVENT_BYTES}-byte limit")]
    Oversized(usize),
    #[error("payload is not valid JSON: {0}")]
    BadJson(String),
    #[error("payload is not a JSON object")]
    NotAnObject,
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` has the wrong type: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{0}` must be a positive integer")]
    BadId(&'static str),
    #[error("field `rating`: {0}")]
    BadRating(#[from] crate::RatingError),
    #[error("field `timestamp`: {0}")]
    BadTimestamp(#[from] crate::TimeError),
}

impl InvalidEvent {
    /// A stable machine-readable reason, used in dead-letter headers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversized(_) => "oversized",
            Self::BadJson(_) => "bad_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField(_) => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::BadId(_) => "bad_id",
            Self::BadRating(_) => "bad_rating",
            Self::BadTimestamp(_) => "bad_timestamp",
        }
    }
}

impl RatingEvent {
    /// Validates raw bytes from the stream (SPEC §1).
    pub fn from_json(payload: &[u8]) -> Result<Self, InvalidEvent> {
        if payload.len() > MAX_EVENT_BYTES {
            return Err(InvalidEvent::Oversized(payload.len()));
        }
        match Self::from_plain_json(payload) {
            Some(event) => Ok(event),
            None => Self::from_json_value(payload),
        }
    }

    fn from_json_value(payload: &[u8]) -> Result<Self, InvalidEvent> {
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| InvalidEvent::BadJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(InvalidEvent::NotAnObject);
        };
        Self::from_object(&object)
    }

    /// The common case, several times faster than going through a
    /// `serde_json::Value` map: typed fields, the timestamp as an unescaped
    /// string. `None` whenever anything differs (other types, nulls,
    /// duplicate keys, escapes, a bad value): then the full path decides,
    /// with its error, so both paths accept exactly the same events.
    fn from_plain_json(payload: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Plain<'a> {
            user_id: u64,
            movie_id: u64,
            rating: f64,
            timestamp: &'a str,
            #[serde(default)]
            event_id: Option<&'a str>,
        }
        let plain: Plain = serde_json::from_slice(payload).ok()?;
        let id = |id: u64| (1..=MAX_ID).contains(&id).then_some(id);
        Some(Self {
            user_id: id(plain.user_id)?,
            movie_id: id(plain.movie_id)?,
            rating: Rating::from_f64(plain.rating).ok()?,
            timestamp: EventTime::parse(plain.timestamp).ok()?,
            event_id: match plain.event_id {
                None => None,
                Some("") => return None,
                Some(id) => Some(id.to_string()),
            },
        })
    }

    fn from_object(object: &Map<String, Value>) -> Result<Self, InvalidEvent> {
        let user_id = id_field(object, "user_id")?;
        let movie_id = id_field(object, "movie_id")?;
        let rating = match field(object, "rating")? {
            Value::Number(n) => Rating::from_f64(n.as_f64().unwrap_or(f64::NAN))?,
            _ => {
                return Err(InvalidEvent::WrongType {
                    field: "rating",
                    expected: "a number",
                });
            }
        };
        let timestamp = match field(object, "timestamp")? {
            Value::String(text) => EventTime::parse(text)?,
            Value::Number(n) => match n.as_i64() {
                Some(seconds) => EventTime::from_epoch_seconds(seconds)?,
                None => EventTime::from_epoch_seconds_f64(n.as_f64().unwrap_or(f64::NAN))?,
            },
            _ => {
                return Err(InvalidEvent::WrongType {
                    field: "timestamp",
                    expected: "an ISO-8601 string or epoch seconds",
                });
            }
        };
        let event_id = match object.get("event_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            Some(_) => {
                return Err(InvalidEvent::WrongType {
                    field: "event_id",
                    expected: "a non-empty string",
                });
            }
        };
        Ok(Self {
            user_id,
            movie_id,
            rating,
            timestamp,
            event_id,
        })
    }

    /// The canonical JSON form, as written to the bronze layer.
    pub fn to_json(&self) -> String {
        let mut object = serde_json::json!({
            "user_id": self.user_id,
            "movie_id": self.movie_id,
            "rating": self.rating.value(),
            "timestamp": self.timestamp.to_iso8601(),
        });
        if let Some(id) = &self.event_id {
            object["event_id"] = Value::String(id.clone());
        }
        object.to_string()
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a Value, InvalidEvent> {
    match object.get(name) {
        None | Some(Value::Null) => Err(InvalidEvent::MissingField(name)),
        Some(value) => Ok(value),
    }
}

fn id_field(object: &Map<String, Value>, name: &'static str) -> Result<u64, InvalidEvent> {
    match field(object, name)? {
        Value::Number(n) => n
            .as_u64()
            .filter(|id| (1..=MAX_ID).contains(id))
            .ok_or(InvalidEvent::BadId(name)),
        _ => Err(InvalidEvent::WrongType {
            field: name,
            expected: "a positive integer",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_accepts_and_refuses_exactly_what_the_full_path_does() {
        let payloads: &[&str] = &[
            r#"{"user_id": 123, "movie_id": 456, "rating": 4.5, "timestamp": "2025-03-15T10:30:00"}"#,
            r#"{"movie_id":8,"rating":4.5,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"event_id":"e1"}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"event_id":""}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"event_id":null}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"event_id":5}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":1742034600,"user_id":7}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":0}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":9223372036854775808}"#,
            r#"{"movie_id":8,"rating":4.25,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"movie_id":8,"rating":"4","timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"not a time","user_id":7}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"user_id":9}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00\u005a","user_id":7}"#,
            r#"{"movie_id":8.0,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"movie_id":null,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#,
            r#"{"movie_id":8,"rating":4,"timestamp":"2025-03-15T10:30:00Z","user_id":7,"extra":[1,2]}"#,
            r#"[1,2,3]"#,
            r#"{"movie_id":8,"#,
        ];
        for payload in payloads {
            assert_eq!(
                RatingEvent::from_json(payload.as_bytes()),
                RatingEvent::from_json_value(payload.as_bytes()),
                "{payload}"
            );
        }
    }

    #[test]
    fn accepts_the_spec_example() {
        let event = RatingEvent::from_json(
            br#"{"user_id": 123, "movie_id": 456, "rating": 4.5, "timestamp": "2025-03-15T10:30:00"}"#,
        )
        .unwrap();
        assert_eq!(event.user_id, 123);
        assert_eq!(event.movie_id, 456);
        assert_eq!(event.rating.value(), 4.5);
        assert_eq!(event.timestamp.to_iso8601(), "2025-03-15T10:30:00Z");
        assert_eq!(
            RatingEvent::from_json(event.to_json().as_bytes()).unwrap(),
            event
        );
    }

    #[test]
    fn accepts_epoch_seconds_and_event_id() {
        let event = RatingEvent::from_json(
            br#"{"user_id": 1, "movie_id": 2, "rating": 3, "timestamp": 964982703, "event_id": "e-1"}"#,
        )
        .unwrap();
        assert_eq!(event.timestamp.millis(), 964_982_703_000);
        assert_eq!(event.event_id.as_deref(), Some("e-1"));
    }

    #[test]
    fn names_every_kind_of_bad_event() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "bad_json"),
            (b"[1,2]", "not_an_object"),
            (
                br#"{"movie_id":1,"rating":4,"timestamp":1}"#,
                "missing_field",
            ),
            (
                br#"{"user_id":"7","movie_id":1,"rating":4,"timestamp":1}"#,
                "wrong_type",
            ),
            (
                br#"{"user_id":0,"movie_id":1,"rating":4,"timestamp":1}"#,
                "bad_id",
            ),
            (
                br#"{"user_id":-3,"movie_id":1,"rating":4,"timestamp":1}"#,
                "bad_id",
            ),
            (
                br#"{"user_id":1.5,"movie_id":1,"rating":4,"timestamp":1}"#,
                "bad_id",
            ),
            (
                br#"{"user_id":1,"movie_id":1,"rating":7,"timestamp":1}"#,
                "bad_rating",
            ),
            (
                br#"{"user_id":1,"movie_id":1,"rating":4.2,"timestamp":1}"#,
                "bad_rating",
            ),
            (
                br#"{"user_id":1,"movie_id":1,"rating":"4","timestamp":1}"#,
                "wrong_type",
            ),
            (
                br#"{"user_id":1,"movie_id":1,"rating":4,"timestamp":"soon"}"#,
                "bad_timestamp",
            ),
            (
                br#"{"user_id":1,"movie_id":1,"rating":4,"timestamp":true}"#,
                "wrong_type",
            ),
        ];
        for (payload, code) in cases {
            let error = RatingEvent::from_json(payload).unwrap_err();
            assert_eq!(error.code(), *code, "{}", String::from_utf8_lossy(payload));
        }
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(
            RatingEvent::from_json(&huge).unwrap_err().code(),
            "oversized"
        );
    }
}
