//! Domain logic of movierec with no I/O: rating events and their validation,
//! exact feature accumulators, the Bayesian weighted scorer and movie metadata
//! helpers, and the recommendation models (explicit ALS for ratings, implicit
//! ALS for top-N lists) with the splits and metrics that evaluate them. Every adapter (SQL, Kafka, S3, HTTP) builds on these types, so the
//! rules in here are the rules of the whole system.

pub mod als;
pub mod baseline;
pub mod bpmf;
pub mod eval;
pub mod event;
pub mod experiment;
pub mod features;
pub mod ials;
pub mod idempotent;
pub mod ingest;
mod linalg;
pub mod movie;
pub mod rating;
pub mod scoring;
pub mod time;

pub use event::{InvalidEvent, MAX_EVENT_BYTES, RatingEvent};
pub use features::{FeatureAccumulator, Features};
pub use ingest::{BatchPlan, CurrentRating, FeatureDelta, plan_batch};
pub use movie::{Movie, parse_genres, parse_title_year};
pub use rating::{Rating, RatingError};
pub use scoring::{BayesianParams, MovieCounts, ScoredMovie, TopN, bayesian_top_n};
pub use time::{EventTime, TimeError};
