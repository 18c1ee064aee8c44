//! `lake compact`: the lake's small-file compaction, with the bronze
//! layer's formats (JSON lines kept or turned into Parquet; Parquet merged).

use anyhow::{Context, Result};
use bytes::Bytes;
use movierec_batch::parquet_tables::{bronze_json_to_parquet, concat_parquet};
use movierec_config::Config;
use movierec_lake::{CompactOptions, Merger, concat_lines};

/// JSON lines → JSON lines or Parquet; Parquet → Parquet.
struct BronzeMerger {
    json_to_parquet: bool,
}

impl Merger for BronzeMerger {
    fn output(&self, ext: &str) -> Option<&'static str> {
        match ext {
            "json" if self.json_to_parquet => Some("parquet"),
            "json" => Some("json"),
            "parquet" => Some("parquet"),
            _ => None,
        }
    }

    fn merge(&self, ext: &str, inputs: &[(String, Bytes)]) -> Result<Bytes, String> {
        match ext {
            "json" if self.json_to_parquet => bronze_json_to_parquet(inputs),
            "json" => Ok(concat_lines(inputs)),
            _ => concat_parquet(inputs),
        }
    }
}

pub async fn run(
    config: &Config,
    prefix: Option<&str>,
    target_size: u64,
    min_age_ms: u64,
    json_to_parquet: bool,
) -> Result<()> {
    let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
    let prefix = prefix.unwrap_or(&config.aws.s3.bronze_prefix);
    let clock = std::time::Instant::now();
    let report = lake
        .compact_with(
            prefix,
            CompactOptions {
                target_size,
                min_age_ms: min_age_ms as i64,
                now_ms: chrono::Utc::now().timestamp_millis(),
            },
            &BronzeMerger { json_to_parquet },
        )
        .await
        .with_context(|| format!("cannot compact {}/{prefix}", lake.url()))?;
    let seconds = clock.elapsed().as_secs_f64();
    println!(
        "compacted {}/{prefix}: {} partitions, {} files -> {}, {:.1} MB merged in {seconds:.2}s ({:.1} MB/s)",
        lake.url(),
        report.partitions,
        report.files_before,
        report.files_after,
        report.bytes as f64 / 1e6,
        report.bytes as f64 / 1e6 / seconds.max(1e-9)
    );
    Ok(())
}
