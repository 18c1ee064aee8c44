//! The export's files: gzip CSV rows buffered per table (Firehose's rule: a
//! file when the buffer is big or old enough), written under
//! `<prefix><table>/date=YYYY-MM-DD/hour=HH/`, and one manifest per load in
//! Redshift's format, so `COPY … MANIFEST` and the local loader read the
//! same thing.

use crate::change::{Change, FeatureTable, Op};
use crate::{ExportError, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use movierec_lake::Lake;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::time::Instant;

/// The columns of every file, in order: the key, `U`/`D`, the version, then
/// [`crate::VALUE_COLUMNS`].
pub const FILE_COLUMNS: usize = 7;

/// One change as a CSV line (with its newline).
pub fn encode(change: &Change) -> Vec<u8> {
    // A row is ~50 bytes: the default 8 KiB buffer per row cost more than
    // the rest of the export's reading side.
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(128)
        .from_writer(Vec::with_capacity(64));
    let op = match change.op {
        Op::Upsert => "U",
        Op::Delete => "D",
    };
    let mut fields: Vec<&str> = vec![&change.key, op, &change.version];
    match change.op {
        Op::Upsert => fields.extend(change.values.iter().map(String::as_str)),
        Op::Delete => fields.extend(["", "", "", ""]),
    }
    fields.resize(FILE_COLUMNS, "");
    writer
        .write_record(&fields)
        .expect("writing to a Vec cannot fail");
    writer.into_inner().expect("writing to a Vec cannot fail")
}

/// The rows of one table waiting for a file.
#[derive(Debug)]
pub struct Buffer {
    pub table: FeatureTable,
    pub csv: Vec<u8>,
    /// Where each row ends in `csv`.
    ends: Vec<usize>,
    pub oldest: Option<Instant>,
}

impl Buffer {
    pub fn new(table: FeatureTable) -> Self {
        Self {
            table,
            csv: Vec::new(),
            ends: Vec::new(),
            oldest: None,
        }
    }

    pub fn push(&mut self, line: &[u8]) {
        self.oldest.get_or_insert_with(Instant::now);
        self.csv.extend_from_slice(line);
        self.ends.push(self.csv.len());
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Whether Firehose's rule says write now: `max_bytes` held, or the
    /// oldest row has waited `max_age`.
    pub fn due(&self, max_bytes: u64, max_age: std::time::Duration) -> bool {
        self.csv.len() as u64 >= max_bytes || self.oldest.is_some_and(|t| t.elapsed() >= max_age)
    }

    /// Empties the buffer into files of at most `max_bytes` each (a row
    /// larger than that alone), split between rows: (CSV, rows) per file.
    pub fn take_files(&mut self, max_bytes: u64) -> Vec<(Vec<u8>, usize)> {
        self.oldest = None;
        let csv = std::mem::take(&mut self.csv);
        let ends = std::mem::take(&mut self.ends);
        let mut files = Vec::new();
        let (mut start, mut rows) = (0usize, 0usize);
        for (i, &end) in ends.iter().enumerate() {
            rows += 1;
            let next_end = ends.get(i + 1).copied();
            let full = next_end.is_none_or(|next| (next - start) as u64 > max_bytes);
            if full {
                files.push((csv[start..end].to_vec(), rows));
                start = end;
                rows = 0;
            }
        }
        files
    }
}

/// A data file written to the lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub key: String,
    /// Compressed size (Redshift's `content_length`).
    pub bytes: u64,
    /// Uncompressed CSV bytes (what the size rule counts).
    pub raw_bytes: u64,
    pub rows: u64,
}

/// A manifest in Redshift's format; the local loader reads it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub url: String,
    pub mandatory: bool,
    pub meta: EntryMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub content_length: u64,
}

/// Where a load's manifest waits, and where it goes once loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLoad {
    pub table: FeatureTable,
    pub load_id: String,
    pub manifest_key: String,
}

/// Names and writes the export's objects under one prefix of the lake.
#[derive(Debug, Clone)]
pub struct ExportLayout {
    pub lake: Lake,
    /// `exports/`, always ending in `/`.
    pub prefix: String,
}

impl ExportLayout {
    pub fn new(lake: Lake, prefix: &str) -> Self {
        Self {
            lake,
            prefix: format!("{}/", prefix.trim_matches('/')),
        }
    }

    pub fn pending_prefix(&self) -> String {
        format!("{}_manifests/pending/", self.prefix)
    }

    pub fn loaded_prefix(&self) -> String {
        format!("{}_manifests/loaded/", self.prefix)
    }

    pub fn dlq_prefix(&self) -> String {
        format!("{}_dlq/", self.prefix)
    }

    /// The URL a manifest names a key by (and the loader maps back).
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.lake.url())
    }

    pub fn key_of<'a>(&self, url: &'a str) -> Option<&'a str> {
        url.strip_prefix(self.lake.url())?.strip_prefix('/')
    }

    /// Gzips `csv` and writes it as a data file of `table` at `now`; the name
    /// is the content's hash, so a rewrite of the same rows is the same file.
    pub async fn write_part(
        &self,
        table: FeatureTable,
        csv: &[u8],
        rows: usize,
        now: DateTime<Utc>,
    ) -> Result<Part> {
        let hash = format!("{:x}", Sha256::digest(csv))[..16].to_string();
        let key = format!(
            "{}{}/date={}/hour={}/{}-{hash}.csv.gz",
            self.prefix,
            table.name(),
            now.format("%Y-%m-%d"),
            now.format("%H"),
            now.format("%Y%m%dT%H%M%S%3fZ"),
        );
        let mut gz = GzEncoder::new(Vec::with_capacity(csv.len() / 4), Compression::fast());
        gz.write_all(csv)
            .and_then(|()| gz.flush())
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let compressed = gz
            .finish()
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let bytes = compressed.len() as u64;
        self.lake.put(&key, Bytes::from(compressed)).await?;
        Ok(Part {
            key,
            bytes,
            raw_bytes: csv.len() as u64,
            rows: rows as u64,
        })
    }

    /// Writes the manifest of one load of `parts`; its id is the time and
    /// a hash of the parts, so writing it again after a crash names the
    /// same load (loaded once).
    pub async fn write_manifest(
        &self,
        table: FeatureTable,
        parts: &[Part],
        now: DateTime<Utc>,
    ) -> Result<PendingLoad> {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part.key.as_bytes());
        }
        let first = parts
            .iter()
            .map(|p| p.key.rsplit('/').next().unwrap_or_default())
            .min()
            .unwrap_or_default();
        // Sorted by the first part's time, so loads are listed in order.
        let stamp = first
            .split('-')
            .next()
            .filter(|s| !s.is_empty())
            .map_or_else(
                || now.format("%Y%m%dT%H%M%S%3fZ").to_string(),
                str::to_string,
            );
        let load_id = format!("{stamp}-{}", &format!("{:x}", hasher.finalize())[..16]);
        let manifest = Manifest {
            entries: parts
                .iter()
                .map(|p| ManifestEntry {
                    url: self.url_of(&p.key),
                    mandatory: true,
                    meta: EntryMeta {
                        content_length: p.bytes,
                    },
                })
                .collect(),
        };
        let manifest_key = format!(
            "{}{}/{load_id}.manifest",
            self.pending_prefix(),
            table.name()
        );
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        self.lake.put(&manifest_key, Bytes::from(json)).await?;
        Ok(PendingLoad {
            table,
            load_id,
            manifest_key,
        })
    }

    /// The loads waiting, oldest first.
    pub async fn pending(&self) -> Result<Vec<PendingLoad>> {
        let mut loads: Vec<PendingLoad> = self
            .lake
            .list(&self.pending_prefix())
            .await?
            .into_iter()
            .filter_map(|entry| {
                let rest = entry.key.strip_prefix(&self.pending_prefix())?;
                let (table, file) = rest.split_once('/')?;
                Some(PendingLoad {
                    table: FeatureTable::parse(table)?,
                    load_id: file.strip_suffix(".manifest")?.to_string(),
                    manifest_key: entry.key.clone(),
                })
            })
            .collect();
        loads.sort_by(|a, b| a.load_id.cmp(&b.load_id));
        Ok(loads)
    }

    pub async fn read_manifest(&self, load: &PendingLoad) -> Result<Manifest> {
        let bytes = self
            .lake
            .get(&load.manifest_key)
            .await?
            .ok_or_else(|| ExportError::Missing(load.manifest_key.clone()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ExportError::Corrupt(format!("{}: {e}", load.manifest_key)))
    }

    /// The CSV lines of a load's files, in manifest order.
    pub async fn read_rows(&self, manifest: &Manifest) -> Result<Vec<Vec<u8>>> {
        let mut rows = Vec::new();
        for entry in &manifest.entries {
            let key = self
                .key_of(&entry.url)
                .ok_or_else(|| {
                    ExportError::Corrupt(format!(
                        "{} is not in the lake {}",
                        entry.url,
                        self.lake.url()
                    ))
                })?
                .to_string();
            let compressed = self.lake.get(&key).await?;
            let Some(compressed) = compressed else {
                if entry.mandatory {
                    return Err(ExportError::Missing(key));
                }
                continue;
            };
            let mut csv = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&compressed[..]),
                &mut csv,
            )
            .map_err(|e| ExportError::Corrupt(format!("{key}: {e}")))?;
            rows.extend(split_lines(&csv));
        }
        Ok(rows)
    }

    /// Moves a loaded manifest out of the pending folder.
    pub async fn mark_loaded(&self, load: &PendingLoad) -> Result<()> {
        if let Some(bytes) = self.lake.get(&load.manifest_key).await? {
            let to = format!(
                "{}{}/{}.manifest",
                self.loaded_prefix(),
                load.table.name(),
                load.load_id
            );
            self.lake.put(&to, bytes).await?;
        }
        self.lake.delete(&load.manifest_key).await?;
        Ok(())
    }
}

/// CSV lines, each with its newline. The export's values never hold a
/// newline inside quotes except in a rejected (poison) value, which stays in
/// one record as the csv crate quotes it, so lines are split on the record
/// boundaries the csv reader finds.
pub fn split_lines(csv: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut lines = Vec::new();
    let mut start = 0usize;
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).unwrap_or(false) {
        let end = reader.position().byte() as usize;
        lines.push(csv[start..end].to_vec());
        start = end;
    }
    if start < csv.len() {
        lines.push(csv[start..].to_vec());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, count: &str) -> Change {
        Change {
            table: FeatureTable::UserFeatures,
            key: key.into(),
            op: Op::Upsert,
            version: "3".into(),
            values: vec![
                count.into(),
                "3.5".into(),
                "0.5".into(),
                "2025-03-15T10:00:00Z".into(),
            ],
            source_bytes: 10,
        }
    }

    #[test]
    fn rows_are_csv_lines_with_seven_columns() {
        assert_eq!(
            encode(&change("7", "2")),
            b"7,U,3,2,3.5,0.5,2025-03-15T10:00:00Z\n"
        );
        let delete = Change {
            op: Op::Delete,
            values: vec![],
            ..change("8", "")
        };
        assert_eq!(encode(&delete), b"8,D,3,,,,\n");
        // A hostile value stays one record, quoted.
        let odd = encode(&change("9", "many,\n\"x\""));
        let mut csv = encode(&change("1", "1"));
        csv.extend_from_slice(&odd);
        csv.extend_from_slice(&encode(&change("2", "2")));
        let lines = split_lines(&csv);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], odd);
    }

    #[test]
    fn the_buffer_is_due_by_size_or_age() {
        let mut buffer = Buffer::new(FeatureTable::UserFeatures);
        let hour = std::time::Duration::from_secs(3600);
        assert!(!buffer.due(10, hour));
        buffer.push(b"12345\n");
        assert!(!buffer.due(10, hour));
        buffer.push(b"12345\n");
        assert!(buffer.due(10, hour));
        buffer.push(b"1234567890123\n");
        buffer.push(b"1\n");
        let files = buffer.take_files(12);
        let sizes: Vec<(usize, usize)> =
            files.iter().map(|(csv, rows)| (csv.len(), *rows)).collect();
        assert_eq!(sizes, vec![(12, 2), (14, 1), (2, 1)]);
        assert!(buffer.is_empty());
        buffer.push(b"1\n");
        assert!(buffer.due(1 << 20, std::time::Duration::ZERO));
    }
}
