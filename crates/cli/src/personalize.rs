//! Real-time personalization for the API: the ranking model's current
//! version, kept fresh from the lake, folds each user in from their ratings
//! at request time, so a rating counts within one request, not one retrain.

use crate::models::Ranking;
use movierec_core::eval::top_k;
use movierec_core::ials::ratings_fingerprint;
use movierec_lake::Lake;
use movierec_server::{Personalizer, Recommended, UserRatings};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the server looks for a new model version in the lake.
const REFRESH: Duration = Duration::from_secs(10);

pub struct FoldIn {
    current: RwLock<Option<Arc<Ranking>>>,
    gold_prefix: String,
}

impl FoldIn {
    /// Loads the current version (if any) and keeps polling the lake for a
    /// newer one; a failed poll keeps the model in hand and logs why.
    pub async fn start(lake: Lake, gold_prefix: String) -> Arc<Self> {
        let me = Arc::new(Self {
            current: RwLock::new(None),
            gold_prefix,
        });
        me.refresh(&lake).await;
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(me) = weak.upgrade() else { return };
                me.refresh(&lake).await;
            }
        });
        me
    }

    async fn refresh(&self, lake: &Lake) {
        let loaded = self.version();
        match lake.current_dataset(crate::models::ranking_prefix()).await {
            Ok(Some(manifest)) if Some(&manifest.run_id) != loaded.as_ref() => {
                match crate::models::load_ranking(lake, &self.gold_prefix).await {
                    Ok(Some(ranking)) => {
                        tracing::info!(
                            "serving ranking model ials version {} ({} movies, {} users' fingerprints, {} users' lists precomputed)",
                            ranking.version,
                            ranking.model.items.len(),
                            ranking.fingerprints.len(),
                            ranking.lists.len()
                        );
                        *self.current.write().expect("not poisoned") = Some(Arc::new(ranking));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!("cannot load the ranking model: {}", crate::describe(&error))
                    }
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("cannot look for a new ranking model: {error}"),
        }
    }

    fn version(&self) -> Option<String> {
        self.current
            .read()
            .expect("not poisoned")
            .as_ref()
            .map(|m| m.version.clone())
    }
}

impl Personalizer for FoldIn {
    fn precomputed(&self, user_id: u64, ratings: &[(u64, f64)], k: usize) -> Option<Recommended> {
        let current = self.current.read().expect("not poisoned").clone()?;
        let trained = *current.fingerprints.get(&user_id)?;
        if trained != ratings_fingerprint(ratings.iter().copied()) {
            return None;
        }
        // Lists are cut at models.recommendations_per_user: a longer ask folds in.
        let list = current.list(user_id).filter(|list| list.len() >= k)?;
        Some(Recommended {
            model: "ials".into(),
            version: current.version.clone(),
            items: list[..k].to_vec(),
        })
    }

    fn recommend(&self, ratings: &[(u64, f64)], k: usize) -> Option<Recommended> {
        let current = self.current.read().expect("not poisoned").clone()?;
        let (version, model) = (&current.version, &current.model);
        let mut excluded = vec![false; model.items.len()];
        let mut known = 0;
        for (movie, _) in ratings {
            if let Ok(j) = model.items.binary_search(movie) {
                excluded[j] = true;
                known += 1;
            }
        }
        // Ratings of movies the model has not seen say nothing it can use.
        if known == 0 {
            return None;
        }
        let scores = model.fold_in(ratings);
        let items = top_k(&scores, &excluded, k)
            .into_iter()
            .map(|j| (model.items[j], scores[j]))
            .collect();
        Some(Recommended {
            model: "ials".into(),
            version: version.clone(),
            items,
        })
    }
}

/// The SQLite rating store's ratings (embedded mode).
pub struct StoreRatings(pub movierec_store::SqliteRatingStore);

#[async_trait::async_trait]
impl UserRatings for StoreRatings {
    async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>, String> {
        use movierec_store::RatingStore;
        self.0
            .user_ratings(user_id)
            .await
            .map_err(|e| e.to_string())
    }
}

/// DynamoDB's ratings table (aws mode).
pub struct DynamoRatings(pub movierec_aws::FeatureSink);

#[async_trait::async_trait]
impl UserRatings for DynamoRatings {
    async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>, String> {
        self.0
            .user_ratings(user_id)
            .await
            .map_err(|e| e.to_string())
    }
}
