//! Small-file compaction of a partitioned layer (the bronze layer: one
//! JSON-lines object per consumer batch, partition and date), the job
//! S3DistCp's `--groupBy --targetSize` does in the seed, with the safety it
//! lacks, and for Parquet too (S3DistCp can only concatenate bytes).
//!
//! Per partition folder (`…/date=D/`), files older than `min_age` are packed,
//! in key order and by file type, into groups of about `target_size` bytes;
//! a [`Merger`] turns each group into one object `c-<ID>.<ext>` (ID: a hash
//! of the group's keys, so a rerun of a crashed compaction rewrites the same
//! object; ext: what the merger writes, e.g. JSON lines into Parquet). The switch is a small
//! manifest `_compacted/<ID>.json` naming the output and its inputs, written
//! after the output and before any input is deleted. The live files
//! ([`Lake::live_files`]): an output counts only once its manifest exists, and
//! an input named by any manifest does not count. So in every state each line
//! is counted exactly once, whether the compaction finished, died after the
//! output, after the manifest, or while deleting inputs; and files the
//! consumer writes meanwhile are not inputs (too young, or listed after the
//! plan was made). A listing is not a snapshot, though: readers use
//! [`Lake::read_live`], which starts over if a compaction committed while it read.

use crate::{Entry, Lake, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const COMPACTED: &str = "_compacted";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionManifest {
    pub output: String,
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    pub target_size: u64,
    /// Files younger than this (by last-modified) are left alone: the consumer
    /// may still rewrite them when it replays an uncommitted batch.
    pub min_age_ms: i64,
    /// Now, in epoch milliseconds (a parameter, so tests can age files).
    pub now_ms: i64,
}

/// What [`Lake::visit_live`] hands its visitor.
#[derive(Debug)]
pub enum LiveRead {
    /// The files about to be read, at the start of every attempt: a visitor
    /// forgets what an earlier attempt gave it (a compaction committed
    /// during that read) and may size its buffers from these.
    Listed(Vec<Entry>),
    File(String, Bytes),
}

/// Turns a group of same-type files into one file, rows in input order.
pub trait Merger: Send + Sync {
    /// The extension of the merged file for inputs with extension `ext`
    /// (`json`, `parquet`), or `None` to leave such files alone.
    fn output(&self, ext: &str) -> Option<&'static str>;
    /// The merged file. An input it cannot read is an error naming the key:
    /// a compaction never drops rows.
    fn merge(&self, ext: &str, inputs: &[(String, Bytes)]) -> std::result::Result<Bytes, String>;
}

/// JSON lines into JSON lines by concatenation (a missing final newline is
/// added); other files are left alone.
pub struct JsonLines;

impl Merger for JsonLines {
    fn output(&self, ext: &str) -> Option<&'static str> {
        (ext == "json").then_some("json")
    }

    fn merge(&self, _ext: &str, inputs: &[(String, Bytes)]) -> std::result::Result<Bytes, String> {
        Ok(concat_lines(inputs))
    }
}

/// The inputs' lines, one after the other.
pub fn concat_lines(inputs: &[(String, Bytes)]) -> Bytes {
    let mut merged = Vec::with_capacity(inputs.iter().map(|(_, b)| b.len() + 1).sum());
    for (_, bytes) in inputs {
        merged.extend_from_slice(bytes);
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            merged.push(b'\n');
        }
    }
    Bytes::from(merged)
}

fn extension(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('.').map_or("", |(_, ext)| ext)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub partitions: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes: u64,
    pub outputs: Vec<String>,
}

/// FNV-1a over the keys: stable across runs and platforms.
fn group_id(keys: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for key in keys {
        for byte in key.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The partition folder of a key (`…/date=D/`), `None` for manifests.
fn folder_of(key: &str) -> Option<&str> {
    let (folder, name) = key.rsplit_once('/')?;
    (!folder.ends_with(COMPACTED) && !name.starts_with('_')).then_some(folder)
}

impl Lake {
    async fn manifests(&self, prefix: &str) -> Result<Vec<(String, CompactionManifest)>> {
        let mut out = Vec::new();
        for entry in self.list(prefix).await? {
            if !entry.key.contains(&format!("/{COMPACTED}/")) {
                continue;
            }
            if let Some(bytes) = self.get(&entry.key).await? {
                let manifest =
                    serde_json::from_slice(&bytes).map_err(|e| crate::LakeError::Corrupt {
                        url: self.url().to_string(),
                        key: entry.key.clone(),
                        reason: e.to_string(),
                    })?;
                out.push((entry.key, manifest));
            }
        }
        Ok(out)
    }

    /// The data files under `prefix` that hold the layer's rows, by the
    /// compaction rules above, sorted by key.
    pub async fn live_files(&self, prefix: &str) -> Result<Vec<Entry>> {
        let manifests = self.manifests(prefix).await?;
        let superseded: BTreeSet<&str> = manifests
            .iter()
            .flat_map(|(_, m)| m.inputs.iter().map(String::as_str))
            .collect();
        let committed: BTreeSet<&str> = manifests.iter().map(|(_, m)| m.output.as_str()).collect();
        // Inside the layer only: not its own folder marker (`bronze/user-events/`,
        // made by setup-aws, lists as `bronze/user-events`).
        let base = format!("{}/", prefix.trim_matches('/'));
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .filter(|e| e.key.starts_with(&base))
            .filter(|e| folder_of(&e.key).is_some())
            .filter(|e| !superseded.contains(e.key.as_str()))
            .filter(|e| {
                let name = e.key.rsplit('/').next().unwrap_or_default();
                !name.starts_with("c-") || committed.contains(e.key.as_str())
            })
            .collect())
    }

    /// The keys of the compaction manifests under `prefix` (they are only
    /// ever added).
    async fn manifest_keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|e| e.key)
            .filter(|k| k.contains(&format!("/{COMPACTED}/")))
            .collect())
    }

    /// Reads every live file under `prefix`: what a reader must use while a
    /// compaction may run. A listing is not a snapshot, so the read is
    /// checked: if a compaction committed meanwhile (a manifest appeared) or
    /// a listed file vanished, it starts over.
    /// Only files whose key passes `keep` are read (e.g. one date).
    pub async fn read_live(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::new();
        self.visit_live(prefix, keep, &mut |read| match read {
            LiveRead::File(key, bytes) => out.push((key, bytes)),
            LiveRead::Listed(_) => out.clear(),
        })
        .await?;
        Ok(out)
    }

    /// [`Lake::read_live`] one file at a time, in key order, so a reader
    /// holds one file's bytes, not the layer's. On [`LiveRead::Listed`] the
    /// visitor must forget every file it was given before.
    pub async fn visit_live(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
        visit: &mut (dyn FnMut(LiveRead) + Send),
    ) -> Result<()> {
        for _ in 0..20 {
            let before = self.manifest_keys(prefix).await?;
            let mut vanished = false;
            let entries: Vec<Entry> = self
                .live_files(prefix)
                .await?
                .into_iter()
                .filter(|e| keep(&e.key))
                .collect();
            visit(LiveRead::Listed(entries.clone()));
            // Several GETs in flight (an S3 round trip per small object adds
            // up), in key order, about 64 MiB of them at a time.
            let average = entries.iter().map(|e| e.size).sum::<u64>() / entries.len().max(1) as u64;
            let in_flight = ((64u64 << 20) / average.max(1)).clamp(1, 16) as usize;
            let mut reads = futures_util::stream::iter(entries)
                .map(|entry| async move {
                    let bytes = self.get(&entry.key).await;
                    (entry.key, bytes)
                })
                .buffered(in_flight);
            while let Some((key, bytes)) = reads.next().await {
                match bytes? {
                    Some(bytes) => visit(LiveRead::File(key, bytes)),
                    None => {
                        vanished = true;
                        break;
                    }
                }
            }
            drop(reads);
            if !vanished && self.manifest_keys(prefix).await? == before {
                return Ok(());
            }
        }
        Err(crate::LakeError::Corrupt {
            url: self.url().to_string(),
            key: prefix.to_string(),
            reason: "files kept changing under 20 reads in a row (compactions back to back?)"
                .into(),
        })
    }

    /// Compacts the JSON-lines files of every partition under `prefix`.
    pub async fn compact(&self, prefix: &str, options: CompactOptions) -> Result<CompactReport> {
        self.compact_with(prefix, options, &JsonLines).await
    }

    /// Compacts every partition under `prefix`, each file type as `merger` says.
    pub async fn compact_with(
        &self,
        prefix: &str,
        options: CompactOptions,
        merger: &dyn Merger,
    ) -> Result<CompactReport> {
        // Finish what a crashed compaction left: inputs named by a manifest
        // but not yet deleted.
        let manifests = self.manifests(prefix).await?;
        for (_, manifest) in &manifests {
            for input in &manifest.inputs {
                self.delete(input).await?;
            }
        }
        let mut by_folder: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for entry in self.live_files(prefix).await? {
            if let Some(folder) = folder_of(&entry.key) {
                by_folder.entry(folder.to_string()).or_default().push(entry);
            }
        }
        let mut report = CompactReport {
            partitions: by_folder.len(),
            ..Default::default()
        };
        for (folder, entries) in by_folder {
            report.files_before += entries.len();
            let (old, young): (Vec<Entry>, Vec<Entry>) = entries
                .into_iter()
                .partition(|e| options.now_ms - e.modified_ms >= options.min_age_ms);
            report.files_after += young.len();
            // Files already near the target, and types the merger leaves
            // alone, stay as they are.
            let (kept, small): (Vec<Entry>, Vec<Entry>) = old.into_iter().partition(|e| {
                e.size >= options.target_size / 2 || merger.output(extension(&e.key)).is_none()
            });
            report.files_after += kept.len();
            let mut by_type: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
            for entry in small {
                by_type
                    .entry(extension(&entry.key).to_string())
                    .or_default()
                    .push(entry);
            }
            for (ext, small) in by_type {
                let out_ext = merger.output(&ext).expect("filtered above");
                let mut groups: Vec<Vec<Entry>> = Vec::new();
                let mut size = 0;
                for entry in small {
                    if groups.is_empty() || size + entry.size > options.target_size {
                        groups.push(Vec::new());
                        size = 0;
                    }
                    size += entry.size;
                    groups.last_mut().expect("pushed above").push(entry);
                }
                for group in groups {
                    // One file of the wanted type already: nothing to gain.
                    if group.len() == 1 && out_ext == ext {
                        report.files_after += 1;
                        continue;
                    }
                    let keys: Vec<String> = group.iter().map(|e| e.key.clone()).collect();
                    let id = group_id(&keys);
                    let output = format!("{folder}/c-{id}.{out_ext}");
                    let mut inputs = Vec::with_capacity(keys.len());
                    for key in &keys {
                        inputs.push((key.clone(), self.get(key).await?.unwrap_or_default()));
                    }
                    let merged = merger.merge(&ext, &inputs).map_err(|reason| {
                        crate::LakeError::Corrupt {
                            url: self.url().to_string(),
                            key: folder.clone(),
                            reason: format!("cannot compact: {reason}"),
                        }
                    })?;
                    report.bytes += inputs.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                    self.put(&output, merged).await?;
                    let manifest = CompactionManifest {
                        output: output.clone(),
                        inputs: keys.clone(),
                    };
                    self.put(
                        &format!("{folder}/{COMPACTED}/{id}.json"),
                        Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serializes")),
                    )
                    .await?;
                    for input in &keys {
                        self.delete(input).await?;
                    }
                    report.files_after += 1;
                    report.outputs.push(output);
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_the_keys_only() {
        let a = group_id(&["x/1.json".into(), "x/2.json".into()]);
        assert_eq!(a, group_id(&["x/1.json".into(), "x/2.json".into()]));
        assert_ne!(a, group_id(&["x/1.json".into(), "x/3.json".into()]));
        assert_eq!(folder_of("b/date=1/p0.json"), Some("b/date=1"));
        assert_eq!(folder_of("b/date=1/_compacted/x.json"), None);
    }
}
