//! The readers against fixture folders in every layout, and once against the
//! real ml-latest-small and ml-100k.

use movierec_core::Movie;
use movierec_datasets::DatasetError;
use movierec_datasets::movielens::{
    Layout, RatingRow, ReadReport, detect_layout, ratings_file_size, read_movies, read_ratings,
};
use std::path::{Path, PathBuf};

fn movies_of(dir: &Path) -> (Vec<Movie>, ReadReport) {
    let layout = detect_layout(dir).unwrap();
    let mut movies = Vec::new();
    let report = read_movies(dir, layout, false, |m| movies.push(m)).unwrap();
    (movies, report)
}

fn ratings_of(dir: &Path) -> (Vec<RatingRow>, ReadReport) {
    let layout = detect_layout(dir).unwrap();
    let mut rows = Vec::new();
    let report = read_ratings(dir, layout, false, |_| {}, |r| rows.push(r)).unwrap();
    (rows, report)
}

fn malformed_lines(report: &ReadReport) -> Vec<u64> {
    report.first_malformed.iter().map(|m| m.line).collect()
}

#[test]
fn csv_titles_with_commas_and_doubled_quotes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("movies.csv"),
        "movieId,title,genres\n\
         1,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Adventure|Drama|Fantasy\n\
         2,\"Who Said \"\"Boo\"\", Anyway? (2001)\",(no genres listed)\n\
         3,Babylon 5,Sci-Fi\n\
         x,Bad id,Drama\n\
         4,Two fields only\n\
         5,Fawlty Towers (1975-1979),Comedy\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ratings.csv"),
        "userId,movieId,rating,timestamp\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Csv);
    let (movies, report) = movies_of(dir.path());
    let titles: Vec<&str> = movies.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "Who Said \"Boo\", Anyway? (2001)",
            "Babylon 5",
            "Fawlty Towers (1975-1979)",
        ]
    );
    let years: Vec<Option<i32>> = movies.iter().map(|m| m.year).collect();
    assert_eq!(years, [Some(1995), Some(2001), None, Some(1975)]);
    assert_eq!(movies[0].genres, ["Adventure", "Drama", "Fantasy"]);
    assert!(movies[1].genres.is_empty(), "(no genres listed) is none");
    assert_eq!((report.rows, report.malformed), (4, 2));
    assert_eq!(malformed_lines(&report), [5, 6]);
    assert!(
        report.first_malformed[0].reason.contains("movie id `x`"),
        "{:?}",
        report.first_malformed[0]
    );
    assert!(
        report.first_malformed[1]
            .to_string()
            .ends_with("movies.csv:6: expected 3 fields (movieId, title, genres), found 2"),
        "{}",
        report.first_malformed[1]
    );

    let error = read_movies(dir.path(), Layout::Csv, true, |_| {}).unwrap_err();
    assert!(matches!(&error, DatasetError::Malformed(m) if m.line == 5));
    assert!(error.to_string().contains("movies.csv:5"), "{error}");
}

#[test]
fn csv_ratings_skip_and_report_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut ratings = b"\xEF\xBB\xBFuserId,movieId,rating,timestamp\n\
        1,1,4.0,964982703\n\
        1,2,4.3,964982703\n\
        1,3,3.5\n\
        0,3,3.5,964982703\n\
        2,x,3.5,964982703\n\
        2,3,5.5,964982703\n\
        2,3,0,964982703\n\
        2,3,3.0,yesterday\n\
        2,3,3.0,1,extra\n\
        \n\
        2,1,0.5,964982704\r\n\
        3,1,5,2025-03-15T10:30:00\n"
        .to_vec();
    ratings.extend_from_slice(b"3,2,4.0,96498270\xff\n");
    std::fs::write(dir.path().join("ratings.csv"), &ratings).unwrap();
    std::fs::write(dir.path().join("movies.csv"), "movieId,title,genres\n").unwrap();

    let (rows, report) = ratings_of(dir.path());
    let expected: Vec<(u64, u64, f64, i64)> = vec![
        (1, 1, 4.0, 964_982_703_000),
        (2, 1, 0.5, 964_982_704_000),
        (3, 1, 5.0, 1_742_034_600_000),
    ];
    let got: Vec<(u64, u64, f64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.user_id,
                r.movie_id,
                r.rating.value(),
                r.timestamp.millis(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(report.rows, 3);
    assert_eq!(report.malformed, 9);
    assert_eq!(malformed_lines(&report), [3, 4, 5, 6, 7, 8, 9, 10, 14]);
    let reasons: Vec<&str> = report
        .first_malformed
        .iter()
        .map(|m| m.reason.as_str())
        .collect();
    for (reason, fragment) in reasons.iter().zip([
        "not a multiple of 0.5",
        "expected 4 fields",
        "user id `0`",
        "movie id `x`",
        "out of range",
        "out of range",
        "yesterday",
        "found 5",
        "not valid UTF-8",
    ]) {
        assert!(reason.contains(fragment), "`{reason}` lacks `{fragment}`");
    }
    assert!(
        report
            .first_malformed
            .iter()
            .all(|m| m.file == dir.path().join("ratings.csv"))
    );

    let error = read_ratings(dir.path(), Layout::Csv, true, |_| {}, |_| {}).unwrap_err();
    let DatasetError::Malformed(first) = &error else {
        panic!("expected Malformed, got {error}");
    };
    assert_eq!(first.line, 3);
    assert!(error.to_string().contains("ratings.csv:3: "), "{error}");
}

#[test]
fn first_malformed_keeps_ten_and_counts_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for i in 0..25 {
        ratings.push_str(&format!("{},1,9.0,1\n1,{},4.0,1\n", i + 1, i + 1));
    }
    std::fs::write(dir.path().join("ratings.csv"), ratings).unwrap();
    let (rows, report) = ratings_of(dir.path());
    assert_eq!((rows.len(), report.rows, report.malformed), (25, 25, 25));
    assert_eq!(
        malformed_lines(&report),
        (0..10).map(|i| 2 + 2 * i).collect::<Vec<u64>>()
    );
}

#[test]
fn progress_reports_bytes_read_up_to_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for i in 0..150_000u64 {
        ratings.push_str(&format!("{},{},3.5,1500000000\n", i / 100 + 1, i % 100 + 1));
    }
    std::fs::write(dir.path().join("ratings.csv"), &ratings).unwrap();
    let size = ratings_file_size(dir.path(), Layout::Csv).unwrap();
    assert_eq!(size, ratings.len() as u64);
    let mut seen = Vec::new();
    let mut rows = 0u64;
    read_ratings(
        dir.path(),
        Layout::Csv,
        true,
        |b| seen.push(b),
        |_| rows += 1,
    )
    .unwrap();
    assert_eq!(rows, 150_000);
    assert!(seen.len() >= 3, "about every MiB of {size} bytes: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen[0] >= 1 << 20 && seen[0] < (1 << 20) + 100, "{seen:?}");
    assert_eq!(*seen.last().unwrap(), size);
}

#[test]
fn dat_layout_decodes_latin_1_and_utf_8_per_line() {
    let dir = tempfile::tempdir().unwrap();
    // ml-1m is Latin-1 (é is 0xE9), ml-10m UTF-8 (é is 0xC3 0xA9).
    let mut movies =
        b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Caf\xE9 (1999)::Drama\n".to_vec();
    movies.extend_from_slice(
        "3::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n".as_bytes(),
    );
    movies.extend_from_slice(b"4::No genres\n5::Heat (1995)::Action|Crime|Thriller\n");
    std::fs::write(dir.path().join("movies.dat"), movies).unwrap();
    std::fs::write(
        dir.path().join("ratings.dat"),
        "1::1::5::978300760\n1::2::3::978302109\n2::1::bad::1\n2::3::3.5::1230000000\n2::5::4\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Dat);

    let (movies, report) = movies_of(dir.path());
    let titles: Vec<&str> = movies.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Toy Story (1995)",
            "Café (1999)",
            "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
            "Heat (1995)",
        ]
    );
    assert_eq!(movies[1].year, Some(1999));
    assert_eq!(movies[0].genres, ["Animation", "Children's", "Comedy"]);
    assert_eq!(malformed_lines(&report), [4]);
    assert!(report.first_malformed[0].reason.contains("found 2"));
    let error = read_movies(dir.path(), Layout::Dat, true, |_| {}).unwrap_err();
    assert!(error.to_string().contains("movies.dat:4: "), "{error}");

    let (rows, report) = ratings_of(dir.path());
    let got: Vec<(u64, u64, u8)> = rows
        .iter()
        .map(|r| (r.user_id, r.movie_id, r.rating.half_stars()))
        .collect();
    assert_eq!(got, [(1, 1, 10), (1, 2, 6), (2, 3, 7)]);
    assert_eq!(rows[0].timestamp.millis(), 978_300_760_000);
    assert_eq!(malformed_lines(&report), [3, 5]);
    let error = read_ratings(dir.path(), Layout::Dat, true, |_| {}, |_| {}).unwrap_err();
    assert!(error.to_string().contains("ratings.dat:3: "), "{error}");
}

const ML100K_ITEMS: &[u8] =
    b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
2|Se\xF1or|01-Jan-1997||http://y|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|1\n\
3|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
4|Short line|01-Jan-1990||http://z|0|1\n\
5|Bad flag (1990)|01-Jan-1990||http://z|0|0|0|0|0|0|0|0|2|0|0|0|0|0|0|0|0|0|0\n";

#[test]
fn ml100k_genre_flags_latin_1_and_release_years() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.item"), ML100K_ITEMS).unwrap();
    std::fs::write(
        dir.path().join("u.data"),
        "196\t1\t3\t881250949\n186\t2\t3\t891717742\n22\t3\t1\n244\t0\t2\t880606923\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Ml100k);

    // No u.genre: the documented order.
    let (movies, report) = movies_of(dir.path());
    assert_eq!(movies.len(), 3);
    assert_eq!(movies[0].title, "Toy Story (1995)");
    assert_eq!(movies[0].genres, ["Animation", "Children's", "Comedy"]);
    assert_eq!(movies[1].title, "Señor");
    assert_eq!(movies[1].year, Some(1997), "from the release date");
    assert_eq!(movies[1].genres, ["Drama", "Western"]);
    assert!(movies[2].genres.is_empty(), "`unknown` is no genre");
    assert_eq!(movies[2].year, None);
    assert_eq!(malformed_lines(&report), [4, 5]);
    assert!(report.first_malformed[0].reason.contains("found 7"));
    assert!(report.first_malformed[1].reason.contains("Drama"));

    // u.genre names the columns when present.
    let mut genre = String::new();
    for (i, name) in [
        "unknown",
        "Action",
        "Adventure",
        "Animation",
        "Kids",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ]
    .iter()
    .enumerate()
    {
        genre.push_str(&format!("{name}|{i}\n"));
    }
    genre.push('\n');
    std::fs::write(dir.path().join("u.genre"), genre).unwrap();
    let (movies, _) = movies_of(dir.path());
    assert_eq!(movies[0].genres, ["Animation", "Kids", "Comedy"]);

    let (rows, report) = ratings_of(dir.path());
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].user_id, rows[0].movie_id), (196, 1));
    assert_eq!(rows[0].rating.value(), 3.0);
    assert_eq!(malformed_lines(&report), [3, 4]);
    let error = read_ratings(dir.path(), Layout::Ml100k, true, |_| {}, |_| {}).unwrap_err();
    assert!(error.to_string().contains("u.data:3: "), "{error}");
}

#[test]
fn missing_and_unknown_folders_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let error = detect_layout(dir.path()).unwrap_err().to_string();
    for needle in [
        dir.path().display().to_string().as_str(),
        "ratings.csv",
        "ratings.dat",
        "u.data",
    ] {
        assert!(error.contains(needle), "`{error}` lacks `{needle}`");
    }

    let error = read_ratings(dir.path(), Layout::Csv, false, |_| {}, |_| {})
        .unwrap_err()
        .to_string();
    let path = dir.path().join("ratings.csv").display().to_string();
    assert!(error.contains(&path), "{error}");
    assert!(ratings_file_size(dir.path(), Layout::Dat).is_err());

    std::fs::write(dir.path().join("ratings.csv"), "").unwrap();
    let error = read_movies(dir.path(), Layout::Csv, false, |_| {})
        .unwrap_err()
        .to_string();
    let path = dir.path().join("movies.csv").display().to_string();
    assert!(error.contains(&path), "{error}");
}

fn movielens_root() -> PathBuf {
    let root = std::env::var_os("MOVIEREC_MOVIELENS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/movielens")
        });
    for name in ["ml-latest-small", "ml-100k"] {
        assert!(
            root.join(name).is_dir(),
            "{} has no {name}: set MOVIEREC_MOVIELENS_DIR to the folder holding \
             ml-latest-small and ml-100k (unzipped from files.grouplens.org)",
            root.display()
        );
    }
    root
}

#[test]
fn real_movielens_counts() {
    let root = movielens_root();
    for (name, layout, ratings, movies, users) in [
        ("ml-latest-small", Layout::Csv, 100_836, 9_742, 610),
        ("ml-100k", Layout::Ml100k, 100_000, 1_682, 943),
    ] {
        let dir = root.join(name);
        assert_eq!(detect_layout(&dir).unwrap(), layout, "{name}");
        let mut user_ids = std::collections::HashSet::new();
        let mut last_progress = 0;
        let report = read_ratings(
            &dir,
            layout,
            true,
            |b| last_progress = b,
            |r| {
                user_ids.insert(r.user_id);
            },
        )
        .unwrap();
        assert_eq!((report.rows, report.malformed), (ratings, 0), "{name}");
        assert_eq!(user_ids.len(), users, "{name}");
        assert_eq!(last_progress, ratings_file_size(&dir, layout).unwrap());

        let mut all = Vec::new();
        let report = read_movies(&dir, layout, true, |m| all.push(m)).unwrap();
        assert_eq!((report.rows, report.malformed), (movies, 0), "{name}");
        assert_eq!(all.len() as u64, movies, "{name}");
        let toy_story = all.iter().find(|m| m.movie_id == 1).unwrap();
        assert_eq!(toy_story.title, "Toy Story (1995)");
        assert_eq!(toy_story.year, Some(1995));
        assert!(toy_story.genres.iter().any(|g| g == "Animation"));
        let with_year = all.iter().filter(|m| m.year.is_some()).count();
        assert!(
            with_year as u64 >= movies - 15,
            "{name}: {with_year} with a year"
        );
    }
}
