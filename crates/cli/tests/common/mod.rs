#![allow(dead_code)]

pub mod broker;
pub mod streams;
pub mod warehouse;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The MovieLens copies the tests read (never committed): MOVIEREC_MOVIELENS_DIR,
/// by default `../shared/data/movielens` beside the repository.
pub fn movielens(name: &str) -> PathBuf {
    let root = std::env::var_os("MOVIEREC_MOVIELENS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/movielens")
        });
    let dir = root.join(name);
    assert!(
        dir.is_dir(),
        "MovieLens {name} not found at {}: set MOVIEREC_MOVIELENS_DIR to a folder holding ml-latest-small and \
         ml-100k (`movierec data download ml-latest-small --dir DIR` fetches them)",
        dir.display()
    );
    dir
}

/// A `movierec` command run in `dir`, with no MOVIEREC_* variables leaking in.
pub fn movierec(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_movierec"));
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("MOVIEREC_") {
            command.env_remove(name);
        }
    }
    command.env("MOVIEREC_LOG", "warn");
    // Training the personalized models adds seconds to every batch; only the
    // tests about them turn them on (MOVIEREC_MODELS__ENABLED=true).
    command.env("MOVIEREC_MODELS__ENABLED", "false");
    // The streaming tests post anonymous ratings as producers do; the web
    // tests turn the token requirement back on (the default).
    command.env("MOVIEREC_SERVING__OPEN_RATING_API", "true");
    command
}

pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("run movierec");
    assert!(
        output.status.success(),
        "{command:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The JSON summary a command prints as its last line of stdout.
pub fn summary_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An independent Bayesian top-N, written the plain way: latest rating per
/// (user, movie), per-movie mean R and count v, C = mean of R over movies in
/// id order, score = v/(v+m)·R + m/(v+m)·C, v ≥ m, score desc then id asc.
pub fn reference_top(ratings: &[(u64, u64, f64, i64)], m: u64, n: usize) -> Vec<(u64, f64)> {
    use std::collections::{BTreeMap, HashMap};
    let mut latest: HashMap<(u64, u64), (i64, usize, f64)> = HashMap::new();
    for (line, &(user, movie, rating, ts)) in ratings.iter().enumerate() {
        let entry = latest.entry((user, movie)).or_insert((ts, line, rating));
        if (ts, line) >= (entry.0, entry.1) {
            *entry = (ts, line, rating);
        }
    }
    let mut per_movie: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for (&(_, movie), &(_, _, rating)) in &latest {
        let e = per_movie.entry(movie).or_insert((0.0, 0));
        e.0 += rating;
        e.1 += 1;
    }
    let means: Vec<(u64, f64, u64)> = per_movie
        .iter()
        .map(|(&id, &(sum, v))| (id, sum / v as f64, v))
        .collect();
    let c = means.iter().map(|(_, r, _)| r).sum::<f64>() / means.len() as f64;
    let mf = m as f64;
    let mut scored: Vec<(u64, f64)> = means
        .iter()
        .filter(|(_, _, v)| *v >= m)
        .map(|&(id, r, v)| {
            let v = v as f64;
            (id, (v / (v + mf)) * r + (mf / (v + mf)) * c)
        })
        .collect();
    scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    scored.truncate(n);
    scored
}

/// Ratings of a MovieLens folder, read the plain way (ratings.csv or u.data).
pub fn read_ratings(dir: &Path) -> Vec<(u64, u64, f64, i64)> {
    let (file, sep, skip) = if dir.join("ratings.csv").exists() {
        (dir.join("ratings.csv"), ',', 1)
    } else {
        (dir.join("u.data"), '\t', 0)
    };
    std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .skip(skip)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(sep).collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// The published list, read straight from the serving SQLite file.
pub fn published_top(db: &Path) -> Vec<(u64, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("SELECT movie_id_ref, recommendation_score FROM app_recommendationdata ORDER BY list_position")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u64, r.get::<f64, _>(1)))
            .collect()
    })
}

pub fn assert_same_top(got: &[(u64, f64)], expected: &[(u64, f64)]) {
    assert_eq!(got.len(), expected.len(), "list length");
    for (rank, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.0, e.0, "movie at rank {}", rank + 1);
        assert!(
            (g.1 - e.1).abs() <= 1e-9,
            "score at rank {}: {} vs {}",
            rank + 1,
            g.1,
            e.1
        );
    }
}

/// A temporary working folder with a config pointing into it.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A `movierec` server process on a free port, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `movierec ARGS` in `work` and waits for `/health` to answer.
pub fn start(work: &Path, args: &[&str], envs: &[(&str, String)]) -> Server {
    let port = free_port();
    let mut command = movierec(work);
    command
        .args(args)
        .env("MOVIEREC_SERVING__PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if ureq::get(format!("{}/health", server.base)).call().is_ok()
            || ureq::get(format!("{}/api/stats", server.base))
                .call()
                .is_ok()
        {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("server did not answer within 120 s");
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn read_json(mut response: ureq::http::Response<ureq::Body>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

pub fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    read_json(agent().get(format!("{base}{path}")).call().unwrap())
}

pub fn post(base: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    read_json(
        agent()
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .send(body)
            .unwrap(),
    )
}

/// Sends SIGTERM and asserts a clean exit (status 0) within `seconds`.
pub fn stop_with_sigterm(server: &mut Server, seconds: u64) {
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop within {seconds} s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`, …) to a process.
pub fn signal(pid: u32, name: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap()
            .success(),
        "kill -{name} {pid} failed"
    );
}

/// A moto server of a test's own (S3, DynamoDB, IAM), on a free port: for
/// tests that pause it or make it enforce IAM, which must touch no other test.
pub struct Moto {
    pub child: std::process::Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // A paused server must be resumed to die.
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `moto_server` with `envs` and waits until it answers.
pub fn spawn_moto(envs: &[(&str, String)]) -> Moto {
    spawn_moto_at(free_port(), envs)
}

/// [`spawn_moto`] on a given port: a restarted server takes its
/// predecessor's, so its clients find it where they were configured to.
pub fn spawn_moto_at(port: u16, envs: &[(&str, String)]) -> Moto {
    let mut command = std::process::Command::new("moto_server");
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot start moto_server ({e}): pip install 'moto[server]==5.2.5' (scripts/test.sh does)")
    });
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ureq::get(format!("{}/moto-api/", moto.endpoint))
        .call()
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    moto
}
