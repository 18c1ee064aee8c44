//! `movierec bench serve`: the API's side of the seed's chapter 4. Latency
//! percentiles of chosen endpoints at given request rates, and the most
//! requests per second they answer.
//!
//! Without `--url`, `movierec serve` runs as a child on a free port with the
//! caller's configuration, and its CPU time and peak memory are read from
//! /proc around each run. Fixed rates are an open loop: request i is due at
//! i/rate whatever the answers' pace, and its latency counts from when it
//! was due, so a stalled server shows in the percentiles instead of slowing
//! the client down (the coordinated omission that closed-loop tools hide).
//! `max` runs `--connections` clients back to back.

use super::{Rate, environment, median, quantile, standalone_chart};
use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The load's HTTP client. It drops pooled connections idle for 5 s: the
/// server closes a keep-alive connection that has waited
/// `serving.header_timeout_s` for its next request (10 s by default; hyper's
/// header read timeout also times that wait), and a request written on a
/// connection just as the server closes it fails (2 of 600,000 in one soak).
pub(crate) fn load_client(connections: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
}

/// An endpoint to measure: a name for the report and a path, where
/// `{user}` becomes a user id drawn uniformly for each request.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub path: String,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let path = match text {
            "top" => "/api/recommendations/top?page_size=20",
            "user" => "/api/users/{user}/recommendations?k=10",
            "movies" => "/api/movies?page=1&page_size=20",
            "health" => "/health",
            path if path.starts_with('/') => path,
            other => {
                return Err(format!(
                    "`{other}` is neither top, user, movies, health nor a path starting with /"
                ));
            }
        };
        Ok(Self {
            name: text.to_string(),
            path: path.to_string(),
        })
    }
}

/// What `movierec bench serve` was asked.
#[derive(Debug, Clone)]
pub struct ServeBench {
    /// A running server; without it one is started from the configuration.
    pub url: Option<String>,
    pub targets: Vec<Target>,
    pub rates: Vec<Rate>,
    pub duration_s: f64,
    /// Requests due in this first stretch of each run are sent, not counted.
    pub warmup_s: f64,
    pub connections: usize,
    pub repeats: usize,
    /// User ids for `{user}`: 1..=users [default: the served user count].
    pub users: Option<u64>,
    pub seed: u64,
    pub out: PathBuf,
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    target: String,
    rate: String,
    repeat: usize,
    requests: usize,
    achieved_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    errors: usize,
    first_error: Option<String>,
    /// CPU seconds the server spent per second of the run (cores busy).
    server_cores: Option<f64>,
    server_peak_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    target: String,
    rate: String,
    runs: usize,
    achieved_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    errors: usize,
    server_cores: Option<f64>,
    server_peak_rss_mib: Option<f64>,
}

/// The child server, stopped whatever happens to the bench.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Server {
    /// CPU seconds (user + system) so far, from /proc/PID/stat.
    pub(super) fn cpu_s(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name, which may hold spaces, in ().
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks / per_s)
    }

    pub(super) fn peak_rss_mib(&self) -> Option<f64> {
        super::proc_status_mib(self.child.id(), "VmHWM:")
    }
}

fn start_server(bench: &ServeBench, work: &std::path::Path) -> Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = std::env::current_exe().context("cannot find the movierec binary")?;
    let log = work.join("serve.log");
    let mut command = Command::new(bin);
    if let Some(file) = &bench.config_file {
        command.arg("--config").arg(file);
    }
    let child = command
        .arg("serve")
        .env("MOVIEREC_SERVING__HOST", "127.0.0.1")
        .env("MOVIEREC_SERVING__PORT", port.to_string())
        .env("MOVIEREC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("serve.err.log"))?)
        .spawn()
        .context("cannot start `movierec serve`")?;
    Ok((
        Server {
            child,
            log: work.join("serve.err.log"),
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

pub(super) async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    server: Option<&mut Server>,
) -> Result<()> {
    // A server of our own may be loading models; one named by --url is up already.
    let patience = Duration::from_secs(if server.is_some() { 120 } else { 10 });
    let deadline = Instant::now() + patience;
    let mut server = server;
    loop {
        if let Ok(answer) = client.get(format!("{base}/health")).send().await
            && answer.status().is_success()
        {
            return Ok(());
        }
        if let Some(server) = server.as_deref_mut()
            && let Ok(Some(status)) = server.child.try_wait()
        {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            bail!("`movierec serve` exited ({status}) before answering /health:\n{log}");
        }
        ensure!(
            Instant::now() < deadline,
            "{base}/health did not answer 200 within {patience:?}: is the server running?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Users to draw `{user}` from: the flag, else the served count.
async fn user_count(bench: &ServeBench, client: &reqwest::Client, base: &str) -> Result<u64> {
    if let Some(users) = bench.users {
        ensure!(users >= 1, "--users: expected at least 1");
        return Ok(users);
    }
    let body = client
        .get(format!("{base}/api/stats"))
        .send()
        .await
        .and_then(|a| a.error_for_status())
        .with_context(|| format!("cannot read {base}/api/stats to count users (or pass --users)"))?
        .bytes()
        .await?;
    let stats: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{base}/api/stats did not answer JSON"))?;
    let users = stats["users"].as_u64().unwrap_or(0);
    ensure!(
        users >= 1,
        "{base} serves no users: run `movierec batch run` first (or pass --users)"
    );
    Ok(users)
}

#[derive(Default)]
pub(super) struct Tally {
    pub(super) latencies_ms: Vec<f64>,
    pub(super) errors: usize,
    pub(super) first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.latencies_ms.push(latency.as_secs_f64() * 1e3),
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// One request, read to its end: any status but 2xx is an error.
async fn request(client: &reqwest::Client, url: String) -> Result<(), String> {
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

/// A small deterministic generator for user ids (xorshift64*).
struct Draw(u64);

impl Draw {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        1 + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn url_for(base: &str, target: &Target, draw: &mut Draw, users: u64) -> String {
    if target.path.contains("{user}") {
        format!(
            "{base}{}",
            target.path.replace("{user}", &draw.next(users).to_string())
        )
    } else {
        format!("{base}{}", target.path)
    }
}

pub(super) async fn one_run(
    bench: &ServeBench,
    client: &reqwest::Client,
    base: &str,
    target: &Target,
    rate: Rate,
    users: u64,
    seed: u64,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = tokio::time::Instant::now();
    let counted_from = start + Duration::from_secs_f64(bench.warmup_s);
    let end = counted_from + Duration::from_secs_f64(bench.duration_s);
    match rate {
        Rate::PerSecond(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(bench.connections));
            let mut draw = Draw(seed | 1);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0u64.. {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due >= end {
                    break;
                }
                // Behind schedule (the server held every slot), the latency
                // counts from when the request was due. Ahead of it, from
                // when the timer woke: its overshoot (up to a millisecond or
                // so) is the client's, not the server's.
                let counted_start = if due > tokio::time::Instant::now() {
                    tokio::time::sleep_until(due).await;
                    tokio::time::Instant::now()
                } else {
                    due
                };
                // At most `connections` in flight; a request waiting for a
                // slot is late, and that wait counts.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (client, tally) = (client.clone(), tally.clone());
                let url = url_for(base, target, &mut draw, users);
                tasks.spawn(async move {
                    let outcome = request(&client, url).await;
                    drop(slot);
                    if due >= counted_from {
                        let latency = counted_start.elapsed();
                        tally.lock().expect("tally").record(latency, outcome);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        Rate::Max => {
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..bench.connections {
                let (client, tally) = (client.clone(), tally.clone());
                let (base, target) = (base.to_string(), target.clone());
                let mut draw =
                    Draw((seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                tasks.spawn(async move {
                    loop {
                        let sent = tokio::time::Instant::now();
                        if sent >= end {
                            break;
                        }
                        let outcome =
                            request(&client, url_for(&base, &target, &mut draw, users)).await;
                        if sent >= counted_from {
                            tally.lock().expect("tally").record(sent.elapsed(), outcome);
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    Arc::try_unwrap(tally)
        .map(|m| m.into_inner().expect("tally"))
        .unwrap_or_default()
}

pub async fn run(bench: &ServeBench) -> Result<()> {
    ensure!(bench.repeats >= 1, "--repeats: expected at least 1");
    ensure!(bench.connections >= 1, "--connections: expected at least 1");
    ensure!(
        bench.duration_s > 0.0 && bench.duration_s.is_finite(),
        "--duration: expected a positive number of seconds"
    );
    ensure!(
        bench.warmup_s >= 0.0 && bench.warmup_s.is_finite(),
        "--warmup: expected zero or more seconds"
    );
    ensure!(
        !bench.targets.is_empty(),
        "--targets: expected at least one"
    );
    ensure!(
        !bench.rates.is_empty(),
        "--rates: expected at least one rate"
    );
    let work = bench.out.join("bench-serve-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let client = load_client(bench.connections)?;
    let (mut server, base) = match &bench.url {
        Some(url) => (None, url.trim_end_matches('/').to_string()),
        None => {
            let (server, base) = start_server(bench, &work)?;
            (Some(server), base)
        }
    };
    wait_healthy(&client, &base, server.as_mut()).await?;
    let users = if bench.targets.iter().any(|t| t.path.contains("{user}")) {
        user_count(bench, &client, &base).await?
    } else {
        1
    };

    let mut runs = Vec::new();
    let progress = indicatif::ProgressBar::new(
        (bench.targets.len() * bench.rates.len() * bench.repeats) as u64,
    );
    for repeat in 0..bench.repeats {
        for target in &bench.targets {
            for &rate in &bench.rates {
                let cpu_before = server.as_ref().and_then(Server::cpu_s);
                let started = Instant::now();
                let seed = bench.seed ^ (repeat as u64).wrapping_mul(0x9e37_79b9);
                let tally = one_run(bench, &client, &base, target, rate, users, seed).await;
                let elapsed = started.elapsed().as_secs_f64();
                let server_cores = match (cpu_before, server.as_ref().and_then(Server::cpu_s)) {
                    (Some(before), Some(after)) => Some((after - before) / elapsed),
                    _ => None,
                };
                let mut latencies = tally.latencies_ms;
                latencies.sort_by(f64::total_cmp);
                runs.push(Run {
                    target: target.name.clone(),
                    rate: rate.to_string(),
                    repeat,
                    requests: latencies.len() + tally.errors,
                    achieved_per_s: latencies.len() as f64 / bench.duration_s,
                    p50_ms: quantile(&latencies, 0.5),
                    p90_ms: quantile(&latencies, 0.9),
                    p99_ms: quantile(&latencies, 0.99),
                    p999_ms: quantile(&latencies, 0.999),
                    max_ms: latencies.last().copied().unwrap_or(f64::NAN),
                    errors: tally.errors,
                    first_error: tally.first_error,
                    server_cores,
                    server_peak_rss_mib: server.as_ref().and_then(Server::peak_rss_mib),
                });
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    if let Some(server) = &mut server
        && let Ok(Some(status)) = server.child.try_wait()
    {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        bail!("`movierec serve` exited ({status}) during the bench:\n{log}");
    }
    drop(server);
    let summaries = summarise(bench, &runs);
    write_report(bench, &base, users, &summaries, &runs)?;
    if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&work).ok();
    }
    Ok(())
}

fn summarise(bench: &ServeBench, runs: &[Run]) -> Vec<Summary> {
    let mut summaries = Vec::new();
    for target in &bench.targets {
        for rate in &bench.rates {
            let rate = rate.to_string();
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.target == target.name && r.rate == rate)
                .collect();
            let pick = |f: fn(&Run) -> f64| median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
            let optional = |f: fn(&Run) -> Option<f64>| {
                let values: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                (!values.is_empty()).then(|| median(&values))
            };
            summaries.push(Summary {
                target: target.name.clone(),
                rate,
                runs: mine.len(),
                achieved_per_s: pick(|r| r.achieved_per_s),
                p50_ms: pick(|r| r.p50_ms),
                p90_ms: pick(|r| r.p90_ms),
                p99_ms: pick(|r| r.p99_ms),
                p999_ms: pick(|r| r.p999_ms),
                max_ms: mine.iter().map(|r| r.max_ms).fold(0.0, f64::max),
                errors: mine.iter().map(|r| r.errors).sum(),
                server_cores: optional(|r| r.server_cores),
                server_peak_rss_mib: mine
                    .iter()
                    .filter_map(|r| r.server_peak_rss_mib)
                    .reduce(f64::max),
            });
        }
    }
    summaries
}

fn write_report(
    bench: &ServeBench,
    base: &str,
    users: u64,
    summaries: &[Summary],
    runs: &[Run],
) -> Result<()> {
    let environment = environment();
    let server = if bench.url.is_some() {
        format!("the server at {base}")
    } else {
        "`movierec serve` started by the bench, on this machine".to_string()
    };
    let mut md = format!(
        "# Serving benchmark\n\n{server}; {} s per run after {} s of warm-up, {} connection(s), {} run(s) per target and rate; \
         `{{user}}` drawn uniformly from users 1–{users}. The load generator shares the machine with the server.\n\n\
         Environment: {environment}\n\n\
         Targets:\n\n",
        bench.duration_s, bench.warmup_s, bench.connections, bench.repeats,
    );
    for target in &bench.targets {
        md.push_str(&format!("- {}: `GET {}`\n", target.name, target.path));
    }
    md.push_str(
        "\n## Latency\n\n\
         | Target | Offered rate | Achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | Errors | Server cores busy | Server peak memory |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in summaries {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |\n",
            s.target,
            s.rate,
            s.achieved_per_s,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms,
            s.errors,
            s.server_cores
                .map_or_else(|| "–".into(), |c| format!("{c:.2}")),
            s.server_peak_rss_mib
                .map_or_else(|| "–".into(), |m| format!("{m:.0} MiB")),
        ));
    }
    md.push_str(
        "\nFixed rates are an open loop: each request is due on a schedule, and its latency counts from when it was due, \
         so a stall shows in the percentiles (when the client is on time, from when its timer woke: the timer's own \
         overshoot is not the server's). `max`: every connection sends its next request as soon as the last one is answered; \
         achieved req/s is then the throughput. Percentiles are medians over the runs; max and errors are over all runs. \
         Errors: answers other than 2xx, and transport failures.\n\n\
         ![p99 latency](bench-serve.svg)\n",
    );
    if let Some(error) = runs.iter().find_map(|r| r.first_error.as_ref()) {
        md.push_str(&format!("\nFirst error: `{error}`\n"));
    }
    std::fs::create_dir_all(&bench.out)?;
    std::fs::write(bench.out.join("bench-serve.md"), &md)?;
    let bars: Vec<(String, u64)> = summaries
        .iter()
        .map(|s| {
            (
                format!("{} at {}", s.target, s.rate),
                if s.p99_ms.is_finite() {
                    (s.p99_ms * 1000.0).round() as u64
                } else {
                    0
                },
            )
        })
        .collect();
    std::fs::write(
        bench.out.join("bench-serve.svg"),
        standalone_chart(
            &bars,
            "p99 latency, microseconds, by target and offered rate",
        ),
    )?;
    std::fs::write(
        bench.out.join("bench-serve.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "environment": environment,
            "server": base,
            "users": users,
            "duration_s": bench.duration_s,
            "warmup_s": bench.warmup_s,
            "connections": bench.connections,
            "summaries": summaries,
            "runs": runs,
        }))?,
    )?;
    println!("{md}");
    println!(
        "report: {} (and bench-serve.svg, bench-serve.json)",
        bench.out.join("bench-serve.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_name_or_path() {
        let top: Target = "top".parse().unwrap();
        assert_eq!(top.path, "/api/recommendations/top?page_size=20");
        let custom: Target = "/api/movies/{user}".parse().unwrap();
        assert_eq!(custom.path, "/api/movies/{user}");
        let error = "nowhere".parse::<Target>().unwrap_err();
        assert!(error.contains("nowhere"), "{error}");
    }

    #[test]
    fn user_draws_stay_in_range_and_cover_it() {
        let mut draw = Draw(42);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            let user = draw.next(50);
            assert!((1..=50).contains(&user), "{user}");
            seen.insert(user);
        }
        assert_eq!(seen.len(), 50);
    }
}
