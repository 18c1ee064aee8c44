//! The batch's `models` stage: train the rating model (BPMF or ALS) and the
//! ranking model (implicit ALS) on the silver ratings, measure both on a
//! holdout, write `gold/user-recommendations/` and `gold/similar-movies/`,
//! save each model version under `models/<name>/` and publish the lists and
//! model cards to the serving database. Also `movierec models list`.

use crate::batch::{Layout, stage};
use anyhow::{Context, Result};
use movierec_batch::parquet_tables as tables;
use movierec_config::{Config, ModelsConfig, RatingModel};
use movierec_core::eval::{Split, split};
use movierec_core::experiment::{ModelSpec, evaluate_fold_with};
use movierec_core::ials::{self, IalsModel, IalsParams};
use movierec_core::{als, bpmf};
use movierec_lake::Lake;
use movierec_store::{BatchRun, ModelRecord, ModelsPublish, ServingDb};
use serde_json::{Value, json};
use std::time::Instant;

/// Movies need this many ratings to be offered as similar to another: a
/// movie two people rated has factors that mean little yet.
const SIMILAR_MIN_RATINGS: u64 = 5;
/// The share of each user's ratings held out to measure a new version.
const METRICS_K: usize = 10;

/// Where the ranking model's current version lives in the lake (the API
/// folds users in against it).
pub fn ranking_prefix() -> &'static str {
    "models/ials"
}

fn rating_model_name(config: &ModelsConfig) -> &'static str {
    match config.rating_model {
        RatingModel::Bpmf => "bpmf",
        RatingModel::Als => "als",
    }
}

/// The parameters of a ranking model as its card records them, and back:
/// what the API needs to fold users in exactly as training did.
pub fn ials_params_json(p: &IalsParams) -> Value {
    json!({
        "rank": p.factors,
        "lambda": p.regularization,
        "alpha": p.alpha,
        "iterations": p.iterations,
        "confidence": "1 + alpha * ln(1 + rating)",
        "seed": p.seed,
    })
}

pub fn ials_params_from_json(card: &Value) -> Option<IalsParams> {
    let p = card.get("params")?;
    Some(IalsParams {
        factors: p.get("rank")?.as_u64()? as usize,
        regularization: p.get("lambda")?.as_f64()?,
        alpha: p.get("alpha")?.as_f64()?,
        iterations: p.get("iterations")?.as_u64()? as usize,
        seed: p.get("seed")?.as_u64()?,
        ..IalsParams::default()
    })
}

/// A rating model's saved factors: `users.parquet` and `items.parquet`.
fn factor_files(
    users: &[u64],
    user_factors: &[f64],
    items: &[u64],
    item_factors: &[f64],
    width: usize,
) -> Result<Vec<(String, bytes::Bytes)>> {
    Ok(vec![
        (
            "users.parquet".to_string(),
            tables::factors_table(users, width, user_factors)?,
        ),
        (
            "items.parquet".to_string(),
            tables::factors_table(items, width, item_factors)?,
        ),
    ])
}

/// Trains, measures, saves and publishes the models of one batch run.
pub async fn train_and_publish(
    config: &Config,
    lake: &Lake,
    serving: &ServingDb,
    run_id: &str,
    snapshot_date: &str,
    run: &mut BatchRun,
) -> Result<()> {
    let models = &config.models;
    let layout = Layout::new(config);
    let clock = Instant::now();
    let mut ratings: Vec<(u64, u64, f64)> = Vec::new();
    if let Some((_, files)) = lake.read_dataset(&layout.ratings).await? {
        for file in files {
            let records = tables::read_ratings(file, 0)
                .with_context(|| format!("cannot read {}/{}", lake.url(), layout.ratings))?;
            ratings.extend(
                records
                    .iter()
                    .map(|r| (r.user, r.movie, f64::from(r.half_stars) / 2.0)),
            );
        }
    }
    if ratings.is_empty() {
        tracing::info!("no ratings in the lake yet: no models to train");
        return Ok(());
    }
    let rating_spec = match models.rating_model {
        RatingModel::Bpmf => ModelSpec::Bpmf(crate::eval::bpmf_params(models)),
        RatingModel::Als => ModelSpec::Als(crate::eval::als_params(models)),
    };
    let ials_params = crate::eval::ials_params(models);

    // Holdout metrics: the same models on the rest of each user's ratings.
    let holdout_share = models.holdout;
    let (rating_report, ranking_report) = if holdout_share > 0.0 {
        let log: Vec<movierec_core::eval::Interaction> = ratings
            .iter()
            .map(|&(user, item, rating)| movierec_core::eval::Interaction {
                user,
                item,
                rating,
                time: 0,
            })
            .collect();
        let fold = split(
            &log,
            Split::Stratified {
                train_fraction: 1.0 - holdout_share,
                seed: models.ranking.seed,
            },
        )
        .expect("a split computed from the data");
        drop(log);
        let mut reports = tokio::task::block_in_place(|| {
            evaluate_fold_with(
                &fold,
                &[rating_spec, ModelSpec::Ials(ials_params)],
                METRICS_K,
                false,
            )
        });
        drop(fold);
        let ranking = reports.pop();
        (reports.pop(), ranking)
    } else {
        (None, None)
    };
    let rmse = rating_report.as_ref().and_then(|r| r.rmse);
    let mae = rating_report.as_ref().and_then(|r| r.mae);
    let ranking_metrics = ranking_report.as_ref().and_then(|r| r.ranking);

    // The versions that serve: trained on every rating.
    let trained = tokio::task::block_in_place(|| -> Result<_> {
        let started = Instant::now();
        let ranking = ials::train(&ratings, &ials_params);
        let ranking_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let (rating_files, rating_params) = match rating_spec {
            ModelSpec::Bpmf(p) => {
                let m = bpmf::train(&ratings, &p);
                (
                    factor_files(
                        &m.users,
                        &m.user_factors,
                        &m.items,
                        &m.item_factors,
                        m.rank + 1,
                    )?,
                    json!({"rank": p.rank, "burn_in": p.burn_in, "samples": p.samples,
                           "thin": p.thin, "seed": p.seed, "global_mean": m.global_mean,
                           "layout": "per sample: factors then bias"}),
                )
            }
            ModelSpec::Als(p) => {
                let m = als::train(&ratings, &p);
                (
                    factor_files(
                        &m.users,
                        &m.user_factors,
                        &m.items,
                        &m.item_factors,
                        m.rank + 1,
                    )?,
                    json!({"rank": p.rank, "iterations": p.iterations, "lambda": p.lambda,
                           "seed": p.seed, "global_mean": m.global_mean,
                           "layout": "factors then bias"}),
                )
            }
            _ => unreachable!("the rating model is BPMF or ALS"),
        };
        let rating_seconds = started.elapsed().as_secs_f64();
        Ok((
            ranking,
            ranking_seconds,
            rating_files,
            rating_params,
            rating_seconds,
        ))
    })?;
    let (ranking, ranking_seconds, rating_files, rating_params, rating_seconds) = trained;

    // Lists: every user's unseen best, every movie's nearest neighbours.
    let (recommendations, similar) = tokio::task::block_in_place(|| {
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        for &(_, item, _) in &ratings {
            *counts.entry(item).or_default() += 1;
        }
        let eligible: Vec<bool> = ranking
            .items
            .iter()
            .map(|i| counts.get(i).copied().unwrap_or(0) >= SIMILAR_MIN_RATINGS)
            .collect();
        (
            ranking.recommend_all(models.recommendations_per_user),
            ranking.similar_items(&eligible, models.similar_per_movie),
        )
    });
    let (users, items) = (ranking.users.len(), ranking.items.len());
    stage(
        run,
        "models",
        ratings.len() as u64,
        clock,
        if holdout_share > 0.0 {
            format!(
                "{} (RMSE {:.4} on a {:.0}% holdout, {:.1} s) and ials (nDCG@{METRICS_K} {:.4}, P@{METRICS_K} {:.4}, {:.1} s) on {} ratings of {users} users and {items} movies",
                rating_model_name(models),
                rmse.unwrap_or(f64::NAN),
                holdout_share * 100.0,
                rating_seconds,
                ranking_metrics.map_or(f64::NAN, |r| r.ndcg),
                ranking_metrics.map_or(f64::NAN, |r| r.precision),
                ranking_seconds,
                ratings.len(),
            )
        } else {
            format!(
                "{} ({rating_seconds:.1} s) and ials ({ranking_seconds:.1} s) on {} ratings of {users} users and {items} movies; no holdout metrics (models.holdout: 0)",
                rating_model_name(models),
                ratings.len(),
            )
        },
    );

    let clock = Instant::now();
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let snapshot = json!({
        "run_id": run_id,
        "snapshot_date": snapshot_date,
        "ratings": ratings.len(),
        "users": users,
        "movies": items,
        "source": format!("{}/{}", lake.url(), layout.ratings),
    });
    let holdout = (holdout_share > 0.0).then(|| {
        format!(
            "stratified {:.0}/{:.0} per user",
            (1.0 - holdout_share) * 100.0,
            holdout_share * 100.0
        )
    });
    let cards = [
        ModelRecord {
            name: "ials".into(),
            version: run_id.into(),
            created_at: created_at.clone(),
            card: json!({
                "name": "ials",
                "kind": "ranking",
                "version": run_id,
                "params": ials_params_json(&ials_params),
                "snapshot": snapshot,
                "metrics": {"holdout": holdout, "k": METRICS_K, "ranking": ranking_metrics},
                "train_seconds": ranking_seconds,
                "path": format!("{}/{}/run={run_id}/", lake.url(), ranking_prefix()),
            }),
        },
        ModelRecord {
            name: rating_model_name(models).into(),
            version: run_id.into(),
            created_at,
            card: json!({
                "name": rating_model_name(models),
                "kind": "rating",
                "version": run_id,
                "params": rating_params,
                "snapshot": snapshot,
                "metrics": {"holdout": holdout, "rmse": rmse, "mae": mae},
                "train_seconds": rating_seconds,
                "path": format!("{}/models/{}/run={run_id}/", lake.url(), rating_model_name(models)),
            }),
        },
    ];
    let card_file = |record: &ModelRecord| {
        (
            "model.json".to_string(),
            bytes::Bytes::from(serde_json::to_vec_pretty(&record.card).expect("a card serializes")),
        )
    };
    let ranking_files = vec![
        (
            "items.parquet".to_string(),
            tables::factors_table(
                &ranking.items,
                ranking.params.factors,
                &ranking.item_factors,
            )?,
        ),
        (
            "users.parquet".to_string(),
            tables::factors_table(
                &ranking.users,
                ranking.params.factors,
                &ranking.user_factors,
            )?,
        ),
        (
            "fingerprints.parquet".to_string(),
            tables::pairs_table("user_id", "fingerprint", &fingerprints(&ratings))?,
        ),
        card_file(&cards[0]),
    ];
    let mut rating_files = rating_files;
    rating_files.push(card_file(&cards[1]));
    let gold = |name: &str| format!("{}/{name}", config.aws.s3.gold_prefix.trim_matches('/'));
    let recs_rows: usize = recommendations.iter().map(|(_, l)| l.len()).sum();
    let similar_rows: usize = similar.iter().map(|(_, l)| l.len()).sum();
    let datasets = [
        (
            gold("user-recommendations"),
            vec![(
                "part-00000.parquet".to_string(),
                tables::ranked_lists_table("user_id", "movie_id", &recommendations)?,
            )],
            recs_rows,
        ),
        (
            gold("similar-movies"),
            vec![(
                "part-00000.parquet".to_string(),
                tables::ranked_lists_table("movie_id", "similar_movie_id", &similar)?,
            )],
            similar_rows,
        ),
        (ranking_prefix().to_string(), ranking_files, items),
        (
            format!("models/{}", rating_model_name(models)),
            rating_files,
            items,
        ),
    ];
    for (prefix, files, rows) in datasets {
        lake.publish_dataset(&prefix, run_id, files, rows as u64)
            .await
            .with_context(|| format!("cannot write {}/{prefix}", lake.url()))?;
    }
    serving
        .publish_models(ModelsPublish {
            recommendations: &recommendations,
            similar: &similar,
            models: &cards,
        })
        .await
        .context("cannot publish the models to the serving database")?;
    stage(
        run,
        "publish-models",
        (recs_rows + similar_rows) as u64,
        clock,
        format!(
            "{recs_rows} user recommendations, {similar_rows} similar movies, models ials and {} version {run_id}",
            rating_model_name(models)
        ),
    );
    Ok(())
}

/// Each user's [`ials::ratings_fingerprint`] over the ratings the model
/// trained on: the server answers a user whose ratings still match from the
/// lists computed at training, identical to a fold-in and much cheaper.
fn fingerprints(ratings: &[(u64, u64, f64)]) -> Vec<(u64, u64)> {
    let mut by_user = std::collections::HashMap::<u64, u64>::new();
    for &(user, movie, rating) in ratings {
        let entry = by_user.entry(user).or_default();
        *entry = entry.wrapping_add(ials::rating_hash(movie, rating));
    }
    let mut pairs: Vec<(u64, u64)> = by_user.into_iter().collect();
    pairs.sort_unstable();
    pairs
}

/// The ranking model as it serves: its version, the model, the
/// fingerprints of the trained users' ratings (empty for versions that
/// predate them), and the lists computed for those users at training.
pub struct Ranking {
    pub version: String,
    pub model: IalsModel,
    pub fingerprints: std::collections::HashMap<u64, u64>,
    /// `gold/user-recommendations` of the same run, by user id (empty when
    /// the current lists come from another run).
    pub lists: tables::RankedLists,
}

impl Ranking {
    /// The list computed at training for `user_id`, best first.
    pub fn list(&self, user_id: u64) -> Option<&[(u64, f64)]> {
        let at = self
            .lists
            .binary_search_by_key(&user_id, |(user, _)| *user)
            .ok()?;
        Some(&self.lists[at].1)
    }
}

/// Loads the ranking model's current version from the lake for serving:
/// `None` when no batch has trained one yet. `gold_prefix` is where the
/// batch wrote the users' lists (`aws.s3.gold_prefix`).
pub async fn load_ranking(lake: &Lake, gold_prefix: &str) -> Result<Option<Ranking>> {
    let Some((manifest, files)) = lake.read_dataset(ranking_prefix()).await? else {
        return Ok(None);
    };
    let mut items = None;
    let mut card = None;
    let mut fingerprints = std::collections::HashMap::new();
    for (key, bytes) in manifest.files.iter().zip(files) {
        if key.ends_with("/fingerprints.parquet") {
            fingerprints = tables::read_pairs(bytes, "user_id", "fingerprint")?
                .into_iter()
                .collect();
        } else if key.ends_with("/items.parquet") {
            items = Some(tables::read_factors(bytes)?);
        } else if key.ends_with("/model.json") {
            card = Some(serde_json::from_slice::<Value>(&bytes)?);
        }
    }
    let (Some((ids, factors, width)), Some(card)) = (items, card) else {
        anyhow::bail!(
            "{}/{}: version {} lacks items.parquet or model.json",
            lake.url(),
            ranking_prefix(),
            manifest.run_id
        );
    };
    let params = ials_params_from_json(&card).with_context(|| {
        format!(
            "{}/{}/run={}/model.json has no readable params",
            lake.url(),
            ranking_prefix(),
            manifest.run_id
        )
    })?;
    anyhow::ensure!(
        width == params.factors || ids.is_empty(),
        "{}/{}: factors have {width} columns, the card says rank {}",
        lake.url(),
        ranking_prefix(),
        params.factors
    );
    // The models stage publishes the lists before the model, so a model's
    // lists are current when it is; a later run's lists are not this
    // model's and would not match its fingerprints.
    let lists_prefix = format!("{}/user-recommendations", gold_prefix.trim_matches('/'));
    let mut lists = Vec::new();
    if let Some((lists_manifest, files)) = lake.read_dataset(&lists_prefix).await?
        && lists_manifest.run_id == manifest.run_id
    {
        for bytes in files {
            lists.extend(tables::read_ranked_lists(bytes, "user_id", "movie_id")?);
        }
        lists.sort_unstable_by_key(|(user, _)| *user);
    }
    Ok(Some(Ranking {
        version: manifest.run_id,
        model: IalsModel::from_item_factors(ids, factors, params),
        fingerprints,
        lists,
    }))
}

/// `movierec models list`: versions newest first, one line each.
pub async fn print_models(
    serving: &ServingDb,
    name: Option<&str>,
    limit: u64,
    json: bool,
) -> Result<()> {
    let models = serving.models(name, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!(
            "no model versions yet: `movierec batch run` trains them (models.enabled in the config)"
        );
        return Ok(());
    }
    for m in models {
        let metrics = &m.card["metrics"];
        let quality = match m.card["kind"].as_str() {
            Some("ranking") => format!(
                "nDCG@10 {:.4}  P@10 {:.4}",
                metrics["ranking"]["ndcg"].as_f64().unwrap_or(f64::NAN),
                metrics["ranking"]["precision"].as_f64().unwrap_or(f64::NAN)
            ),
            _ => format!(
                "RMSE {:.4}  MAE {:.4}",
                metrics["rmse"].as_f64().unwrap_or(f64::NAN),
                metrics["mae"].as_f64().unwrap_or(f64::NAN)
            ),
        };
        println!(
            "{:<5} {}  {}  {} ratings  {}  params {}",
            m.name,
            m.version,
            m.created_at,
            m.card["snapshot"]["ratings"],
            quality,
            m.card["params"]
        );
    }
    Ok(())
}
