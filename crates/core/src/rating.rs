//! A star rating, stored as a count of half stars so that sums and sums of
//! squares stay exact integers (the basis of exact feature removal).

use std::fmt;

/// A rating from 0.5 to 5.0 in steps of 0.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rating(u8);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RatingError {
    #[error("rating {0} is out of range: expected 0.5 to 5.0")]
    OutOfRange(f64),
    #[error("rating {0} is not a multiple of 0.5")]
    NotHalfStep(f64),
    #[error("rating `{0}` is not a number")]
    NotANumber(String),
}

impl Rating {
    pub const MIN_HALF_STARS: u8 = 1;
    pub const MAX_HALF_STARS: u8 = 10;

    /// From a count of half stars (1..=10).
    pub fn from_half_stars(half_stars: u8) -> Result<Self, RatingError> {
        if (Self::MIN_HALF_STARS..=Self::MAX_HALF_STARS).contains(&half_stars) {
            Ok(Self(half_stars))
        } else {
            Err(RatingError::OutOfRange(half_stars as f64 / 2.0))
        }
    }

    pub fn from_f64(value: f64) -> Result<Self, RatingError> {
        if !value.is_finite() || !(0.5..=5.0).contains(&value) {
            return Err(RatingError::OutOfRange(value));
        }
        let doubled = value * 2.0;
        if doubled.fract() != 0.0 {
            return Err(RatingError::NotHalfStep(value));
        }
        Ok(Self(doubled as u8))
    }

    /// Parses the decimal text MovieLens files use ("4", "4.0", "3.5").
    pub fn parse(text: &str) -> Result<Self, RatingError> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| RatingError::NotANumber(text.to_string()))?;
        Self::from_f64(value)
    }

    pub fn half_stars(self) -> u8 {
        self.0
    }

    pub fn value(self) -> f64 {
        self.0 as f64 / 2.0
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_half_steps_in_range() {
        assert_eq!(Rating::parse("4.5").unwrap().half_stars(), 9);
        assert_eq!(Rating::parse("5").unwrap().value(), 5.0);
        assert_eq!(Rating::parse("0.5").unwrap().half_stars(), 1);
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(Rating::parse("0"), Err(RatingError::OutOfRange(0.0)));
        assert_eq!(Rating::parse("5.5"), Err(RatingError::OutOfRange(5.5)));
        assert_eq!(Rating::parse("4.2"), Err(RatingError::NotHalfStep(4.2)));
        assert!(matches!(
            Rating::parse("x"),
            Err(RatingError::NotANumber(_))
        ));
        assert!(Rating::from_f64(f64::NAN).is_err());
        assert!(Rating::from_half_stars(11).is_err());
    }
}
