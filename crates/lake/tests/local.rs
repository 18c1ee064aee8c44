//! The lake on local files: what the embedded mode and the batch use.

use bytes::Bytes;
use movierec_config::AwsConfig;
use movierec_lake::{Lake, LakeError};

#[tokio::test]
async fn objects_round_trip_and_replace_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake = Lake::open(root.to_str().unwrap(), &AwsConfig::default()).unwrap();
    assert!(root.is_dir(), "the folder is created");

    let key = "bronze/user-events/date=2025-03-15/p0-00000000000000000000.json";
    assert_eq!(lake.get(key).await.unwrap(), None);
    lake.put(key, Bytes::from_static(b"{\"a\":1}\n"))
        .await
        .unwrap();
    lake.put(key, Bytes::from_static(b"{\"a\":1}\n{\"a\":2}\n"))
        .await
        .unwrap();
    assert_eq!(
        lake.get(key).await.unwrap().unwrap(),
        Bytes::from_static(b"{\"a\":1}\n{\"a\":2}\n")
    );
    assert!(root.join(key).is_file(), "the same layout on disk");
    lake.put(
        "bronze/user-events/date=2025-03-16/p1-00000000000000000007.json",
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    lake.put(
        "silver/user-features/part-0.parquet",
        Bytes::from_static(b"yz"),
    )
    .await
    .unwrap();

    let bronze = lake.list("bronze/user-events/").await.unwrap();
    let listed: Vec<(String, u64)> = bronze.iter().map(|e| (e.key.clone(), e.size)).collect();
    assert_eq!(
        listed,
        [
            (key.to_string(), 16),
            (
                "bronze/user-events/date=2025-03-16/p1-00000000000000000007.json".to_string(),
                1
            ),
        ]
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        bronze
            .iter()
            .all(|e| (now_ms - e.modified_ms).abs() < 60_000)
    );
    lake.delete(key).await.unwrap();
    lake.delete(key).await.unwrap(); // deleting what is gone is fine
    assert_eq!(lake.list("bronze").await.unwrap().len(), 1);
    assert!(lake.list("gold/").await.unwrap().is_empty());

    let same = Lake::open(&format!("file://{}", root.display()), &AwsConfig::default()).unwrap();
    assert_eq!(same.list("silver").await.unwrap().len(), 1);
}

#[test]
fn unsupported_locations_are_named() {
    for bad in ["gs://bucket", "s3://", ""] {
        let error = Lake::open(bad, &AwsConfig::default()).unwrap_err();
        assert!(matches!(error, LakeError::BadUrl(_)), "{bad}: {error}");
        assert!(error.to_string().contains("s3://BUCKET"), "{error}");
    }
}

#[tokio::test]
async fn datasets_switch_whole_and_keep_one_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), &AwsConfig::default()).unwrap();
    let prefix = "silver/user-features/";
    assert_eq!(lake.current_dataset(prefix).await.unwrap(), None);
    for (run, body) in [("r1", "one"), ("r2", "two"), ("r3", "three")] {
        let files = vec![
            (
                "part-0.parquet".to_string(),
                Bytes::from(format!("{body}-a")),
            ),
            (
                "part-1.parquet".to_string(),
                Bytes::from(format!("{body}-b")),
            ),
        ];
        lake.publish_dataset(prefix, run, files, 2).await.unwrap();
    }
    let (manifest, files) = lake.read_dataset(prefix).await.unwrap().unwrap();
    assert_eq!(manifest.run_id, "r3");
    assert_eq!(files, [Bytes::from("three-a"), Bytes::from("three-b")]);
    let mut runs: Vec<String> = lake
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.key.split("run=").nth(1).map(|r| r[..2].to_string()))
        .collect();
    runs.dedup();
    assert_eq!(
        runs,
        ["r2", "r3"],
        "r1 removed, r2 kept for readers in flight"
    );

    // A run that dies after writing its files but before the manifest: the
    // current version is untouched.
    lake.put(
        "silver/user-features/run=r4/part-0.parquet",
        Bytes::from("half"),
    )
    .await
    .unwrap();
    let (manifest, _) = lake.read_dataset(prefix).await.unwrap().unwrap();
    assert_eq!(manifest.run_id, "r3");
}

/// Every line of the layer's live files, sorted: what a reader counts.
async fn live_lines(lake: &Lake, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (_, bytes) in lake.read_live(prefix, &|_| true).await.unwrap() {
        lines.extend(
            String::from_utf8(bytes.to_vec())
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    lines.sort();
    lines
}

fn small_files(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let key = format!(
                "bronze/user-events/date=2025-03-{:02}/p{:03}-{:020}.json",
                10 + i % 4,
                i % 3,
                i
            );
            (
                key,
                format!("{{\"n\":{i}}}\n{{\"n\":{i},\"again\":true}}\n"),
            )
        })
        .collect()
}

fn options(target_size: u64) -> movierec_lake::CompactOptions {
    movierec_lake::CompactOptions {
        target_size,
        min_age_ms: 0,
        now_ms: i64::MAX / 2,
    }
}

#[tokio::test]
async fn compaction_keeps_every_line_once_and_skips_young_files() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), &AwsConfig::default()).unwrap();
    let prefix = "bronze/user-events/";
    for (key, body) in small_files(2000) {
        lake.put(&key, Bytes::from(body)).await.unwrap();
    }
    let before = live_lines(&lake, prefix).await;
    assert_eq!(before.len(), 4000);

    let report = lake.compact(prefix, options(16 * 1024)).await.unwrap();
    assert_eq!((report.partitions, report.files_before), (4, 2000));
    let files = lake.live_files(prefix).await.unwrap();
    assert!(files.len() <= 12, "{} files after compaction", files.len());
    assert_eq!(files.len(), report.files_after);
    assert_eq!(
        live_lines(&lake, prefix).await,
        before,
        "same multiset of lines"
    );

    // Again, with a larger target: compacted files are merged further.
    lake.compact(prefix, options(1 << 20)).await.unwrap();
    assert_eq!(lake.live_files(prefix).await.unwrap().len(), 4);
    assert_eq!(live_lines(&lake, prefix).await, before);

    // Files younger than min_age are left for the consumer.
    lake.put(
        "bronze/user-events/date=2025-03-10/p000-99999999999999999999.json",
        Bytes::from("{\"young\":1}\n"),
    )
    .await
    .unwrap();
    let young = movierec_lake::CompactOptions {
        min_age_ms: 600_000,
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        ..options(1 << 20)
    };
    lake.compact(prefix, young).await.unwrap();
    assert!(
        lake.get("bronze/user-events/date=2025-03-10/p000-99999999999999999999.json")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(live_lines(&lake, prefix).await.len(), 4001);
}

#[tokio::test]
async fn a_compaction_that_died_at_any_step_leaves_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), &AwsConfig::default()).unwrap();
    let prefix = "bronze/user-events/";
    let folder = "bronze/user-events/date=2025-03-10";
    let inputs: Vec<String> = (0..3)
        .map(|i| format!("{folder}/p000-{i:020}.json"))
        .collect();
    for (i, key) in inputs.iter().enumerate() {
        lake.put(key, Bytes::from(format!("{{\"n\":{i}}}\n")))
            .await
            .unwrap();
    }
    let before = live_lines(&lake, prefix).await;

    // Died after writing the merged output, before its manifest: ignored.
    let output = format!("{folder}/c-0000000000000001.json");
    lake.put(&output, Bytes::from("{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n"))
        .await
        .unwrap();
    assert_eq!(live_lines(&lake, prefix).await, before);

    // Died after the manifest, with one input deleted: the output counts,
    // the inputs do not.
    let manifest = serde_json::json!({"output": output, "inputs": inputs});
    lake.put(
        &format!("{folder}/_compacted/0000000000000001.json"),
        Bytes::from(manifest.to_string()),
    )
    .await
    .unwrap();
    lake.delete(&inputs[0]).await.unwrap();
    assert_eq!(live_lines(&lake, prefix).await, before);

    // The next compaction finishes the job.
    lake.compact(prefix, options(1 << 20)).await.unwrap();
    for input in &inputs {
        assert!(
            lake.get(input).await.unwrap().is_none(),
            "{input} left behind"
        );
    }
    assert_eq!(live_lines(&lake, prefix).await, before);
}

#[tokio::test]
async fn files_written_while_compacting_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), &AwsConfig::default()).unwrap();
    let prefix = "bronze/user-events/";
    let files = small_files(1200);
    let (old, new) = files.split_at(600);
    for (key, body) in old {
        lake.put(key, Bytes::from(body.clone())).await.unwrap();
    }
    let writer = {
        let lake = lake.clone();
        let new = new.to_vec();
        tokio::spawn(async move {
            for (key, body) in new {
                lake.put(&key, Bytes::from(body)).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    lake.compact(prefix, options(8 * 1024)).await.unwrap();
    writer.await.unwrap();
    let mut want: Vec<String> = files
        .iter()
        .flat_map(|(_, body)| body.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    want.sort();
    assert_eq!(live_lines(&lake, prefix).await, want);
}
