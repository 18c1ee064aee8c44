use movierec_datasets::download::{DownloadOptions, download};
use movierec_datasets::movielens::{Layout, detect_layout, read_movies, read_ratings};
use movierec_datasets::synth::{SynthParams, generate};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

fn movies_of(dir: &Path) -> Vec<movierec_core::Movie> {
    let layout = detect_layout(dir).unwrap();
    let mut movies = Vec::new();
    read_movies(dir, layout, false, |m| movies.push(m)).unwrap();
    movies
}

#[test]
fn csv_layout_with_quotes_commas_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("movies.csv"),
        "movieId,title,genres\n1,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Drama|Sci-Fi\n\
         2,\"Who Said \"\"Boo\"\" (2001)\",(no genres listed)\n3,Babylon 5,Sci-Fi\nx,Bad,Drama\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ratings.csv"),
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,4.3,1\n1,3,3.5\n2,3,5.0,2025-03-15T10:30:00\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Csv);
    let movies = movies_of(dir.path());
    assert_eq!(movies.len(), 3);
    assert_eq!(
        movies[0].title,
        "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    );
    assert_eq!(movies[0].year, Some(1995));
    assert_eq!(movies[1].title, "Who Said \"Boo\" (2001)");
    assert!(movies[1].genres.is_empty());
    assert_eq!(movies[2].year, None);
    let mut rows = Vec::new();
    let report = read_ratings(dir.path(), Layout::Csv, false, |_| {}, |r| rows.push(r)).unwrap();
    assert_eq!((report.rows, report.malformed), (2, 2));
    assert_eq!(report.first_malformed[0].line, 3);
    assert!(report.first_malformed[0].reason.contains("0.5"));
    assert_eq!(report.first_malformed[1].line, 4);
    assert!(
        report.first_malformed[1]
            .to_string()
            .contains("ratings.csv:4: expected 4 fields")
    );
    assert_eq!(rows[1].timestamp.to_iso8601(), "2025-03-15T10:30:00Z");
    let strict = read_ratings(dir.path(), Layout::Csv, true, |_| {}, |_| {}).unwrap_err();
    assert!(strict.to_string().contains("ratings.csv:3"), "{strict}");
    let strict = read_movies(dir.path(), Layout::Csv, true, |_| {}).unwrap_err();
    assert!(strict.to_string().contains("movies.csv:5"), "{strict}");
}

#[test]
fn dat_layout_in_latin_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut movies = b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Caf".to_vec();
    movies.extend_from_slice(&[0xE9]);
    movies.extend_from_slice(b" Society (1999)::Drama\n");
    std::fs::write(dir.path().join("movies.dat"), movies).unwrap();
    std::fs::write(
        dir.path().join("ratings.dat"),
        "1::1::5::978300760\n1::2::3::978302109\n2::1::bad::1\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Dat);
    let movies = movies_of(dir.path());
    assert_eq!(movies[1].title, "Café Society (1999)");
    assert_eq!(movies[0].genres, vec!["Animation", "Children's", "Comedy"]);
    let mut rows = Vec::new();
    let report = read_ratings(dir.path(), Layout::Dat, false, |_| {}, |r| rows.push(r)).unwrap();
    assert_eq!((report.rows, report.malformed), (2, 1));
    assert_eq!(rows[0].rating.value(), 5.0);
}

#[test]
fn ml100k_layout_with_genre_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut item =
        b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
            .to_vec();
    item.extend_from_slice(b"2|Se");
    item.extend_from_slice(&[0xF1]);
    item.extend_from_slice(b"or|01-Jan-1997||http://y|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n");
    std::fs::write(dir.path().join("u.item"), item).unwrap();
    std::fs::write(
        dir.path().join("u.data"),
        "196\t1\t3\t881250949\n186\t2\t3\t891717742\n",
    )
    .unwrap();
    assert_eq!(detect_layout(dir.path()).unwrap(), Layout::Ml100k);
    let movies = movies_of(dir.path());
    assert_eq!(movies[0].genres, vec!["Animation", "Children's", "Comedy"]);
    assert_eq!(movies[1].title, "Señor");
    assert_eq!(
        movies[1].year,
        Some(1997),
        "year from the release date when the title has none"
    );
    assert_eq!(movies[1].genres, vec!["Drama"]);
}

#[test]
fn unknown_folder_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let error = detect_layout(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("ratings.csv") && error.contains("u.data"),
        "{error}"
    );
}

fn movielens_root() -> std::path::PathBuf {
    let root = std::env::var_os("MOVIEREC_MOVIELENS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/movielens")
        });
    assert!(
        root.is_dir(),
        "set MOVIEREC_MOVIELENS_DIR to the folder holding ml-latest-small and ml-100k"
    );
    root
}

#[test]
fn real_movielens_counts() {
    for (name, ratings, movies) in [
        ("ml-latest-small", 100_836, 9_742),
        ("ml-100k", 100_000, 1_682),
    ] {
        let dir = movielens_root().join(name);
        let layout = detect_layout(&dir).unwrap();
        let report = read_ratings(&dir, layout, true, |_| {}, |_| {}).unwrap();
        assert_eq!(report.rows, ratings, "{name}");
        assert_eq!(movies_of(&dir).len(), movies, "{name}");
    }
}

/// A one-shot HTTP server: `routes` maps a path to (status, body, declared length).
fn serve(
    routes: Vec<(String, u16, Vec<u8>, Option<usize>)>,
) -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            served += 1;
            match routes.iter().find(|r| r.0 == path) {
                Some((_, status, body, length)) => {
                    let length = length.unwrap_or(body.len());
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
                None => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
            if path == "/stop" {
                break;
            }
        }
        served
    });
    (base, handle)
}

fn zip_bytes() -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut cursor);
    let options = zip::write::SimpleFileOptions::default();
    zip.add_directory("ml-latest-small/", options).unwrap();
    zip.start_file("ml-latest-small/ratings.csv", options)
        .unwrap();
    zip.write_all(b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
        .unwrap();
    zip.start_file("ml-latest-small/movies.csv", options)
        .unwrap();
    zip.write_all(b"movieId,title,genres\n1,Toy Story (1995),Comedy\n")
        .unwrap();
    zip.finish().unwrap();
    cursor.into_inner()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn download_checks_and_unzips() {
    let zip = zip_bytes();
    let digest = md5_hex(&zip);
    let (base, _server) = serve(vec![
        ("/ml.zip".into(), 200, zip.clone(), None),
        (
            "/ml.zip.md5".into(),
            200,
            format!("{digest}  ml.zip\n").into_bytes(),
            None,
        ),
        ("/bad.zip".into(), 200, zip.clone(), None),
        (
            "/bad.zip.md5".into(),
            200,
            b"00000000000000000000000000000000\n".to_vec(),
            None,
        ),
        (
            "/short.zip".into(),
            200,
            zip[..10].to_vec(),
            Some(zip.len()),
        ),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let opts = |path: &str| DownloadOptions {
        url: Some(format!("{base}{path}")),
        ..Default::default()
    };

    let error = download("ml-latest-small", dest.path(), &opts("/bad.zip"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("MD5 mismatch") && error.contains(&digest),
        "{error}"
    );
    assert!(
        !dest.path().join("ml-latest-small").exists(),
        "nothing extracted"
    );

    let error = download("ml-latest-small", dest.path(), &opts("/short.zip"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("/short.zip"), "{error}");

    let error = download("ml-latest-small", dest.path(), &opts("/missing.zip"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("/missing.zip") && error.contains("404"),
        "{error}"
    );

    let error = download("ml-2m", dest.path(), &opts("/ml.zip"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ml-latest-small") && error.contains("ml-32m"),
        "{error}"
    );

    let folder = download("ml-latest-small", dest.path(), &opts("/ml.zip")).unwrap();
    assert_eq!(folder, dest.path().join("ml-latest-small"));
    assert_eq!(movies_of(&folder)[0].title, "Toy Story (1995)");
    // Already there: reused without a request (the URL no longer answers).
    let again = DownloadOptions {
        url: Some("http://127.0.0.1:1/none.zip".into()),
        ..Default::default()
    };
    assert_eq!(
        download("ml-latest-small", dest.path(), &again).unwrap(),
        folder
    );
    let _ = ureq::get(format!("{base}/stop")).call();
}

#[test]
fn synth_is_deterministic_valid_and_skewed() {
    let params = SynthParams {
        ratings: 50_000,
        users: 500,
        movies: 1_000,
        seed: 7,
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate(&params, a.path(), false).unwrap();
    generate(&params, b.path(), false).unwrap();
    let ratings = std::fs::read(a.path().join("ratings.csv")).unwrap();
    assert_eq!(
        ratings,
        std::fs::read(b.path().join("ratings.csv")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.path().join("movies.csv")).unwrap(),
        std::fs::read(b.path().join("movies.csv")).unwrap()
    );
    let mut rows = Vec::new();
    let report = read_ratings(a.path(), Layout::Csv, true, |_| {}, |r| rows.push(r)).unwrap();
    assert_eq!(report.rows, 50_000);
    let keys: Vec<(u64, u64)> = rows.iter().map(|r| (r.user_id, r.movie_id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "sorted by user then movie, no duplicates"
    );
    let users: std::collections::HashSet<u64> = rows.iter().map(|r| r.user_id).collect();
    assert_eq!(users.len(), 500);
    let mut per_movie = vec![0u64; 1001];
    for r in &rows {
        per_movie[r.movie_id as usize] += 1;
    }
    per_movie.sort_unstable_by(|x, y| y.cmp(x));
    let top_share = per_movie[..10].iter().sum::<u64>() as f64 / 50_000.0;
    assert!(
        top_share > 0.05,
        "top 1% of movies get {top_share} of ratings (uniform: 0.01)"
    );
    let movies = movies_of(a.path());
    assert_eq!(movies.len(), 1000);
    assert!(movies.iter().all(|m| m.year.is_some()));
    assert!(movies.iter().any(|m| m.title.contains(',')));
    let error = generate(
        &SynthParams {
            ratings: 10,
            users: 20,
            movies: 5,
            seed: 1,
        },
        a.path(),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("--ratings"), "{error}");
}
