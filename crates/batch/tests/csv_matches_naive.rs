//! The chunked CSV path must agree exactly with a naive computation, whether
//! the file is grouped by user or not, with re-ratings and ties.

use movierec_batch::aggregate_csv;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// A small deterministic generator, so the test needs no extra dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

type Line = (u64, u64, u8, i64);
/// Per user: (count, sum in half stars, newest ms); per movie: (count, sum).
type Naive = (BTreeMap<u64, (u64, u64, i64)>, BTreeMap<u64, (u64, u64)>);

fn lines(grouped: bool) -> Vec<Line> {
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for user in 1..=300u64 {
        for _ in 0..rng.next(40) + 1 {
            // Few movies, so the same user rates a movie several times.
            let movie = rng.next(25) + 1;
            let half = rng.next(10) as u8 + 1;
            let ts = rng.next(5) as i64; // many equal timestamps
            out.push((user, movie, half, ts));
        }
    }
    if !grouped {
        // Interleave: move every third line to the end.
        let (keep, moved): (Vec<_>, Vec<_>) = out.iter().enumerate().partition(|(i, _)| i % 3 != 0);
        out = keep.into_iter().chain(moved).map(|(_, l)| *l).collect();
    }
    out
}

fn naive(lines: &[Line]) -> Naive {
    let mut latest: HashMap<(u64, u64), (i64, u8)> = HashMap::new();
    for &(user, movie, half, ts) in lines {
        let entry = latest.entry((user, movie)).or_insert((ts, half));
        if ts >= entry.0 {
            *entry = (ts, half);
        }
    }
    let mut users = BTreeMap::new();
    let mut movies = BTreeMap::new();
    for (&(user, movie), &(ts, half)) in &latest {
        let u = users.entry(user).or_insert((0, 0, 0));
        u.0 += 1;
        u.1 += half as u64;
        u.2 = u.2.max(ts * 1000);
        let m = movies.entry(movie).or_insert((0, 0));
        m.0 += 1;
        m.1 += half as u64;
    }
    (users, movies)
}

fn check(grouped: bool, header: bool) {
    let lines = lines(grouped);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    if header {
        writeln!(file, "userId,movieId,rating,timestamp").unwrap();
    }
    for (user, movie, half, ts) in &lines {
        let rating = *half as f64 / 2.0;
        writeln!(file, "{user},{movie},{rating:.1},{ts}").unwrap();
    }
    file.flush().unwrap();
    let total = std::sync::atomic::AtomicU64::new(0);
    let agg = aggregate_csv(file.path(), &|n| {
        total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    let (users, movies) = naive(&lines);
    assert_eq!(agg.records_read, lines.len() as u64);
    assert_eq!(agg.ratings(), users.values().map(|u| u.0).sum::<u64>());
    assert_eq!(agg.superseded, agg.records_read - agg.ratings());
    let got_users: BTreeMap<u64, (u64, u64, i64)> = agg
        .users
        .iter()
        .map(|(id, a)| (*id, (a.count, a.sum_half, a.last_update_ms)))
        .collect();
    assert_eq!(got_users, users);
    let got_movies: BTreeMap<u64, (u64, u64)> = agg
        .movies
        .iter()
        .map(|(id, a)| (*id, (a.count, a.sum_half)))
        .collect();
    assert_eq!(got_movies, movies);
    let size = std::fs::metadata(file.path()).unwrap().len();
    let header_len = if header { 33 } else { 0 };
    assert!(
        total.into_inner() >= size - header_len,
        "progress covers the body"
    );
}

#[test]
fn grouped_file_with_header() {
    check(true, true);
}

#[test]
fn grouped_file_without_header() {
    check(true, false);
}

#[test]
fn ungrouped_file_falls_back_to_sorting() {
    check(false, true);
}

#[test]
fn malformed_line_is_reported_with_its_number() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "userId,movieId,rating,timestamp\n1,2,4.0,1\n1,3,9.0,1\n"
    )
    .unwrap();
    let error = aggregate_csv(file.path(), &|_| {}).unwrap_err().to_string();
    assert!(
        error.ends_with(":3: rating 9 is out of range: expected 0.5 to 5.0"),
        "{error}"
    );
}
