//! Every MovieLens parser (ratings and movies, in the CSV, .dat and ml-100k
//! layouts) on arbitrary file contents: rows or counted malformed lines, or
//! an error; never a panic. The first byte picks the layout and file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use movierec_datasets::movielens::{Layout, read_movies, read_ratings};
use std::sync::LazyLock;

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a temp dir"));

fuzz_target!(|data: &[u8]| {
    let Some((&choice, contents)) = data.split_first() else {
        return;
    };
    let layout = match choice % 3 {
        0 => Layout::Csv,
        1 => Layout::Dat,
        _ => Layout::Ml100k,
    };
    let dir = DIR.path();
    let movies = choice & 0x80 != 0;
    let file = if movies { layout.movies_file() } else { layout.ratings_file() };
    std::fs::write(dir.join(file), contents).expect("write the input");
    for strict in [false, true] {
        if movies {
            let _ = read_movies(dir, layout, strict, |movie| {
                assert!(movie.movie_id >= 1);
            });
        } else {
            let _ = read_ratings(dir, layout, strict, |_| {}, |row| {
                assert!(row.user_id >= 1 && row.movie_id >= 1);
            });
        }
    }
});
