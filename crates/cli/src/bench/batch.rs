//! `movierec bench batch`: the seed's chapter 4 as a command. The batch
//! (`movierec batch run`: store + lake → silver/gold → serving database) runs
//! as a child process per engine, core count and share of the dataset,
//! several times each, pinned to its cores with `taskset`; wall time, peak
//! memory and CPU time come from the child's own resource usage (wait4).
//! The report: the seed's table (environment, configuration, time as median
//! and spread, speedup), scalability with the fitted time per million
//! ratings, an SVG bar chart, and the raw figures as JSON.

use super::{environment, fit_line, measure, median, standalone_chart};
use anyhow::{Context, Result, bail, ensure};
use movierec_datasets::movielens::detect_layout;
use serde::Serialize;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `movierec bench batch` was asked.
#[derive(Debug, Clone)]
pub struct BatchBench {
    pub dataset: PathBuf,
    pub engines: Vec<String>,
    /// Cores the embedded engine is pinned to, one configuration each.
    pub cores: Vec<usize>,
    /// Spark `local[N]` configurations (pinned to N cores).
    pub spark_cores: Vec<usize>,
    pub repeats: usize,
    /// Shares of the dataset (by ratings, in file order) for the scalability table.
    pub fractions: Vec<f64>,
    pub out: PathBuf,
    /// `batch.spark.*` of the caller's configuration (job path made absolute).
    pub spark: movierec_config::SparkConfig,
}

#[derive(Debug, Clone, Serialize)]
struct Measurement {
    engine: String,
    cores: usize,
    fraction: f64,
    ratings: u64,
    repeat: usize,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    engine: String,
    cores: usize,
    fraction: f64,
    ratings: u64,
    median_s: f64,
    min_s: f64,
    max_s: f64,
    peak_rss_mib: f64,
    /// CPU time / (wall time × cores): how busy the allowed cores were.
    cpu_utilisation: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Growth {
    engine: String,
    cores: usize,
    /// Least-squares slope of median time over ratings.
    seconds_per_million_ratings: f64,
    /// The fixed cost (intercept): start-up, JVM, reading the catalogue.
    fixed_s: f64,
}

/// A copy of a MovieLens folder whose ratings file keeps its first
/// `fraction` of data lines (whole users, as the files are grouped by user).
fn dataset_share(dataset: &Path, fraction: f64, to: &Path) -> Result<u64> {
    let layout = detect_layout(dataset)?;
    std::fs::create_dir_all(to)?;
    std::fs::copy(
        dataset.join(layout.movies_file()),
        to.join(layout.movies_file()),
    )
    .with_context(|| format!("cannot copy the movies of {}", dataset.display()))?;
    let ratings = dataset.join(layout.ratings_file());
    let count_lines = || -> Result<u64> {
        let reader = std::io::BufReader::new(std::fs::File::open(&ratings)?);
        Ok(reader.split(b'\n').count() as u64)
    };
    let header = u64::from(layout.ratings_file().ends_with(".csv"));
    let data_lines = count_lines()?.saturating_sub(header);
    let keep = ((data_lines as f64 * fraction).ceil() as u64).max(1);
    let reader = std::io::BufReader::new(std::fs::File::open(&ratings)?);
    let mut writer =
        std::io::BufWriter::new(std::fs::File::create(to.join(layout.ratings_file()))?);
    for line in reader.split(b'\n').take((keep + header) as usize) {
        writer.write_all(&line?)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(keep)
}

fn configuration_name(engine: &str, cores: usize) -> String {
    match engine {
        "spark" => format!(
            "Spark local[{cores}] ({cores} core{})",
            if cores == 1 { "" } else { "s" }
        ),
        _ => format!(
            "embedded, {cores} core{}",
            if cores == 1 { "" } else { "s" }
        ),
    }
}

pub fn run(bench: &BatchBench) -> Result<()> {
    ensure!(bench.repeats >= 1, "--repeats: expected at least 1");
    ensure!(
        !bench.fractions.is_empty(),
        "--fractions: expected at least one share"
    );
    for &f in &bench.fractions {
        ensure!(
            f > 0.0 && f <= 1.0,
            "--fractions: {f} is not a share of the dataset (0 < share ≤ 1)"
        );
    }
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut configurations = Vec::new();
    for engine in &bench.engines {
        let cores = match engine.as_str() {
            "embedded" => &bench.cores,
            "spark" => &bench.spark_cores,
            other => bail!("--engines: unknown engine `{other}`: expected embedded or spark"),
        };
        for &c in cores {
            ensure!(
                (1..=available).contains(&c),
                "{engine} on {c} cores: this machine has {available}"
            );
            configurations.push((engine.clone(), c));
        }
    }
    ensure!(
        !configurations.is_empty(),
        "nothing to run: no engine or no core count"
    );
    if bench.engines.iter().any(|e| e == "spark") {
        ensure!(
            bench.spark.job.is_file(),
            "the Spark job {} is not there: run from the movierec checkout, or set batch.spark.job",
            bench.spark.job.display()
        );
    }
    let spark_conf: String = bench
        .spark
        .conf
        .iter()
        .map(|(k, v)| format!("      {k:?}: {v:?}\n"))
        .collect();
    Command::new("taskset").arg("-V").output().context(
        "taskset (util-linux) is needed to pin runs to their cores: apt-get install util-linux",
    )?;
    let bin = std::env::current_exe().context("cannot find the movierec binary")?;
    let work = bench.out.join("bench-batch-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;

    // One imported store per share of the dataset, copied for every run.
    let mut shares = Vec::new();
    for &fraction in &bench.fractions {
        let dir = work.join(format!("share-{fraction}"));
        let ratings = dataset_share(&bench.dataset, fraction, &dir.join("dataset"))?;
        let config = dir.join("import.yaml");
        std::fs::write(
            &config,
            format!(
                "sqlite: {{ path: \"{}\" }}\nlake: {{ root: \"{}\" }}\nmodels: {{ enabled: false }}\n",
                dir.join("store.db").display(),
                dir.join("lake").display()
            ),
        )?;
        let status = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .args(["import", "movielens"])
            .arg(dir.join("dataset"))
            .env("MOVIEREC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .status()?;
        ensure!(
            status.success(),
            "importing {} failed",
            bench.dataset.display()
        );
        eprintln!("share {fraction}: {ratings} ratings imported");
        shares.push((fraction, ratings, dir));
    }

    let mut measurements = Vec::new();
    let total = configurations.len() * shares.len() * bench.repeats;
    let progress = indicatif::ProgressBar::new(total as u64);
    for repeat in 0..bench.repeats {
        // Configurations interleaved within each repeat: drift on a noisy
        // machine spreads over all of them.
        for (engine, cores) in &configurations {
            for (fraction, ratings, dir) in &shares {
                let run = work.join(format!("run-{engine}-{cores}-{fraction}-{repeat}"));
                std::fs::create_dir_all(&run)?;
                // The store is in WAL mode: its last writes may be in -wal.
                for file in ["store.db", "store.db-wal", "store.db-shm"] {
                    if dir.join(file).exists() {
                        std::fs::copy(dir.join(file), run.join(file))?;
                    }
                }
                let config = run.join("config.yaml");
                std::fs::write(
                    &config,
                    format!(
                        "sqlite: {{ path: \"{db}\" }}\nlake: {{ root: \"{lake}\" }}\n\
                         serving: {{ database_url: \"sqlite://{serving}\" }}\nmodels: {{ enabled: false }}\n\
                         batch:\n  engine: {engine}\n  spark:\n    master: \"local[{cores}]\"\n    \
                         submit: {submit:?}\n    job: {job:?}\n    conf:\n{conf}",
                        submit = bench.spark.submit,
                        job = bench.spark.job.display().to_string(),
                        conf = if spark_conf.is_empty() {
                            "      {}\n".to_string()
                        } else {
                            spark_conf.clone()
                        },
                        db = run.join("store.db").display(),
                        lake = run.join("lake").display(),
                        serving = run.join("serving.db").display(),
                    ),
                )?;
                let mut command = Command::new("taskset");
                command
                    .arg("-c")
                    .arg(format!("0-{}", cores - 1))
                    .arg(&bin)
                    .arg("--config")
                    .arg(&config)
                    .args(["batch", "run"])
                    .env("MOVIEREC_LOG", "warn")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::fs::File::create(run.join("stderr.log"))?);
                let (wall, cpu, rss, status) = measure(command)?;
                if !status.success() {
                    let log = std::fs::read_to_string(run.join("stderr.log")).unwrap_or_default();
                    bail!("{engine} on {cores} cores failed ({status}):\n{log}");
                }
                measurements.push(Measurement {
                    engine: engine.clone(),
                    cores: *cores,
                    fraction: *fraction,
                    ratings: *ratings,
                    repeat,
                    wall_s: wall,
                    cpu_s: cpu,
                    peak_rss_mib: rss,
                });
                if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
                    std::fs::remove_dir_all(&run).ok();
                }
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();

    let mut summaries = Vec::new();
    for (engine, cores) in &configurations {
        for (fraction, ratings, _) in &shares {
            let runs: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| &m.engine == engine && m.cores == *cores && m.fraction == *fraction)
                .collect();
            let walls: Vec<f64> = runs.iter().map(|m| m.wall_s).collect();
            let cpu = median(&runs.iter().map(|m| m.cpu_s).collect::<Vec<_>>());
            let med = median(&walls);
            summaries.push(Summary {
                engine: engine.clone(),
                cores: *cores,
                fraction: *fraction,
                ratings: *ratings,
                median_s: med,
                min_s: walls.iter().copied().fold(f64::INFINITY, f64::min),
                max_s: walls.iter().copied().fold(0.0, f64::max),
                peak_rss_mib: runs.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max),
                cpu_utilisation: cpu / (med * *cores as f64),
            });
        }
    }
    let growth: Vec<Growth> = configurations
        .iter()
        .map(|(engine, cores)| {
            let points: Vec<(f64, f64)> = summaries
                .iter()
                .filter(|s| &s.engine == engine && s.cores == *cores)
                .map(|s| (s.ratings as f64 / 1e6, s.median_s))
                .collect();
            let (fixed, slope) = fit_line(&points);
            Growth {
                engine: engine.clone(),
                cores: *cores,
                seconds_per_million_ratings: slope,
                fixed_s: fixed,
            }
        })
        .collect();
    write_report(bench, &summaries, &growth, &measurements)?;
    if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&work).ok();
    }
    Ok(())
}

fn write_report(
    bench: &BatchBench,
    summaries: &[Summary],
    growth: &[Growth],
    measurements: &[Measurement],
) -> Result<()> {
    let full = bench.fractions.iter().copied().fold(0.0, f64::max);
    let at_full: Vec<&Summary> = summaries.iter().filter(|s| s.fraction == full).collect();
    let baseline = at_full.first().map_or(1.0, |s| s.median_s);
    let environment = environment();
    let mut md = String::new();
    md.push_str(&format!(
        "# Batch benchmark\n\nDataset: `{}` ({} ratings at share {full}); {} run(s) per configuration; \
         `movierec batch run` (store + lake → silver/gold → serving database, models off), \
         each run pinned to its cores with taskset, from a fresh copy of the imported store.\n\n\
         Environment: {environment}\n\n",
        bench.dataset.display(),
        at_full.first().map_or(0, |s| s.ratings),
        bench.repeats,
    ));
    md.push_str("## Processing time\n\n| Environment | Configuration | Processing time (median, min–max) | Speedup | Peak memory | CPU utilisation |\n| --- | --- | --- | --- | --- | --- |\n");
    for s in &at_full {
        md.push_str(&format!(
            "| this machine | {} | {:.2} s ({:.2}–{:.2}) | {:.2}x | {:.0} MiB | {:.0}% |\n",
            configuration_name(&s.engine, s.cores),
            s.median_s,
            s.min_s,
            s.max_s,
            baseline / s.median_s,
            s.peak_rss_mib,
            100.0 * s.cpu_utilisation,
        ));
    }
    md.push_str("\nSpeedup: the first configuration's median over each one's. CPU utilisation: CPU time over wall time × the cores the run was pinned to. Peak memory: the largest single process of the run (for Spark, the JVM).\n\n![processing time](bench-batch.svg)\n\n## Scalability\n\n| Configuration | Share | Ratings | Median s | s per million ratings |\n| --- | --- | --- | --- | --- |\n");
    for s in summaries {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} |\n",
            configuration_name(&s.engine, s.cores),
            s.fraction,
            s.ratings,
            s.median_s,
            s.median_s / (s.ratings as f64 / 1e6)
        ));
    }
    md.push_str("\nFitted growth (least squares of median time over ratings):\n\n| Configuration | Seconds per million ratings | Fixed cost s |\n| --- | --- | --- |\n");
    for g in growth {
        md.push_str(&format!(
            "| {} | {:.3} | {:.2} |\n",
            configuration_name(&g.engine, g.cores),
            g.seconds_per_million_ratings,
            g.fixed_s
        ));
    }
    std::fs::create_dir_all(&bench.out)?;
    std::fs::write(bench.out.join("bench-batch.md"), &md)?;
    let bars: Vec<(String, u64)> = at_full
        .iter()
        .map(|s| {
            (
                configuration_name(&s.engine, s.cores),
                (s.median_s * 1000.0).round() as u64,
            )
        })
        .collect();
    let chart = standalone_chart(&bars, "median processing time, milliseconds");
    std::fs::write(bench.out.join("bench-batch.svg"), chart)?;
    std::fs::write(
        bench.out.join("bench-batch.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "environment": environment,
            "dataset": bench.dataset,
            "summaries": summaries,
            "growth": growth,
            "measurements": measurements,
        }))?,
    )?;
    println!("{md}");
    println!(
        "report: {} (and bench-batch.svg, bench-batch.json)",
        bench.out.join("bench-batch.md").display()
    );
    Ok(())
}
