//! `movierec bench`: the seed's performance chapter as commands, each
//! writing a report (Markdown, SVG chart, JSON) under `--out`:
//! [`batch`] (the lakehouse batch per engine and core count), [`ingest`]
//! (the Kafka consumer's events/s and lag), [`serve`] (the API's latency
//! percentiles at given request rates) and [`soak`] (both at once for a long
//! stretch: memory, errors, lag).

pub mod batch;
pub mod ingest;
pub mod serve;
pub mod soak;

use anyhow::{Context, Result, ensure};
use std::process::Command;
use std::time::Instant;

/// How fast work is offered: events to the consumer, requests to the API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as it goes: the consumer drains a backlog produced first; the
    /// API gets `--connections` clients sending back to back.
    Max,
    /// Per second, on a fixed schedule whatever the answers' pace.
    PerSecond(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        match text.parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Self::PerSecond(rate)),
            _ => Err(format!(
                "`{text}` is neither `max` nor a positive number per second"
            )),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Max => f.write_str("max"),
            Self::PerSecond(rate) => write!(f, "{rate}/s"),
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Least squares y = a + b·x: (a, b). One point: no slope (b = y/x).
pub fn fit_line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return points.first().map_or((0.0, 0.0), |&(x, y)| {
            (0.0, if x > 0.0 { y / x } else { 0.0 })
        });
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (mean_y - b * mean_x, b)
}

/// The value at quantile `q` (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs a child to its end and returns (wall s, CPU s, peak RSS MiB) from
/// its own resource usage (it and the descendants it waited for: for Spark,
/// the JVM).
pub fn measure(mut command: Command) -> Result<(f64, f64, f64, std::process::ExitStatus)> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers; std's Child is
    // not waited on afterwards (it is forgotten), so the pid is reaped once.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    ensure!(
        waited == pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let wall = start.elapsed().as_secs_f64();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    let rss_mib = usage.ru_maxrss as f64 / 1024.0;
    Ok((
        wall,
        cpu,
        rss_mib,
        std::process::ExitStatus::from_raw(status),
    ))
}

pub fn environment() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(|| "?".into(), |kib| format!("{:.0}", kib / 1024.0 / 1024.0));
    format!("{cpu}, {cores} cores, {memory_gib} GiB RAM")
}

/// The server's bar chart, made standalone (the web page's stylesheet is
/// not there), described for screen readers.
pub fn standalone_chart(bars: &[(String, u64)], description: &str) -> String {
    movierec_server::charts::hbars(bars, "no runs").replacen(
        "xmlns=\"http://www.w3.org/2000/svg\">",
        &format!(
            "xmlns=\"http://www.w3.org/2000/svg\"><style>rect{{fill:#3b6ea8}}text{{font:9px sans-serif;fill:#222}}</style>\
             <desc>{description}</desc>"
        ),
        1,
    )
}

/// A memory figure of a process from /proc/PID/status (`VmRSS:` now,
/// `VmHWM:` the peak), in MiB.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_errors_that_name_the_value() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("2000".parse::<Rate>(), Ok(Rate::PerSecond(2000.0)));
        assert_eq!(Rate::PerSecond(2000.0).to_string(), "2000/s");
        for bad in ["0", "-5", "fast", "inf"] {
            let error = bad.parse::<Rate>().unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), 50.0);
        assert_eq!(quantile(&sorted, 0.99), 99.0);
        assert_eq!(quantile(&sorted, 0.999), 100.0);
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn medians_and_fits() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        // y = 2 + 3x exactly.
        let (a, b) = fit_line(&[(1.0, 5.0), (2.0, 8.0), (4.0, 14.0)]);
        assert!(
            (a - 2.0).abs() < 1e-12 && (b - 3.0).abs() < 1e-12,
            "{a} {b}"
        );
        assert_eq!(fit_line(&[(2.0, 4.0)]), (0.0, 2.0));
    }
}
