//! `movierec eval`: the models of `models:` and the baselines, trained and
//! measured on a split of a MovieLens-format dataset (docs/EVALUATION.md).
//!
//! `--engine spark` trains ALS with Spark MLlib instead (jobs/spark/als.py
//! through spark-submit, `batch.spark.*`), on the same folds written to CSV,
//! and reports it as `als (spark)` beside the embedded rows; `--engine
//! embedded,spark` runs both. `--rating-only` leaves out the top-K metrics
//! (ranking the whole catalogue for every test user is what costs most on
//! large sets) and reports each ALS iteration's seconds.

use anyhow::{Context, Result, bail};
use movierec_config::{ModelsConfig, SparkConfig};
use movierec_core::als::{self, AlsParams, AlsSolver};
use movierec_core::baseline::{self, BiasModel};
use movierec_core::bpmf::{self, BpmfParams};
use movierec_core::eval::{Fold, Interaction, Split, rating_errors, split};
use movierec_core::experiment::{ModelReport, ModelSpec, evaluate_fold, mean_report};
use movierec_core::ials::IalsParams;
use movierec_datasets::movielens::{self, Layout};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a model is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// In this process (every model).
    Embedded,
    /// Spark MLlib through spark-submit (ALS only).
    Spark,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Spark => "spark",
        }
    }
}

/// `cholesky`, `cg` (3 steps) or `cg:STEPS`: how ALS solves each row.
pub fn parse_solver(text: &str) -> Result<AlsSolver, String> {
    match text.split_once(':') {
        None if text == "cholesky" => Ok(AlsSolver::Cholesky),
        None if text == "cg" => Ok(AlsSolver::ConjugateGradient { steps: 3 }),
        Some(("cg", steps)) => match steps.parse::<usize>() {
            Ok(steps) if steps >= 1 => Ok(AlsSolver::ConjugateGradient { steps }),
            _ => Err(format!(
                "`{text}`: the CG steps must be a whole number of at least 1"
            )),
        },
        _ => Err(format!(
            "unknown ALS solver `{text}`; expected cholesky, cg or cg:STEPS"
        )),
    }
}

pub struct EvalRequest {
    pub dataset: PathBuf,
    pub split: Split,
    pub k: usize,
    /// Personalized models to run beside the baselines.
    pub models: Vec<String>,
    /// Where the personalized models train (the baselines always run here).
    pub engines: Vec<Engine>,
    /// Rating error only: no top-K metrics (and no popularity baseline).
    pub rating_only: bool,
    /// The embedded ALS's solver (None: the library's default).
    pub als_solver: Option<AlsSolver>,
    /// spark-submit, master and `--conf`s for `--engine spark`.
    pub spark: SparkConfig,
    /// Spark: fit once with 1 iteration first, for the marginal cost of one.
    pub spark_warmup: bool,
}

#[derive(Debug, Serialize)]
pub struct EvalResult {
    pub dataset: String,
    pub split: String,
    pub k: usize,
    pub ratings: usize,
    /// Each fold's reports (one fold unless the split has several).
    pub folds: Vec<Vec<ModelReport>>,
    /// Each model's mean over the folds.
    pub mean: Vec<ModelReport>,
    /// How long the iterative models' training took, per fold.
    pub training: Vec<TrainingReport>,
}

/// The training time of an iterative model on one fold.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingReport {
    /// The row's name in `mean` (`als`, `als (spark)`, …).
    pub model: String,
    pub engine: Engine,
    /// 1-based.
    pub fold: usize,
    pub iterations: usize,
    /// The whole fit: indexing the ratings (Spark: partitioning them into
    /// blocks) and every iteration; not reading the files.
    pub fit_seconds: f64,
    /// fit_seconds / iterations.
    pub seconds_per_iteration: f64,
    /// Each iteration's wall seconds, where known (embedded ALS with
    /// `--rating-only`).
    pub iteration_seconds: Option<Vec<f64>>,
    pub median_iteration_seconds: Option<f64>,
    /// Spark with the warm-up fit: (fit − 1-iteration fit) / (iterations − 1).
    pub marginal_seconds_per_iteration: Option<f64>,
    /// The Spark job's own result (jobs/spark/als.py).
    pub spark: Option<serde_json::Value>,
}

pub const MODEL_NAMES: [&str; 3] = ["als", "bpmf", "ials"];

pub fn model_specs(names: &[String], config: &ModelsConfig) -> Result<Vec<ModelSpec>> {
    let mut specs = vec![
        ModelSpec::GlobalMean,
        ModelSpec::Biases,
        ModelSpec::Popularity,
    ];
    for name in names {
        specs.push(match name.as_str() {
            "als" => ModelSpec::Als(als_params(config)),
            "bpmf" => ModelSpec::Bpmf(bpmf_params(config)),
            "ials" => ModelSpec::Ials(ials_params(config)),
            other => bail!(
                "unknown model `{other}`; expected one of {} (the baselines always run)",
                MODEL_NAMES.join(", ")
            ),
        });
    }
    Ok(specs)
}

pub fn als_params(config: &ModelsConfig) -> AlsParams {
    let c = &config.als;
    AlsParams {
        rank: c.rank,
        iterations: c.iterations,
        lambda: c.lambda,
        bias_lambda: c.lambda,
        seed: c.seed,
        ..AlsParams::default()
    }
}

pub fn bpmf_params(config: &ModelsConfig) -> BpmfParams {
    let c = &config.bpmf;
    BpmfParams {
        rank: c.rank,
        burn_in: c.burn_in,
        samples: c.samples,
        thin: c.thin,
        seed: c.seed,
        ..BpmfParams::default()
    }
}

pub fn ials_params(config: &ModelsConfig) -> IalsParams {
    let c = &config.ranking;
    IalsParams {
        factors: c.rank,
        iterations: c.iterations,
        regularization: c.lambda,
        alpha: c.alpha,
        seed: c.seed,
        ..IalsParams::default()
    }
}

fn read_file(path: &Path, layout: Layout, into: &mut Vec<Interaction>) -> Result<()> {
    let report = movielens::read_ratings_file(
        path,
        layout,
        false,
        |_| {},
        |row| {
            into.push(Interaction {
                user: row.user_id,
                item: row.movie_id,
                rating: row.rating.value(),
                time: row.timestamp.millis() / 1000,
            })
        },
    )
    .with_context(|| format!("cannot read ratings from {}", path.display()))?;
    if report.malformed > 0 {
        tracing::warn!(
            "{}: skipped {} malformed lines, the first: {}",
            path.display(),
            report.malformed,
            report.first_malformed[0]
        );
    }
    Ok(())
}

/// The folds the split asks for: ML-100K's five from its files, or one cut
/// from the whole ratings file.
fn folds(dataset: &Path, split_spec: Split) -> Result<(Vec<Fold>, usize)> {
    let layout = movielens::detect_layout(dataset)?;
    if split_spec == Split::Ml100kFolds {
        if layout != Layout::Ml100k {
            bail!(
                "split ml100k-folds needs MovieLens-100K's fold files u1.base … u5.test; {} is not an ml-100k folder (no u.data)",
                dataset.display()
            );
        }
        let mut folds = Vec::new();
        let mut ratings = 0;
        for n in 1..=5 {
            let mut fold = Fold::default();
            for (name, into) in [
                (format!("u{n}.base"), &mut fold.train),
                (format!("u{n}.test"), &mut fold.test),
            ] {
                let path = dataset.join(&name);
                if !path.is_file() {
                    bail!(
                        "split ml100k-folds: {} is missing (the ml-100k download has u1.base … u5.test)",
                        path.display()
                    );
                }
                read_file(&path, layout, into)?;
            }
            ratings = ratings.max(fold.train.len() + fold.test.len());
            folds.push(fold);
        }
        return Ok((folds, ratings));
    }
    let mut log = Vec::new();
    read_file(&dataset.join(layout.ratings_file()), layout, &mut log)?;
    if log.is_empty() {
        bail!("{} has no ratings to evaluate on", dataset.display());
    }
    let n = log.len();
    let fold = split(&log, split_spec).expect("a split computed from the data");
    Ok((vec![fold], n))
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Checks the request and returns the embedded specs to run.
fn plan(request: &EvalRequest, config: &ModelsConfig) -> Result<Vec<ModelSpec>> {
    if request.k == 0 {
        bail!("--k must be at least 1");
    }
    if request.engines.is_empty() {
        bail!("--engine needs at least one of embedded, spark");
    }
    let spark = request.engines.contains(&Engine::Spark);
    let embedded = request.engines.contains(&Engine::Embedded);
    // Unknown names fail first, whatever the engine.
    let all = model_specs(&request.models, config)?;
    if spark {
        if !request.models.iter().any(|m| m == "als") {
            bail!("--engine spark trains als: add it to --models (--models als)");
        }
        if let (false, Some(other)) = (embedded, request.models.iter().find(|m| *m != "als")) {
            bail!(
                "--engine spark trains als only (Spark MLlib has no `{other}`): use --models als, \
                 or --engine embedded,spark to run {other} embedded"
            );
        }
    }
    let mut specs = if embedded {
        all
    } else {
        model_specs(&[], config)?
    };
    for spec in &mut specs {
        if let (ModelSpec::Als(params), Some(solver)) = (spec, request.als_solver) {
            params.solver = solver;
        }
    }
    if request.rating_only {
        if specs.iter().any(|s| matches!(s, ModelSpec::Ials(_))) {
            bail!(
                "--rating-only measures rating error, and ials is a ranking model (it predicts no \
                 ratings): drop it from --models, or leave out --rating-only"
            );
        }
        specs.retain(|s| *s != ModelSpec::Popularity);
    }
    Ok(specs)
}

pub fn run(request: &EvalRequest, config: &ModelsConfig) -> Result<EvalResult> {
    let specs = plan(request, config)?;
    let (folds, ratings) = folds(&request.dataset, request.split)?;
    let mut per_fold = Vec::new();
    let mut training = Vec::new();
    for (n, fold) in folds.iter().enumerate() {
        tracing::info!(
            "fold {}/{}: {} training and {} test ratings",
            n + 1,
            folds.len(),
            fold.train.len(),
            fold.test.len()
        );
        let mut reports = if request.rating_only {
            let (reports, trained) = evaluate_ratings(fold, &specs, n + 1);
            training.extend(trained);
            reports
        } else {
            let reports = evaluate_fold(fold, &specs, request.k);
            for (spec, report) in specs.iter().zip(&reports) {
                if let ModelSpec::Als(params) = spec {
                    training.push(fit_report(report, params.iterations, n + 1, None));
                }
            }
            reports
        };
        if request.engines.contains(&Engine::Spark) {
            let params = als_params(config);
            let (report, trained) = spark_als(request, fold, &params, n + 1)?;
            reports.push(report);
            training.push(trained);
        }
        per_fold.push(reports);
    }
    let mean = (0..per_fold[0].len())
        .map(|m| {
            let reports: Vec<ModelReport> = per_fold.iter().map(|f| f[m].clone()).collect();
            mean_report(&reports)
        })
        .collect();
    Ok(EvalResult {
        dataset: request.dataset.display().to_string(),
        split: request.split.to_string(),
        k: request.k,
        ratings,
        folds: per_fold,
        mean,
        training,
    })
}

fn fit_report(
    report: &ModelReport,
    iterations: usize,
    fold: usize,
    iteration_seconds: Option<Vec<f64>>,
) -> TrainingReport {
    TrainingReport {
        model: report.model.clone(),
        engine: Engine::Embedded,
        fold,
        iterations,
        fit_seconds: report.train_seconds,
        seconds_per_iteration: report.train_seconds / iterations.max(1) as f64,
        median_iteration_seconds: iteration_seconds.as_deref().and_then(median),
        iteration_seconds,
        marginal_seconds_per_iteration: None,
        spark: None,
    }
}

/// Rating error of every spec on one fold, without the top-K metrics; the
/// ALS rows also get their per-iteration times.
fn evaluate_ratings(
    fold: &Fold,
    specs: &[ModelSpec],
    fold_number: usize,
) -> (Vec<ModelReport>, Vec<TrainingReport>) {
    let train: Vec<(u64, u64, f64)> = fold
        .train
        .iter()
        .map(|r| (r.user, r.item, r.rating))
        .collect();
    let mut reports = Vec::new();
    let mut training = Vec::new();
    for spec in specs {
        let started = Instant::now();
        let report = |predict: &dyn Fn(u64, u64) -> f64, train_seconds: f64| {
            let started = Instant::now();
            let (rmse, mae) = rating_errors(
                fold.test
                    .iter()
                    .map(|r| (predict(r.user, r.item), r.rating)),
            );
            ModelReport {
                model: spec.name().to_string(),
                baseline: spec.is_baseline(),
                rmse: Some(rmse),
                mae: Some(mae),
                ranking: None,
                train_seconds,
                predict_seconds: started.elapsed().as_secs_f64(),
            }
        };
        reports.push(match spec {
            ModelSpec::GlobalMean => {
                let mean = baseline::mean(&train).clamp(0.5, 5.0);
                report(&|_, _| mean, started.elapsed().as_secs_f64())
            }
            ModelSpec::Biases => {
                let model = BiasModel::train(&train);
                report(&|u, i| model.predict(u, i), started.elapsed().as_secs_f64())
            }
            ModelSpec::Als(params) => {
                let model = als::train(&train, params);
                let r = report(&|u, i| model.predict(u, i), started.elapsed().as_secs_f64());
                training.push(fit_report(
                    &r,
                    params.iterations,
                    fold_number,
                    Some(model.iteration_seconds.clone()),
                ));
                r
            }
            ModelSpec::Bpmf(params) => {
                let model = bpmf::train(&train, params);
                report(&|u, i| model.predict(u, i), started.elapsed().as_secs_f64())
            }
            ModelSpec::Popularity | ModelSpec::Ials(_) => {
                unreachable!("left out of rating-only runs by plan()")
            }
        });
    }
    (reports, training)
}

fn write_csv(path: &Path, ratings: &[Interaction]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "user_id,movie_id,rating")?;
    for r in ratings {
        writeln!(out, "{},{},{}", r.user, r.item, r.rating)?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The ALS job beside the lakehouse job (`batch.spark.job`'s folder).
fn als_job(spark: &SparkConfig) -> PathBuf {
    spark.job.with_file_name("als.py")
}

/// Trains and measures MLlib ALS on one fold through spark-submit.
fn spark_als(
    request: &EvalRequest,
    fold: &Fold,
    params: &AlsParams,
    fold_number: usize,
) -> Result<(ModelReport, TrainingReport)> {
    let spark = &request.spark;
    let job = als_job(spark);
    if !job.is_file() {
        bail!(
            "the Spark ALS job {} is not there: run from the movierec checkout, or set \
             batch.spark.job to the path of jobs/spark/lakehouse.py (als.py sits beside it)",
            job.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("movierec-eval-spark-")
        .tempdir()?;
    let (train, test, out) = (
        dir.path().join("train.csv"),
        dir.path().join("test.csv"),
        dir.path().join("result.json"),
    );
    let clock = Instant::now();
    write_csv(&train, &fold.train)?;
    write_csv(&test, &fold.test)?;
    tracing::info!(
        "fold {fold_number}: wrote {} training and {} test ratings for Spark in {:.1} s",
        fold.train.len(),
        fold.test.len(),
        clock.elapsed().as_secs_f64()
    );
    let mut command = std::process::Command::new(&spark.submit);
    command.arg("--master").arg(&spark.master);
    command.args(["--conf", "spark.ui.enabled=false"]);
    for (key, value) in spark.submit_conf() {
        command.arg("--conf").arg(format!("{key}={value}"));
    }
    command
        .arg(&job)
        .arg("--train")
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .arg("--out")
        .arg(&out)
        .args(["--rank", &params.rank.to_string()])
        .args(["--iterations", &params.iterations.to_string()])
        .args(["--reg", &params.lambda.to_string()])
        .args(["--seed", &params.seed.to_string()]);
    if request.spark_warmup {
        command.arg("--warmup");
    }
    if std::env::var_os("SPARK_LOCAL_IP").is_none() {
        command.env("SPARK_LOCAL_IP", "127.0.0.1");
    }
    tracing::info!(
        "spark-submit --master {} {} (rank {}, {} iterations, λ {})",
        spark.master,
        job.display(),
        params.rank,
        params.iterations,
        params.lambda
    );
    let clock = Instant::now();
    let output = command
        .output()
        .with_context(|| crate::spark::cannot_run(&spark.submit))?;
    if !output.status.success() {
        bail!(
            "spark-submit {} failed ({}):\n{}",
            job.display(),
            output.status,
            crate::spark::stderr_tail(&String::from_utf8_lossy(&output.stderr))
        );
    }
    let submit_seconds = clock.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out)
        .with_context(|| format!("the Spark ALS job wrote no result to {}", out.display()))?;
    let result: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the Spark ALS job's result {} is not JSON", out.display()))?;
    let number = |key: &str| -> Result<f64> {
        result[key]
            .as_f64()
            .with_context(|| format!("the Spark ALS job's result has no number `{key}`: {text}"))
    };
    let fit_seconds = number("fit_seconds")?;
    let report = ModelReport {
        model: "als (spark)".into(),
        baseline: false,
        rmse: Some(number("rmse")?),
        mae: Some(number("mae")?),
        ranking: None,
        train_seconds: fit_seconds,
        predict_seconds: number("predict_seconds")?,
    };
    tracing::info!(
        "fold {fold_number}: Spark ALS RMSE {:.4}, fit {fit_seconds:.1} s, spark-submit {submit_seconds:.1} s",
        report.rmse.unwrap_or(f64::NAN)
    );
    let training = TrainingReport {
        model: report.model.clone(),
        engine: Engine::Spark,
        fold: fold_number,
        iterations: params.iterations,
        fit_seconds,
        seconds_per_iteration: fit_seconds / params.iterations.max(1) as f64,
        iteration_seconds: None,
        median_iteration_seconds: None,
        marginal_seconds_per_iteration: result["marginal_seconds_per_iteration"].as_f64(),
        spark: Some(result),
    };
    Ok((report, training))
}

/// The table `movierec eval` prints: one row per model, means over folds.
pub fn table(result: &EvalResult) -> String {
    let k = result.k;
    let mut out = format!(
        "{} · split {} · {} ratings · {} fold(s) · means over folds\n",
        result.dataset,
        result.split,
        result.ratings,
        result.folds.len()
    );
    let header: Vec<String> = vec![
        "model".to_string(),
        "RMSE".into(),
        "MAE".into(),
        format!("P@{k}"),
        format!("R@{k}"),
        format!("nDCG@{k}"),
        format!("MAP@{k}"),
        "coverage".into(),
        "train s".into(),
        "predict s".into(),
    ];
    let mut rows = vec![header];
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for r in &result.mean {
        let rank = r.ranking;
        rows.push(vec![
            if r.baseline {
                format!("{} (baseline)", r.model)
            } else {
                r.model.clone()
            },
            num(r.rmse),
            num(r.mae),
            num(rank.map(|x| x.precision)),
            num(rank.map(|x| x.recall)),
            num(rank.map(|x| x.ndcg)),
            num(rank.map(|x| x.map)),
            num(rank.map(|x| x.coverage)),
            format!("{:.2}", r.train_seconds),
            format!("{:.2}", r.predict_seconds),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<width$}", width = widths[c])
                } else {
                    format!("{cell:>width$}", width = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for t in &result.training {
        out.push_str(&format!(
            "{}, fold {}: {} iterations, fit {:.2} s, {:.3} s/iteration{}{}\n",
            if t.model.contains('(') {
                t.model.clone()
            } else {
                format!("{} ({})", t.model, t.engine.name())
            },
            t.fold,
            t.iterations,
            t.fit_seconds,
            t.seconds_per_iteration,
            t.median_iteration_seconds
                .map_or(String::new(), |m| format!(", median iteration {m:.3} s")),
            t.marginal_seconds_per_iteration
                .map_or(String::new(), |m| format!(", marginal {m:.3} s/iteration")),
        ));
    }
    out
}
