//! Trains every model of an evaluation on one fold and measures it: rating
//! error on the test ratings, top-K quality on each test user's held-out
//! items, and the time both took. Baselines always run beside the models.

use crate::als::{self, AlsParams};
use crate::baseline::{self, BiasModel, Popularity};
use crate::bpmf::{self, BpmfParams};
use crate::eval::{Fold, RankingMetrics, ranking_metrics, rating_errors, top_k};
use crate::ials::{self, IalsParams};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// A model to evaluate, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelSpec {
    /// Predicts the training mean; ranks nothing.
    GlobalMean,
    /// μ + b_u + b_i; ranks by item bias.
    Biases,
    /// Ranks by rating count; predicts nothing.
    Popularity,
    /// Explicit ALS with biases: the rating model.
    Als(AlsParams),
    /// Bayesian matrix factorization (Gibbs sampling): the most accurate
    /// rating model.
    Bpmf(BpmfParams),
    /// Implicit ALS: the ranking model.
    Ials(IalsParams),
}

impl ModelSpec {
    pub fn name(&self) -> &'static str {
        match self {
            Self::GlobalMean => "global-mean",
            Self::Biases => "biases",
            Self::Popularity => "popularity",
            Self::Als(_) => "als",
            Self::Bpmf(_) => "bpmf",
            Self::Ials(_) => "ials",
        }
    }

    pub fn is_baseline(&self) -> bool {
        matches!(self, Self::GlobalMean | Self::Biases | Self::Popularity)
    }
}

/// What one model scored on one fold. `None`: the model does not do that
/// (popularity predicts no ratings; the global mean ranks nothing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub model: String,
    pub baseline: bool,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    pub ranking: Option<RankingReport>,
    pub train_seconds: f64,
    /// Predicting every test rating and ranking the catalogue for every test user.
    pub predict_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankingReport {
    pub k: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub coverage: f64,
    pub users: usize,
}

impl RankingReport {
    fn new(k: usize, m: RankingMetrics) -> Self {
        Self {
            k,
            precision: m.precision,
            recall: m.recall,
            ndcg: m.ndcg,
            map: m.map,
            coverage: m.coverage,
            users: m.users,
        }
    }
}

enum Trained {
    GlobalMean(f64),
    Biases(BiasModel),
    Popularity,
    Als(als::AlsModel),
    Bpmf(bpmf::BpmfModel),
    Ials(ials::IalsModel),
}

/// The fold seen as the evaluator needs it: the catalogue (the training
/// items, sorted), each test user's training items and held-out items.
struct Context {
    train: Vec<(u64, u64, f64)>,
    catalogue: Vec<u64>,
    seen: HashMap<u64, Vec<u32>>,
    relevant: HashMap<u64, HashSet<u64>>,
    popularity: Popularity,
}

impl Context {
    fn new(fold: &Fold) -> Self {
        let train: Vec<(u64, u64, f64)> = fold
            .train
            .iter()
            .map(|r| (r.user, r.item, r.rating))
            .collect();
        let mut catalogue: Vec<u64> = train.iter().map(|r| r.1).collect();
        catalogue.sort_unstable();
        catalogue.dedup();
        let mut relevant: HashMap<u64, HashSet<u64>> = HashMap::new();
        for r in &fold.test {
            relevant.entry(r.user).or_default().insert(r.item);
        }
        let mut seen: HashMap<u64, Vec<u32>> = HashMap::new();
        for &(u, i, _) in &train {
            if relevant.contains_key(&u) {
                let j = catalogue.binary_search(&i).expect("a training item") as u32;
                seen.entry(u).or_default().push(j);
            }
        }
        let popularity = Popularity::train(&train);
        Self {
            train,
            catalogue,
            seen,
            relevant,
            popularity,
        }
    }

    /// The top `k` of the catalogue for `user` by `score` (filled for the
    /// catalogue, `false` when the model does not know the user: then
    /// popularity answers), the user's training items excluded.
    fn recommend(&self, user: u64, k: usize, score: impl Fn(u64, &mut [f64]) -> bool) -> Vec<u64> {
        let mut excluded = vec![false; self.catalogue.len()];
        if let Some(seen) = self.seen.get(&user) {
            for &j in seen {
                excluded[j as usize] = true;
            }
        }
        let mut scores = vec![0.0; self.catalogue.len()];
        if score(user, &mut scores) {
            top_k(&scores, &excluded, k)
                .into_iter()
                .map(|j| self.catalogue[j])
                .collect()
        } else {
            self.popularity.top(k, |item| {
                self.catalogue
                    .binary_search(&item)
                    .is_ok_and(|j| excluded[j])
            })
        }
    }
}

fn train(spec: &ModelSpec, ctx: &Context) -> Trained {
    match spec {
        ModelSpec::GlobalMean => Trained::GlobalMean(baseline::mean(&ctx.train)),
        ModelSpec::Biases => Trained::Biases(BiasModel::train(&ctx.train)),
        ModelSpec::Popularity => Trained::Popularity,
        ModelSpec::Als(params) => Trained::Als(als::train(&ctx.train, params)),
        ModelSpec::Bpmf(params) => Trained::Bpmf(bpmf::train(&ctx.train, params)),
        ModelSpec::Ials(params) => Trained::Ials(ials::train(&ctx.train, params)),
    }
}

/// Trains and measures every model of `specs` on `fold`, in order.
pub fn evaluate_fold(fold: &Fold, specs: &[ModelSpec], k: usize) -> Vec<ModelReport> {
    evaluate_fold_with(fold, specs, k, true)
}

/// [`evaluate_fold`], ranking with the rating models (ALS, BPMF) only when
/// `rank_rating_models`: the batch needs their RMSE, not their top-K (which
/// costs a full catalogue scan per user and sample).
pub fn evaluate_fold_with(
    fold: &Fold,
    specs: &[ModelSpec],
    k: usize,
    rank_rating_models: bool,
) -> Vec<ModelReport> {
    let ctx = Context::new(fold);
    specs
        .iter()
        .map(|spec| {
            let started = Instant::now();
            let model = train(spec, &ctx);
            let train_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let errors = |predict: &(dyn Fn(u64, u64) -> f64 + Sync)| {
                let (rmse, mae) = rating_errors(
                    fold.test
                        .iter()
                        .map(|r| (predict(r.user, r.item), r.rating)),
                );
                (Some(rmse), Some(mae))
            };
            let (rmse, mae) = match &model {
                Trained::GlobalMean(m) => errors(&|_, _| m.clamp(0.5, 5.0)),
                Trained::Biases(b) => errors(&|u, i| b.predict(u, i)),
                Trained::Als(a) => errors(&|u, i| a.predict(u, i)),
                Trained::Bpmf(b) => errors(&|u, i| b.predict(u, i)),
                Trained::Popularity | Trained::Ials(_) => (None, None),
            };
            let ranking = match &model {
                Trained::GlobalMean(_) => None,
                Trained::Als(_) | Trained::Bpmf(_) if !rank_rating_models => None,
                Trained::Biases(b) => Some(rank_all(&ctx, k, |_, out| {
                    for (s, item) in out.iter_mut().zip(&ctx.catalogue) {
                        *s = b.item_bias.get(item).copied().unwrap_or(0.0);
                    }
                    true
                })),
                Trained::Popularity => Some(rank_all(&ctx, k, |_, _| false)),
                Trained::Als(a) => Some(rank_all(&ctx, k, |user, out| match a.user_vector(user) {
                    Some(v) => {
                        debug_assert_eq!(a.items, ctx.catalogue);
                        a.scores(v, out);
                        true
                    }
                    None => false,
                })),
                Trained::Bpmf(b) => Some(rank_all(&ctx, k, |user, out| {
                    if b.users.binary_search(&user).is_err() {
                        return false;
                    }
                    for (s, &item) in out.iter_mut().zip(&ctx.catalogue) {
                        *s = b.predict_raw(user, item);
                    }
                    true
                })),
                Trained::Ials(m) => Some(rank_all(&ctx, k, |user, out| {
                    debug_assert_eq!(m.items, ctx.catalogue);
                    match m.score_user(user) {
                        Some(scores) => {
                            out.copy_from_slice(&scores);
                            true
                        }
                        None => false,
                    }
                })),
            };
            ModelReport {
                model: spec.name().to_string(),
                baseline: spec.is_baseline(),
                rmse,
                mae,
                ranking,
                train_seconds,
                predict_seconds: started.elapsed().as_secs_f64(),
            }
        })
        .collect()
}

fn rank_all(
    ctx: &Context,
    k: usize,
    score: impl Fn(u64, &mut [f64]) -> bool + Sync,
) -> RankingReport {
    let recommendations: HashMap<u64, Vec<u64>> = ctx
        .relevant
        .par_iter()
        .map(|(&user, _)| (user, ctx.recommend(user, k, &score)))
        .collect();
    RankingReport::new(
        k,
        ranking_metrics(&recommendations, &ctx.relevant, k, ctx.catalogue.len()),
    )
}

/// The mean of each metric over folds (a model's reports in fold order).
pub fn mean_report(reports: &[ModelReport]) -> ModelReport {
    let n = reports.len() as f64;
    let avg = |f: &dyn Fn(&ModelReport) -> Option<f64>| -> Option<f64> {
        let values: Option<Vec<f64>> = reports.iter().map(f).collect();
        values.map(|v| v.iter().sum::<f64>() / n)
    };
    let ranking = avg(&|r| r.ranking.map(|x| x.ndcg)).map(|_| RankingReport {
        k: reports[0].ranking.map(|x| x.k).unwrap_or(0),
        precision: avg(&|r| r.ranking.map(|x| x.precision)).unwrap_or(f64::NAN),
        recall: avg(&|r| r.ranking.map(|x| x.recall)).unwrap_or(f64::NAN),
        ndcg: avg(&|r| r.ranking.map(|x| x.ndcg)).unwrap_or(f64::NAN),
        map: avg(&|r| r.ranking.map(|x| x.map)).unwrap_or(f64::NAN),
        coverage: avg(&|r| r.ranking.map(|x| x.coverage)).unwrap_or(f64::NAN),
        users: reports
            .iter()
            .filter_map(|r| r.ranking.map(|x| x.users))
            .sum::<usize>()
            / reports.len().max(1),
    });
    ModelReport {
        model: reports[0].model.clone(),
        baseline: reports[0].baseline,
        rmse: avg(&|r| r.rmse),
        mae: avg(&|r| r.mae),
        ranking,
        train_seconds: avg(&|r| Some(r.train_seconds)).unwrap_or(0.0),
        predict_seconds: avg(&|r| Some(r.predict_seconds)).unwrap_or(0.0),
    }
}
