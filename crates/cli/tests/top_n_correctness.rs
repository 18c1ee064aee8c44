//! The published top-1000 equals an independent computation, on real
//! MovieLens data and on a synthetic set full of ties.

mod common;
use common::*;
use std::io::Write;

fn import_and_batch(dir: &std::path::Path, data: &std::path::Path) {
    run_ok(movierec(dir).args(["import", "movielens"]).arg(data));
    run_ok(movierec(dir).args(["batch", "run"]));
}

#[test]
fn ml_latest_small_top_1000() {
    let data = movielens("ml-latest-small");
    let work = workdir();
    import_and_batch(work.path(), &data);
    let expected = reference_top(&read_ratings(&data), 50, 1000);
    assert!(
        expected.len() > 400,
        "ml-latest-small has {} movies with 50+ ratings",
        expected.len()
    );
    assert_same_top(
        &published_top(&work.path().join("data/movierec.db")),
        &expected,
    );
}

#[test]
fn ml_100k_top_1000() {
    let data = movielens("ml-100k");
    let work = workdir();
    import_and_batch(work.path(), &data);
    let expected = reference_top(&read_ratings(&data), 50, 1000);
    assert!(expected.len() > 500);
    assert_same_top(
        &published_top(&work.path().join("data/movierec.db")),
        &expected,
    );
}

#[test]
fn synthetic_ties_and_rerating() {
    // 30 movies in groups of identical rating sets (equal scores), a user who
    // re-rates (the latest wins, even when it appears earlier in the file),
    // and movies under the threshold.
    let work = workdir();
    let data = work.path().join("ties");
    std::fs::create_dir_all(&data).unwrap();
    let mut movies = std::fs::File::create(data.join("movies.csv")).unwrap();
    writeln!(movies, "movieId,title,genres").unwrap();
    let mut ratings = std::fs::File::create(data.join("ratings.csv")).unwrap();
    writeln!(ratings, "userId,movieId,rating,timestamp").unwrap();
    let mut lines = Vec::new();
    for movie in (1..=30u64).rev() {
        writeln!(
            movies,
            "{movie},\"Tie {movie}, The ({})\",Drama",
            1990 + movie
        )
        .unwrap();
        let group = movie % 3;
        let count = if movie > 27 { 3 } else { 6 };
        for user in 1..=count {
            let rating = [3.5, 4.0, 4.5][group as usize] - if user % 2 == 0 { 0.5 } else { 0.0 };
            lines.push((user, movie, rating, 1_000_000 + movie as i64));
        }
    }
    // User 1 re-rates movie 5: the newer rating is written first.
    lines.push((1, 5, 0.5, 2_000_000));
    lines.push((1, 5, 5.0, 1_500_000));
    lines.sort_by_key(|l| l.0);
    for (user, movie, rating, ts) in &lines {
        writeln!(ratings, "{user},{movie},{rating:.1},{ts}").unwrap();
    }
    drop((movies, ratings));
    std::fs::write(
        work.path().join("config.yaml"),
        "batch: { min_ratings: 5, top_n: 20 }\n",
    )
    .unwrap();
    run_ok(movierec(work.path()).args(["--config", "config.yaml", "import", "movielens", "ties"]));
    run_ok(movierec(work.path()).args(["--config", "config.yaml", "batch", "run"]));
    let expected = reference_top(&lines, 5, 20);
    let got = published_top(&work.path().join("data/movierec.db"));
    assert_same_top(&got, &expected);
    assert_eq!(got.len(), 20);
    // Ties really are there, and go by ascending id.
    let tied: Vec<u64> = got
        .iter()
        .filter(|(_, s)| *s == got[0].1)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        tied.len() > 3 && tied.windows(2).all(|w| w[0] < w[1]),
        "{tied:?}"
    );
}

#[test]
fn batch_csv_matches_the_published_list() {
    let data = movielens("ml-latest-small");
    let work = workdir();
    run_ok(
        movierec(work.path())
            .args(["batch", "csv", "--out", "out", "--ratings"])
            .arg(data.join("ratings.csv")),
    );
    let text = std::fs::read_to_string(work.path().join("out/top-movies.csv")).unwrap();
    let got: Vec<(u64, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_same_top(&got, &reference_top(&read_ratings(&data), 50, 1000));
    let users = std::fs::read_to_string(work.path().join("out/user-features.csv")).unwrap();
    assert_eq!(
        users.lines().count(),
        610 + 1,
        "ml-latest-small has 610 users"
    );
    assert!(
        users
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("1,4.366379310344827,232,"),
        "{}",
        users.lines().nth(1).unwrap()
    );
}
