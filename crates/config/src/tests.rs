use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_yaml_str(text, "config/config.yaml", env).map(|(c, _)| c)
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env).unwrap_err().to_string()
}

const SEED_STYLE: &str = r#"
storage_mode: "aws"
kafka: { bootstrap_servers: "127.0.0.1:9092", topic: "user-events", dlq_topic: "user-events-dlq", group_id: "movierec" }
sqlite:  { path: "data/movierec.db" }
aws:
  region: "eu-west-1"
  endpoint_url: "http://127.0.0.1:4566"
  s3:       { bucket: "movie-rec-data-lake", bronze_prefix: "bronze/user-events/", silver_prefix: "silver/", gold_prefix: "gold/" }
  dynamodb: { user_features_table: "movie-rec-user-features", movie_features_table: "movie-rec-movie-features" }
serving: { port: 8082, database_url: "mysql://app:pw@db:3306/recommendation_db" }
batch:   { engine: "embedded", min_ratings: 50, top_n: 1000 }
"#;

#[test]
fn reads_the_spec_example() {
    let config = load(SEED_STYLE, &[]).unwrap();
    assert_eq!(config.storage_mode, StorageMode::Aws);
    assert_eq!(config.aws.region, "eu-west-1");
    assert_eq!(
        config.aws.endpoint_url.as_deref(),
        Some("http://127.0.0.1:4566")
    );
    assert_eq!(
        config.serving.database_url,
        "mysql://app:pw@db:3306/recommendation_db"
    );
    assert_eq!(config.batch.min_ratings, 50);
}

#[test]
fn the_shipped_file_is_valid_and_matches_the_defaults() {
    let text = include_str!("../../../config/config.yaml");
    let config = load(text, &[]).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn empty_or_partial_files_use_defaults() {
    assert_eq!(load("", &[]).unwrap(), Config::default());
    let config = load("serving: { port: 9000 }", &[]).unwrap();
    assert_eq!(config.serving.port, 9000);
    assert_eq!(config.serving.host, "127.0.0.1");
}

#[test]
fn environment_overrides_any_key() {
    let config = load(
        SEED_STYLE,
        &[
            ("MOVIEREC_AWS__S3__BUCKET", "other-bucket"),
            ("MOVIEREC_SERVING__PORT", "9090"),
            ("MOVIEREC_STORAGE_MODE", "sqlite"),
            ("MOVIEREC_AWS__ENDPOINT_URL", "null"),
            ("MOVIEREC_CONFIG", "ignored: not a key"),
        ],
    )
    .unwrap();
    assert_eq!(config.aws.s3.bucket, "other-bucket");
    assert_eq!(config.serving.port, 9090);
    assert_eq!(config.storage_mode, StorageMode::Sqlite);
    assert_eq!(config.aws.endpoint_url, None);
}

#[test]
fn bad_values_name_file_key_and_form() {
    let message = error("serving: { port: \"eighty\" }", &[]);
    assert!(
        message.starts_with("config/config.yaml: key `serving.port`"),
        "{message}"
    );
    assert!(message.contains("port number"), "{message}");

    let message = error("storage_mode: mysql", &[]);
    assert!(message.contains("key `storage_mode`"), "{message}");
    assert!(
        message.contains("sqlite") && message.contains("aws"),
        "{message}"
    );

    let message = error("batch: { engine: hadoop }", &[]);
    assert!(
        message.contains("key `batch.engine`") && message.contains("embedded"),
        "{message}"
    );

    let message = error("serving: { database_url: \"oracle://x\" }", &[]);
    assert!(message.contains("key `serving.database_url`"), "{message}");
    assert!(message.contains("postgres://"), "{message}");

    let message = error("serving: { port: }", &[]);
    assert!(
        message.contains("key `serving.port`") && message.contains("null"),
        "{message}"
    );

    for (yaml, key) in [
        ("models: { holdout: 0.7 }", "models.holdout"),
        ("serving: { session_hours: 0 }", "serving.session_hours"),
        ("serving: { login_attempts: 0 }", "serving.login_attempts"),
    ] {
        let message = error(yaml, &[]);
        assert!(message.contains(&format!("`{key}`")), "{yaml}: {message}");
    }
}

#[test]
fn unknown_keys_are_errors() {
    let message = error("serving: { prot: 8082 }", &[]);
    assert!(message.contains("key `serving.prot`"), "{message}");
    assert!(
        message.contains("unknown field") && message.contains("port"),
        "{message}"
    );
    let message = error("sevring: {}", &[]);
    assert!(message.contains("unknown field `sevring`"), "{message}");
}

#[test]
fn env_errors_name_the_variable() {
    let message = error("", &[("MOVIEREC_SERVING__PORT", "abc")]);
    assert!(
        message.starts_with("environment variable MOVIEREC_SERVING__PORT: key `serving.port`"),
        "{message}"
    );
    let message = error("", &[("MOVIEREC_SERVNG__PORT", "1")]);
    assert!(
        message.contains("MOVIEREC_SERVNG__PORT") && message.contains("unknown key"),
        "{message}"
    );
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let message = error("serving:\n  port: [1,\n", &[]);
    assert!(
        message.starts_with("config/config.yaml: not valid YAML"),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");
}

#[test]
fn aws_mode_requires_a_bucket() {
    let message = error("storage_mode: aws\naws: { s3: { bucket: \"\" } }", &[]);
    assert!(
        message.contains("key `aws.s3.bucket`") && message.contains("required"),
        "{message}"
    );
}

#[test]
fn aws_mode_needs_three_different_tables() {
    let message = error(
        "storage_mode: aws\naws: { dynamodb: { ratings_table: \"movie-rec-user-features\" } }",
        &[],
    );
    assert!(
        message.contains("key `aws.dynamodb`") && message.contains("three different tables"),
        "{message}"
    );
    let defaults = load("storage_mode: aws\n", &[]).unwrap();
    assert_eq!(defaults.aws.dynamodb.ratings_table, "movie-rec-ratings");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let missing = Path::new("/nonexistent/movierec.yaml");
    let message = Config::load(Some(missing), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(message.contains("/nonexistent/movierec.yaml"), "{message}");
}

#[test]
fn kafka_properties_pass_through_any_scalar() {
    let config = load(
        "kafka:\n  properties:\n    security.protocol: SASL_SSL\n    session.timeout.ms: 6000\n    enable.idempotence: true\n",
        &[("MOVIEREC_KAFKA__PROPERTIES__SASL.USERNAME", "reader")],
    )
    .unwrap();
    let props = &config.kafka.properties;
    assert_eq!(props["security.protocol"], "SASL_SSL");
    assert_eq!(props["session.timeout.ms"], "6000");
    assert_eq!(props["enable.idempotence"], "true");
    assert_eq!(props["sasl.username"], "reader");
    let message = error("kafka:\n  properties:\n    acks: [1, 2]\n", &[]);
    assert!(
        message.contains("acks") && message.contains("expected a string, number or boolean"),
        "{message}"
    );
}

#[test]
fn kafka_topics_must_be_named_and_distinct() {
    let message = error("kafka: { topic: events, dlq_topic: events }\n", &[]);
    assert!(
        message.contains("kafka.dlq_topic") && message.contains("must differ"),
        "{message}"
    );
    let message = error("kafka: { group_id: \"\" }\n", &[]);
    assert!(message.contains("kafka.group_id"), "{message}");
    let message = error("kafka: { max_batch_events: 0 }\n", &[]);
    assert!(message.contains("kafka.max_batch_events"), "{message}");
}

#[test]
fn every_section_can_be_overridden_from_the_environment() {
    let defaults = serde_yaml_ng::to_value(Config::default()).unwrap();
    let sections: Vec<String> = defaults
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for section in &sections {
        assert!(
            super::TOP_LEVEL_KEYS.contains(&section.as_str()),
            "section `{section}` missing from the environment overrides"
        );
    }
    let config = load(
        "",
        &[
            ("MOVIEREC_MODELS__ENABLED", "false"),
            ("MOVIEREC_LAKE__ROOT", "s3://elsewhere"),
        ],
    )
    .unwrap();
    assert!(!config.models.enabled);
    assert_eq!(config.lake.root.as_deref(), Some("s3://elsewhere"));
}

#[test]
fn a_local_spark_master_gets_two_shuffle_partitions_per_core_unless_set() {
    let spark = |master: &str, conf: &[(&str, &str)]| SparkConfig {
        master: master.into(),
        conf: conf
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SparkConfig::default()
    };
    let partitions = |s: &SparkConfig| s.submit_conf().get(SHUFFLE_PARTITIONS).cloned();
    assert_eq!(partitions(&spark("local[2]", &[])).as_deref(), Some("4"));
    assert_eq!(partitions(&spark("local", &[])).as_deref(), Some("2"));
    assert_eq!(partitions(&spark("local[3,2]", &[])).as_deref(), Some("6"));
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        partitions(&spark("local[*]", &[])),
        Some((2 * cores).to_string())
    );
    // The user's own value wins, and a cluster keeps its own default.
    let own = spark(
        "local[2]",
        &[(SHUFFLE_PARTITIONS, "64"), ("spark.driver.memory", "4g")],
    );
    assert_eq!(partitions(&own).as_deref(), Some("64"));
    assert_eq!(own.submit_conf().len(), 2);
    for cluster in [
        "yarn",
        "spark://host:7077",
        "local-cluster[2,1,1024]",
        "local[0]",
        "local[x]",
    ] {
        assert_eq!(partitions(&spark(cluster, &[])), None, "{cluster}");
    }
}

#[test]
fn the_sqlite_page_cache_is_a_positive_size_in_mib() {
    assert_eq!(load("", &[]).unwrap().sqlite.cache_mib, 64);
    assert_eq!(
        load("sqlite: { cache_mib: 8 }\n", &[])
            .unwrap()
            .sqlite
            .cache_mib,
        8
    );
    assert_eq!(
        load("", &[("MOVIEREC_SQLITE__CACHE_MIB", "16")])
            .unwrap()
            .sqlite
            .cache_mib,
        16
    );
    for bad in ["0", "65537"] {
        let message = error(&format!("sqlite: {{ cache_mib: {bad} }}\n"), &[]);
        assert!(
            message.contains("sqlite.cache_mib") && message.contains(bad),
            "{message}"
        );
    }
}
