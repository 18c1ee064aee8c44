//! Movie metadata: titles as MovieLens writes them ("Toy Story (1995)"),
//! pipe-separated genres, and the release year taken from the title.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movie {
    pub movie_id: u64,
    /// The title as the source has it, year included.
    pub title: String,
    pub genres: Vec<String>,
    pub year: Option<i32>,
}

impl Movie {
    pub fn new(movie_id: u64, title: &str, genres: &str) -> Self {
        Self {
            movie_id,
            title: title.trim().to_string(),
            genres: parse_genres(genres),
            year: parse_title_year(title),
        }
    }

    /// Genres joined with `|`, the MovieLens and serving-table form.
    pub fn genres_text(&self) -> String {
        self.genres.join("|")
    }
}

/// Splits MovieLens genres; "(no genres listed)" means none.
pub fn parse_genres(text: &str) -> Vec<String> {
    text.split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty() && *g != "(no genres listed)")
        .map(str::to_string)
        .collect()
}

/// The year in a trailing "(1995)" or "(2006–2007)" of a title, if any.
pub fn parse_title_year(title: &str) -> Option<i32> {
    let trimmed = title.trim_end();
    let inner = trimmed.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let inside = &inner[open + 1..];
    let year_text: String = inside.chars().take(4).collect();
    let rest = &inside[year_text.len()..];
    let is_year = year_text.len() == 4 && year_text.bytes().all(|b| b.is_ascii_digit());
    let rest_ok = rest.is_empty()
        || rest.starts_with(['-', '–'])
            && rest
                .trim_start_matches(['-', '–'])
                .chars()
                .all(|c| c.is_ascii_digit());
    if is_year && rest_ok {
        year_text.parse().ok().filter(|y| (1800..=2200).contains(y))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_from_titles() {
        assert_eq!(parse_title_year("Toy Story (1995)"), Some(1995));
        assert_eq!(parse_title_year("Rebellion (2011) "), Some(2011));
        assert_eq!(
            parse_title_year("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            Some(1995)
        );
        assert_eq!(parse_title_year("Fawlty Towers (1975-1979)"), Some(1975));
        assert_eq!(parse_title_year("Big Bang Theory (2007–2019)"), Some(2007));
        assert_eq!(parse_title_year("Babylon 5"), None);
        assert_eq!(parse_title_year("Movie (Director's cut)"), None);
        assert_eq!(parse_title_year("1984"), None);
    }

    #[test]
    fn genres() {
        assert_eq!(
            parse_genres("Adventure|Animation|Children"),
            vec!["Adventure", "Animation", "Children"]
        );
        assert!(parse_genres("(no genres listed)").is_empty());
        let movie = Movie::new(1, "Toy Story (1995)", "Animation|Comedy");
        assert_eq!(movie.year, Some(1995));
        assert_eq!(movie.genres_text(), "Animation|Comedy");
    }
}
