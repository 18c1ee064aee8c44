//! The lake on local files: what the embedded mode and the batch use.

use bytes::Bytes;
use movierec_config::AwsConfig;
use movierec_lake::{Entry, Lake, LakeError};

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
    assert_eq!(
        bronze,
        vec![
            Entry {
                key: key.into(),
                size: 16
            },
            Entry {
                key: "bronze/user-events/date=2025-03-16/p1-00000000000000000007.json".into(),
                size: 1
            },
        ]
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
