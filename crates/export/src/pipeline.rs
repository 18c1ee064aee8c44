//! The exporter: change stream (or table scan) → buffers → files and
//! manifests → warehouse, with checkpoints in the lake and dead letters.
//!
//! Order of writes, and why a crash anywhere loses nothing and doubles
//! nothing in the warehouse:
//! 1. files, then their manifest, then dead letters of the same stretch;
//! 2. the source's checkpoint (a crash before it re-reads the stretch: new
//!    files, a new manifest, rows loaded again with versions the warehouse
//!    already has, so nothing changes);
//! 3. loads: each manifest in one warehouse transaction that records its id,
//!    so a manifest loads once; then the manifest moves to `loaded/`.

use crate::change::{Change, ChangeStream, FeatureTable, ShardLag, TableScan};
use crate::files::{Buffer, ExportLayout, Part, PendingLoad, encode};
use crate::warehouse::{BeforeCommit, Load, LoadError, LoadReport, Warehouse};
use crate::{ExportError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use movierec_config::ExportConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Changes asked of the stream per poll.
const POLL_MAX: usize = 10_000;
/// The wait between polls of a caught-up stream.
const IDLE_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_file_bytes: u64,
    pub max_file_age: Duration,
    pub max_record_bytes: u64,
    pub max_attempts: u32,
    pub page_size: usize,
    /// The first wait before retrying a load (doubled per attempt, at most 8 s).
    pub retry_base: Duration,
}

impl From<&ExportConfig> for Settings {
    fn from(config: &ExportConfig) -> Self {
        Self {
            max_file_bytes: config.max_file_bytes,
            max_file_age: Duration::from_secs(config.max_file_age_s),
            max_record_bytes: config.max_record_bytes,
            max_attempts: config.max_attempts,
            page_size: config.page_size,
            retry_base: Duration::from_millis(500),
        }
    }
}

/// A record that did not reach the warehouse, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub table: String,
    pub key: Option<String>,
    pub reason: String,
    /// The CSV row (cut to 4 KiB), as it was in the file or would have been.
    pub record: String,
    pub load_id: Option<String>,
    pub at: String,
}

/// Where dead letters go besides the lake (a Kafka topic).
#[async_trait]
pub trait DeadLetterTopic: Send + Sync {
    fn describe(&self) -> String;
    async fn send(&self, letters: &[DeadLetter]) -> std::result::Result<(), String>;
}

/// Stops `cdc run` / `cdc backfill` at the next safe point (Ctrl-C, SIGTERM).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub changes: u64,
    pub files: u64,
    pub manifests: u64,
    pub loads: u64,
    pub rows_loaded: u64,
    pub dead_letters: u64,
    pub load_retries: u64,
    /// Backfill: pages read in this run.
    pub pages: u64,
}

/// The last load, as `cdc status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastLoad {
    pub load_id: String,
    pub table: String,
    pub rows: u64,
    pub rejected: u64,
    pub at: String,
}

/// A backfill's checkpoint, saved after every page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackfillState {
    /// The last evaluated key: the next page starts after it.
    pub after: Option<Value>,
    /// Files written since the last manifest.
    pub parts: Vec<Part>,
    pub pages: u64,
    pub rows: u64,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub source: Option<String>,
    pub shards: Vec<ShardLag>,
    pub checkpoint: Option<Value>,
    pub last_load: Option<LastLoad>,
    pub waiting_loads: u64,
    pub waiting_files: u64,
    pub waiting_bytes: u64,
    pub dead_letters: u64,
    pub backfills: BTreeMap<String, BackfillState>,
}

pub struct Exporter {
    layout: ExportLayout,
    settings: Settings,
    warehouse: Option<Box<dyn Warehouse>>,
    topic: Option<Box<dyn DeadLetterTopic>>,
}

impl Exporter {
    pub fn new(
        layout: ExportLayout,
        settings: Settings,
        warehouse: Option<Box<dyn Warehouse>>,
        topic: Option<Box<dyn DeadLetterTopic>>,
    ) -> Self {
        Self {
            layout,
            settings,
            warehouse,
            topic,
        }
    }

    pub fn layout(&self) -> &ExportLayout {
        &self.layout
    }

    fn state_key(&self, name: &str) -> String {
        format!("{}_state/{name}.json", self.layout.prefix)
    }

    async fn read_state<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>> {
        let key = self.state_key(name);
        match self.layout.lake.get(&key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ExportError::Corrupt(format!("{key}: {e}"))),
        }
    }

    async fn write_state<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let json = serde_json::to_vec_pretty(value).expect("state serializes");
        self.layout
            .lake
            .put(&self.state_key(name), Bytes::from(json))
            .await?;
        Ok(())
    }

    /// Writes dead letters to the lake (one file per `name`: a retry of the
    /// same load replaces it), then to the topic if there is one.
    async fn dead_letters(&self, table: &str, name: &str, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for letter in letters {
            serde_json::to_writer(&mut lines, letter).expect("a letter serializes");
            lines.push(b'\n');
        }
        let key = format!(
            "{}{table}/date={}/{name}.jsonl",
            self.layout.dlq_prefix(),
            Utc::now().format("%Y-%m-%d")
        );
        self.layout.lake.put(&key, Bytes::from(lines)).await?;
        if let Some(topic) = &self.topic {
            topic
                .send(letters)
                .await
                .map_err(|e| ExportError::DeadLetters(format!("{}: {e}", topic.describe())))?;
        }
        tracing::warn!(
            count = letters.len(),
            table,
            file = key,
            "records dead-lettered: {}",
            letters[0].reason
        );
        Ok(())
    }

    fn oversized(&self, change: &Change) -> Option<DeadLetter> {
        if (change.source_bytes as u64) <= self.settings.max_record_bytes {
            return None;
        }
        let line = encode(change);
        Some(DeadLetter {
            table: change.table.name().into(),
            key: Some(cut(&change.key, 256)),
            reason: format!(
                "a record of {} bytes is over export.max_record_bytes ({})",
                change.source_bytes, self.settings.max_record_bytes
            ),
            record: cut(&String::from_utf8_lossy(&line), 4096),
            load_id: None,
            at: Utc::now().to_rfc3339(),
        })
    }

    /// Follows the change stream until `stop`, or until it has been idle for
    /// `until_idle` (then everything buffered is written and loaded).
    pub async fn run(
        &self,
        stream: &mut dyn ChangeStream,
        until_idle: Option<Duration>,
        stop: &StopFlag,
    ) -> Result<Summary> {
        let mut summary = Summary::default();
        if let Some(warehouse) = &self.warehouse {
            warehouse.prepare().await.map_err(ExportError::from_load)?;
        }
        self.load_pending(&mut summary).await?;
        let checkpoint: Option<Value> = self.read_state("stream").await?;
        stream
            .resume(checkpoint)
            .await
            .map_err(ExportError::Source)?;
        tracing::info!(source = stream.describe(), "exporting changes");

        let mut buffers: BTreeMap<FeatureTable, Buffer> = FeatureTable::ALL
            .into_iter()
            .map(|t| (t, Buffer::new(t)))
            .collect();
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut letters_since: Option<Instant> = None;
        let mut idle_since = Instant::now();
        loop {
            let stopping = stop.stopped();
            let changes = if stopping {
                Vec::new()
            } else {
                stream.poll(POLL_MAX).await.map_err(ExportError::Source)?
            };
            let caught_up = changes.is_empty();
            if !caught_up {
                idle_since = Instant::now();
            }
            summary.changes += changes.len() as u64;
            for change in &changes {
                match self.oversized(change) {
                    Some(letter) => {
                        letters.push(letter);
                        letters_since.get_or_insert_with(Instant::now);
                    }
                    None => buffers
                        .get_mut(&change.table)
                        .expect("a buffer per table")
                        .push(&encode(change)),
                }
            }
            let idle_done = until_idle.is_some_and(|wait| idle_since.elapsed() >= wait);
            let due = buffers
                .values()
                .any(|b| b.due(self.settings.max_file_bytes, self.settings.max_file_age))
                || letters_since.is_some_and(|t| t.elapsed() >= self.settings.max_file_age);
            if due || stopping || idle_done {
                self.flush(stream, &mut buffers, &mut letters, &mut summary)
                    .await?;
                letters_since = None;
                self.load_pending(&mut summary).await?;
            }
            if stopping || idle_done {
                return Ok(summary);
            }
            if caught_up {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    /// Writes every non-empty buffer as one file with its manifest, the
    /// dead letters, then the stream's checkpoint.
    async fn flush(
        &self,
        stream: &mut dyn ChangeStream,
        buffers: &mut BTreeMap<FeatureTable, Buffer>,
        letters: &mut Vec<DeadLetter>,
        summary: &mut Summary,
    ) -> Result<()> {
        let now = Utc::now();
        for buffer in buffers.values_mut().filter(|b| !b.is_empty()) {
            // One load per file: a load is then at most max_file_bytes.
            for (csv, rows) in buffer.take_files(self.settings.max_file_bytes) {
                let part = self
                    .layout
                    .write_part(buffer.table, &csv, rows, now)
                    .await?;
                self.layout
                    .write_manifest(buffer.table, std::slice::from_ref(&part), now)
                    .await?;
                tracing::info!(file = part.key, rows, bytes = part.bytes, "file written");
                summary.files += 1;
                summary.manifests += 1;
            }
        }
        let mut by_table: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
        for letter in letters.drain(..) {
            by_table
                .entry(letter.table.clone())
                .or_default()
                .push(letter);
        }
        for (table, letters) in by_table {
            let name = format!("export-{}", now.format("%Y%m%dT%H%M%S%3fZ"));
            self.dead_letters(&table, &name, &letters).await?;
            summary.dead_letters += letters.len() as u64;
        }
        let checkpoint = stream.checkpoint();
        self.write_state("stream", &checkpoint).await?;
        stream
            .release(&checkpoint)
            .await
            .map_err(ExportError::Source)?;
        Ok(())
    }

    /// Loads every waiting manifest, oldest first. Connection failures are
    /// retried `max_attempts` times with backoff, then the run stops (the
    /// manifest stays waiting for the next run); rejected rows are isolated
    /// by the warehouse and dead-lettered, the rest loads.
    pub async fn load_pending(&self, summary: &mut Summary) -> Result<()> {
        let Some(warehouse) = &self.warehouse else {
            return Ok(());
        };
        for pending in self.layout.pending().await? {
            let manifest = self.layout.read_manifest(&pending).await?;
            let rows = self.layout.read_rows(&manifest).await?;
            let manifest_url = self.layout.url_of(&pending.manifest_key);
            let load = Load {
                load_id: &pending.load_id,
                table: pending.table,
                manifest_url: &manifest_url,
                rows: &rows,
            };
            let report = self
                .load_with_retries(warehouse.as_ref(), &load, summary)
                .await?;
            if let Some(report) = report {
                self.after_load(&pending, &report, summary).await?;
            }
            self.layout.mark_loaded(&pending).await?;
        }
        Ok(())
    }

    /// `None`: the whole load was dead-lettered (a warehouse that cannot say
    /// which row it rejected, after every attempt).
    async fn load_with_retries(
        &self,
        warehouse: &dyn Warehouse,
        load: &Load<'_>,
        summary: &mut Summary,
    ) -> Result<Option<LoadReport>> {
        let mut attempt = 1;
        loop {
            let error = match warehouse.load(load, self).await {
                Ok(report) => return Ok(Some(report)),
                Err(error) => error,
            };
            let last = attempt >= self.settings.max_attempts;
            match error {
                LoadError::Transient(message) if !last => {
                    let wait = self
                        .settings
                        .retry_base
                        .saturating_mul(1 << (attempt - 1).min(5))
                        .min(Duration::from_secs(8));
                    tracing::warn!(
                        load = load.load_id,
                        attempt,
                        "load failed, retrying in {wait:?}: {message}"
                    );
                    summary.load_retries += 1;
                    tokio::time::sleep(wait).await;
                }
                LoadError::Rejected(message) if !last => {
                    tracing::warn!(
                        load = load.load_id,
                        attempt,
                        "load rejected, retrying: {message}"
                    );
                    summary.load_retries += 1;
                }
                LoadError::Rejected(message) => {
                    let letter = DeadLetter {
                        table: load.table.name().into(),
                        key: None,
                        reason: format!("the whole load was rejected {attempt} times: {message}"),
                        record: load.manifest_url.to_string(),
                        load_id: Some(load.load_id.to_string()),
                        at: Utc::now().to_rfc3339(),
                    };
                    self.dead_letters(load.table.name(), load.load_id, &[letter])
                        .await?;
                    summary.dead_letters += 1;
                    return Ok(None);
                }
                LoadError::Transient(message) | LoadError::Fatal(message) => {
                    return Err(ExportError::Load {
                        load_id: load.load_id.to_string(),
                        warehouse: warehouse.describe(),
                        attempts: attempt,
                        message,
                    });
                }
            }
            attempt += 1;
        }
    }

    async fn after_load(
        &self,
        pending: &PendingLoad,
        report: &LoadReport,
        summary: &mut Summary,
    ) -> Result<()> {
        if report.already_loaded {
            tracing::info!(load = pending.load_id, "already loaded");
            return Ok(());
        }
        summary.dead_letters += report.rejected.len() as u64;
        summary.loads += 1;
        summary.rows_loaded += report.rows;
        tracing::info!(
            load = pending.load_id,
            rows = report.rows,
            rejected = report.rejected.len(),
            "loaded"
        );
        self.write_state(
            "last-load",
            &LastLoad {
                load_id: pending.load_id.clone(),
                table: pending.table.name().into(),
                rows: report.rows,
                rejected: report.rejected.len() as u64,
                at: Utc::now().to_rfc3339(),
            },
        )
        .await
    }

    /// Exports a whole table through the same files, manifests and loads,
    /// a page at a time with a checkpoint after each: a killed backfill
    /// resumes after its last saved page. `restart` starts a finished (or
    /// any) backfill over.
    pub async fn backfill(
        &self,
        scan: &mut dyn TableScan,
        table: FeatureTable,
        restart: bool,
        stop: &StopFlag,
    ) -> Result<(Summary, BackfillState)> {
        let name = format!("backfill-{}", table.name());
        let mut state: BackfillState = if restart {
            BackfillState::default()
        } else {
            self.read_state(&name).await?.unwrap_or_default()
        };
        let mut summary = Summary::default();
        if let Some(warehouse) = &self.warehouse {
            warehouse.prepare().await.map_err(ExportError::from_load)?;
        }
        self.load_pending(&mut summary).await?;
        if state.done {
            return Ok((summary, state));
        }
        while !stop.stopped() {
            let (changes, next) = scan
                .page(table, state.after.clone(), self.settings.page_size)
                .await
                .map_err(ExportError::Source)?;
            let now = Utc::now();
            let mut csv = Vec::new();
            let mut letters = Vec::new();
            for change in &changes {
                match self.oversized(change) {
                    Some(letter) => letters.push(letter),
                    None => csv.extend_from_slice(&encode(change)),
                }
            }
            let rows = changes.len() - letters.len();
            if rows > 0 {
                let part = self.layout.write_part(table, &csv, rows, now).await?;
                summary.files += 1;
                state.parts.push(part);
            }
            if !letters.is_empty() {
                let page = format!("backfill-page-{}", state.pages);
                self.dead_letters(table.name(), &page, &letters).await?;
                summary.dead_letters += letters.len() as u64;
            }
            summary.changes += changes.len() as u64;
            summary.pages += 1;
            state.pages += 1;
            state.rows += changes.len() as u64;
            state.after = next;
            let end = state.after.is_none();
            let raw: u64 = state.parts.iter().map(|p| p.raw_bytes).sum();
            if (end || raw >= self.settings.max_file_bytes) && !state.parts.is_empty() {
                self.layout.write_manifest(table, &state.parts, now).await?;
                summary.manifests += 1;
                state.parts.clear();
            }
            state.done = end;
            self.write_state(&name, &state).await?;
            if !state.parts.is_empty() && !end {
                continue;
            }
            self.load_pending(&mut summary).await?;
            if end {
                break;
            }
        }
        Ok((summary, state))
    }

    /// Where the export stands.
    pub async fn status(&self, stream: Option<&mut dyn ChangeStream>) -> Result<Status> {
        let checkpoint: Option<Value> = self.read_state("stream").await?;
        let (source, shards) = match stream {
            Some(stream) => (
                Some(stream.describe()),
                stream
                    .lag(checkpoint.as_ref())
                    .await
                    .map_err(ExportError::Source)?,
            ),
            None => (None, Vec::new()),
        };
        let mut waiting_files = 0;
        let mut waiting_bytes = 0;
        let pending = self.layout.pending().await?;
        for load in &pending {
            let manifest = self.layout.read_manifest(load).await?;
            waiting_files += manifest.entries.len() as u64;
            waiting_bytes += manifest
                .entries
                .iter()
                .map(|e| e.meta.content_length)
                .sum::<u64>();
        }
        let mut dead_letters = 0;
        for entry in self.layout.lake.list(&self.layout.dlq_prefix()).await? {
            if let Some(bytes) = self.layout.lake.get(&entry.key).await? {
                dead_letters += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        let mut backfills = BTreeMap::new();
        for table in FeatureTable::ALL {
            if let Some(state) = self
                .read_state::<BackfillState>(&format!("backfill-{}", table.name()))
                .await?
            {
                backfills.insert(table.name().to_string(), state);
            }
        }
        Ok(Status {
            source,
            shards,
            checkpoint,
            last_load: self.read_state("last-load").await?,
            waiting_loads: pending.len() as u64,
            waiting_files,
            waiting_bytes,
            dead_letters,
            backfills,
        })
    }
}

#[async_trait]
impl BeforeCommit for Exporter {
    async fn rejected(
        &self,
        load: &Load<'_>,
        rows: &[(usize, String)],
    ) -> std::result::Result<(), String> {
        let letters: Vec<DeadLetter> = rows
            .iter()
            .map(|(index, reason)| {
                let line = String::from_utf8_lossy(&load.rows[*index]).into_owned();
                DeadLetter {
                    table: load.table.name().into(),
                    key: line.split(',').next().map(|k| cut(k, 256)),
                    reason: reason.clone(),
                    record: cut(line.trim_end(), 4096),
                    load_id: Some(load.load_id.to_string()),
                    at: Utc::now().to_rfc3339(),
                }
            })
            .collect();
        self.dead_letters(load.table.name(), load.load_id, &letters)
            .await
            .map_err(|e| format!("cannot write the dead letters: {e}"))
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
