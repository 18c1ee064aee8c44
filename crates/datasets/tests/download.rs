//! `download` against a local HTTP server (GroupLens is not reachable from
//! CI): the happy path, every check that must stop extraction, and reuse.

use md5::Digest;
use movierec_datasets::download::{DATASETS, DownloadOptions, download, info};
use movierec_datasets::movielens::{detect_layout, read_movies};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A response: status, body, and the Content-Length to announce (the body's
/// own length when `None`, to simulate truncation otherwise).
struct Route {
    path: &'static str,
    status: u16,
    body: Vec<u8>,
    announced: Option<usize>,
}

fn route(path: &'static str, body: impl Into<Vec<u8>>) -> Route {
    Route {
        path,
        status: 200,
        body: body.into(),
        announced: None,
    }
}

/// Serves `routes` (404 for anything else) on 127.0.0.1 from a thread that
/// lives as long as the test process, logging every requested path.
fn serve(routes: Vec<Route>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let server_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            server_log.lock().unwrap().push(path.clone());
            let (status, body, announced) = match routes.iter().find(|r| r.path == path) {
                Some(r) => (
                    r.status,
                    r.body.as_slice(),
                    r.announced.unwrap_or(r.body.len()),
                ),
                None => (404, &b"not found"[..], 9),
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    (base, log)
}

/// A MovieLens-like zip with `folder/` at its top, or custom entries.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut cursor);
    let options = zip::write::SimpleFileOptions::default();
    for (name, content) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
    }
    zip.finish().unwrap();
    cursor.into_inner()
}

const RATINGS_CSV: &[u8] = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n";
const MOVIES_CSV: &[u8] = b"movieId,title,genres\n1,\"Toy Story, The (1995)\",Comedy\n";

fn csv_zip(folder: &str) -> Vec<u8> {
    zip_of(&[
        (&format!("{folder}/"), b""),
        (&format!("{folder}/ratings.csv"), RATINGS_CSV),
        (&format!("{folder}/movies.csv"), MOVIES_CSV),
    ])
}

fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn options(url: String) -> DownloadOptions {
    DownloadOptions {
        url: Some(url),
        ..Default::default()
    }
}

fn first_title(dir: &Path) -> String {
    let mut titles = Vec::new();
    read_movies(dir, detect_layout(dir).unwrap(), true, |m| {
        titles.push(m.title)
    })
    .unwrap();
    titles.remove(0)
}

/// Only the dataset folders, never the partial zip or scratch folders.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn downloads_verifies_the_sidecar_md5_and_extracts() {
    let zip = csv_zip("ml-latest-small");
    let sidecar = format!("{}  ml-latest-small.zip\n", md5_hex(&zip));
    let (base, log) = serve(vec![route("/ml.zip", zip), route("/ml.zip.md5", sidecar)]);
    let dest = tempfile::tempdir().unwrap();
    let folder = download(
        "ml-latest-small",
        dest.path(),
        &options(format!("{base}/ml.zip")),
    )
    .unwrap();
    assert_eq!(folder, dest.path().join("ml-latest-small"));
    assert_eq!(first_title(&folder), "Toy Story, The (1995)");
    assert_eq!(
        std::fs::read(folder.join("ratings.csv")).unwrap(),
        RATINGS_CSV
    );
    assert_eq!(entries(dest.path()), ["ml-latest-small"]);
    assert_eq!(*log.lock().unwrap(), ["/ml.zip.md5", "/ml.zip"]);

    // Already there: reused without a single request.
    let again = download(
        "ml-latest-small",
        dest.path(),
        &options(format!("{base}/ml.zip")),
    )
    .unwrap();
    assert_eq!(again, folder);
    assert_eq!(log.lock().unwrap().len(), 2);

    // --force downloads again and replaces the folder.
    std::fs::write(folder.join("stale.txt"), "old").unwrap();
    let forced = DownloadOptions {
        force: true,
        ..options(format!("{base}/ml.zip"))
    };
    download("ml-latest-small", dest.path(), &forced).unwrap();
    assert_eq!(log.lock().unwrap().len(), 4);
    assert!(!folder.join("stale.txt").exists());
    assert!(folder.join("ratings.csv").is_file());
}

#[test]
fn renames_the_zip_folder_to_the_dataset_name() {
    let dat = zip_of(&[
        ("ml-10M100K/ratings.dat", b"1::122::5::838985046\n"),
        (
            "ml-10M100K/movies.dat",
            "1::Amélie (2001)::Comedy\n".as_bytes(),
        ),
    ]);
    let mirror = csv_zip("some-other-name");
    let (base, log) = serve(vec![
        route("/ml-10m.zip", dat),
        route("/mirror.zip", mirror),
    ]);
    let dest = tempfile::tempdir().unwrap();
    // No sidecar (404): a warning, not an error.
    let folder = download(
        "ml-10m",
        dest.path(),
        &options(format!("{base}/ml-10m.zip")),
    )
    .unwrap();
    assert_eq!(folder, dest.path().join("ml-10m"));
    assert_eq!(first_title(&folder), "Amélie (2001)");
    assert_eq!(*log.lock().unwrap(), ["/ml-10m.zip.md5", "/ml-10m.zip"]);

    // A single top folder of another name is still the dataset.
    let folder = download(
        "ml-25m",
        dest.path(),
        &options(format!("{base}/mirror.zip")),
    )
    .unwrap();
    assert_eq!(folder, dest.path().join("ml-25m"));
    assert!(folder.join("movies.csv").is_file());
    assert_eq!(entries(dest.path()), ["ml-10m", "ml-25m"]);
}

#[test]
fn md5_mismatch_extracts_nothing() {
    let zip = csv_zip("ml-latest-small");
    let good = md5_hex(&zip);
    let (base, log) = serve(vec![
        route("/bad.zip", zip.clone()),
        route("/bad.zip.md5", "00000000000000000000000000000000\n"),
        route("/good.zip", zip),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let error = download(
        "ml-latest-small",
        dest.path(),
        &options(format!("{base}/bad.zip")),
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "MD5 mismatch",
        &good,
        "00000000000000000000000000000000",
        "/bad.zip",
    ] {
        assert!(error.contains(needle), "`{error}` lacks `{needle}`");
    }
    assert!(
        entries(dest.path()).is_empty(),
        "{:?}",
        entries(dest.path())
    );

    // A given digest wins over the sidecar, and no sidecar is fetched.
    let given = DownloadOptions {
        md5: Some(good.to_uppercase()),
        ..options(format!("{base}/bad.zip"))
    };
    let requests = log.lock().unwrap().len();
    download("ml-latest-small", dest.path(), &given).unwrap();
    assert_eq!(log.lock().unwrap()[requests..], ["/bad.zip"]);

    let wrong = DownloadOptions {
        md5: Some("0123456789abcdef0123456789abcdef".into()),
        force: true,
        ..options(format!("{base}/good.zip"))
    };
    let error = download("ml-latest-small", dest.path(), &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("0123456789abcdef0123456789abcdef"),
        "{error}"
    );
    let not_hex = DownloadOptions {
        md5: Some("abc".into()),
        force: true,
        ..options(format!("{base}/good.zip"))
    };
    let error = download("ml-latest-small", dest.path(), &not_hex)
        .unwrap_err()
        .to_string();
    assert!(error.contains("32 hex digits"), "{error}");
}

#[test]
fn truncated_missing_and_bogus_downloads_fail_with_the_url() {
    let zip = csv_zip("ml-latest-small");
    let (base, _log) = serve(vec![
        Route {
            path: "/short.zip",
            status: 200,
            body: zip[..zip.len() / 2].to_vec(),
            announced: Some(zip.len()),
        },
        route("/html.zip", "<html>maintenance</html>"),
        Route {
            path: "/broken.zip.md5",
            status: 500,
            body: b"oops".to_vec(),
            announced: None,
        },
        route(
            "/empty.zip",
            zip_of(&[("ml-latest-small/README.txt", b"no data")]),
        ),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let fail = |path: &str| {
        download(
            "ml-latest-small",
            dest.path(),
            &options(format!("{base}{path}")),
        )
        .unwrap_err()
        .to_string()
    };

    let error = fail("/short.zip");
    assert!(error.contains(&format!("{base}/short.zip")), "{error}");
    assert!(error.contains(&zip.len().to_string()), "{error}");

    let error = fail("/missing.zip");
    assert!(
        error.contains(&format!("{base}/missing.zip")) && error.contains("404"),
        "{error}"
    );

    let error = fail("/broken.zip");
    assert!(
        error.contains(&format!("{base}/broken.zip.md5 answered HTTP 500")),
        "{error}"
    );

    let error = fail("/html.zip");
    assert!(
        error.contains(&format!("{base}/html.zip: the download is not a valid zip")),
        "{error}"
    );

    let error = fail("/empty.zip");
    assert!(error.contains("no MovieLens ratings file"), "{error}");

    assert!(
        entries(dest.path()).is_empty(),
        "{:?}",
        entries(dest.path())
    );

    let error = download(
        "ml-latest-small",
        dest.path(),
        &options("http://127.0.0.1:1/x.zip".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("http://127.0.0.1:1/x.zip"), "{error}");
}

#[test]
fn zip_entries_escaping_the_destination_are_refused() {
    let evil = zip_of(&[
        ("ml-latest-small/ratings.csv", RATINGS_CSV),
        ("../escaped.txt", b"gotcha"),
    ]);
    let (base, _log) = serve(vec![route("/evil.zip", evil)]);
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    let error = download(
        "ml-latest-small",
        &dest,
        &options(format!("{base}/evil.zip")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("escapes the destination") && error.contains("/evil.zip"),
        "{error}"
    );
    assert!(!root.path().join("escaped.txt").exists());
    assert!(entries(&dest).is_empty(), "{:?}", entries(&dest));
}

#[test]
fn knows_the_grouplens_datasets() {
    let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "ml-latest-small",
            "ml-100k",
            "ml-1m",
            "ml-10m",
            "ml-25m",
            "ml-32m"
        ]
    );
    assert_eq!(
        info("ml-25m").unwrap().url(),
        "https://files.grouplens.org/datasets/movielens/ml-25m.zip"
    );
    assert_eq!(info("ml-10m").unwrap().folder, "ml-10M100K");
    let error = download(
        "ml-2m",
        Path::new("/nonexistent"),
        &DownloadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    for name in names {
        assert!(error.contains(name), "`{error}` lacks `{name}`");
    }
    assert!(error.contains("ml-2m"), "{error}");
}
