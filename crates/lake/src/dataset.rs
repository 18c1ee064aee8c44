//! Datasets that switch atomically (silver and gold).
//!
//! A dataset at `prefix` is a folder of versions, `prefix/run=<RUN>/…`, and a
//! manifest, `prefix/_current.json`, naming the files of the current one. A
//! run writes its files first and the manifest last, in one PUT: a reader
//! (which reads the manifest first) sees the old version or the new one,
//! never a mix, and a run that fails before the manifest leaves the old one
//! current. Versions older than the previous one are removed after the
//! switch, so a reader that read the manifest just before still finds its files.

use crate::{Lake, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "_current.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    /// Keys relative to the lake root.
    pub files: Vec<String>,
    pub rows: u64,
}

fn folder(prefix: &str) -> String {
    format!("{}/", prefix.trim_matches('/'))
}

impl Lake {
    /// Publishes `files` (name, bytes) as the new version of the dataset at
    /// `prefix`, made by run `run_id`.
    pub async fn publish_dataset(
        &self,
        prefix: &str,
        run_id: &str,
        files: Vec<(String, Bytes)>,
        rows: u64,
    ) -> Result<Manifest> {
        let base = folder(prefix);
        let mut keys = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            let key = format!("{base}run={run_id}/{name}");
            self.put(&key, bytes).await?;
            keys.push(key);
        }
        self.commit_dataset(prefix, run_id, keys, rows).await
    }

    /// Makes files already written under `prefix/run=<run_id>/` (by another
    /// engine, e.g. Spark) the current version.
    pub async fn commit_dataset(
        &self,
        prefix: &str,
        run_id: &str,
        files: Vec<String>,
        rows: u64,
    ) -> Result<Manifest> {
        let base = folder(prefix);
        let previous = self.current_dataset(prefix).await?;
        let manifest = Manifest {
            run_id: run_id.to_string(),
            files,
            rows,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        self.put(&format!("{base}{MANIFEST}"), Bytes::from(text))
            .await?;
        // Keep the current and the previous version.
        let keep = [Some(run_id), previous.as_ref().map(|m| m.run_id.as_str())];
        for entry in self.list(&base).await? {
            let Some(run) = entry
                .key
                .strip_prefix(&base)
                .and_then(|rest| rest.strip_prefix("run="))
                .and_then(|rest| rest.split('/').next())
            else {
                continue;
            };
            if !keep.contains(&Some(run)) {
                self.delete(&entry.key).await?;
            }
        }
        Ok(manifest)
    }

    /// The current version of the dataset at `prefix`, if one was published.
    pub async fn current_dataset(&self, prefix: &str) -> Result<Option<Manifest>> {
        let key = format!("{}{MANIFEST}", folder(prefix));
        let Some(bytes) = self.get(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::LakeError::Corrupt {
                url: self.url().to_string(),
                key,
                reason: e.to_string(),
            })
    }

    /// The files of the current version, read whole.
    pub async fn read_dataset(&self, prefix: &str) -> Result<Option<(Manifest, Vec<Bytes>)>> {
        let Some(manifest) = self.current_dataset(prefix).await? else {
            return Ok(None);
        };
        let mut files = Vec::with_capacity(manifest.files.len());
        for key in &manifest.files {
            let bytes = self
                .get(key)
                .await?
                .ok_or_else(|| crate::LakeError::Corrupt {
                    url: self.url().to_string(),
                    key: key.clone(),
                    reason: "named by the manifest but missing".into(),
                })?;
            files.push(bytes);
        }
        Ok(Some((manifest, files)))
    }
}
