//! `movierec eval`: the models of `models:` and the baselines, trained and
//! measured on a split of a MovieLens-format dataset (docs/EVALUATION.md).

use anyhow::{Context, Result, bail};
use movierec_config::ModelsConfig;
use movierec_core::als::AlsParams;
use movierec_core::bpmf::BpmfParams;
use movierec_core::eval::{Fold, Interaction, Split, split};
use movierec_core::experiment::{ModelReport, ModelSpec, evaluate_fold, mean_report};
use movierec_core::ials::IalsParams;
use movierec_datasets::movielens::{self, Layout};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub struct EvalRequest {
    pub dataset: PathBuf,
    pub split: Split,
    pub k: usize,
    /// Personalized models to run beside the baselines.
    pub models: Vec<String>,
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

pub fn run(request: &EvalRequest, config: &ModelsConfig) -> Result<EvalResult> {
    let specs = model_specs(&request.models, config)?;
    if request.k == 0 {
        bail!("--k must be at least 1");
    }
    let (folds, ratings) = folds(&request.dataset, request.split)?;
    let mut per_fold = Vec::new();
    for (n, fold) in folds.iter().enumerate() {
        tracing::info!(
            "fold {}/{}: {} training and {} test ratings",
            n + 1,
            folds.len(),
            fold.train.len(),
            fold.test.len()
        );
        per_fold.push(evaluate_fold(fold, &specs, request.k));
    }
    let mean = (0..specs.len())
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
    })
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
    out
}
