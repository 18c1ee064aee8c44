//! The lake on S3, against moto (scripts/test.sh starts it and sets
//! MOVIEREC_TEST_AWS_ENDPOINT). One test in this binary: it sets the AWS
//! credential variables, which no other thread reads meanwhile.

use bytes::Bytes;
use movierec_config::AwsConfig;
use movierec_lake::Lake;

#[tokio::test]
async fn the_same_operations_work_on_s3_under_a_prefix() {
    let endpoint = std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto), or \
             moto_server -H 127.0.0.1 -p 5000 and MOVIEREC_TEST_AWS_ENDPOINT=http://127.0.0.1:5000"
        )
    });
    // SAFETY: the only test in this binary, before any other thread reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let mut aws = AwsConfig {
        region: "eu-west-1".into(),
        endpoint_url: Some(endpoint),
        ..AwsConfig::default()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    aws.s3.bucket = format!("lake-test-{}-{}", std::process::id(), nanos % 1_000_000_000);
    aws.dynamodb.user_features_table = format!("{}-u", aws.s3.bucket);
    aws.dynamodb.movie_features_table = format!("{}-m", aws.s3.bucket);
    let admin = movierec_aws::Aws::connect(&aws).await.unwrap();
    admin.setup(false).await.unwrap();

    let lake = Lake::open(&format!("s3://{}/lake", aws.s3.bucket), &aws).unwrap();
    let key = "bronze/user-events/date=2025-03-15/p2-00000000000000000042.json";
    assert_eq!(lake.get(key).await.unwrap(), None);
    lake.put(key, Bytes::from_static(b"one\n")).await.unwrap();
    lake.put(key, Bytes::from_static(b"one\ntwo\n"))
        .await
        .unwrap();
    assert_eq!(
        lake.get(key).await.unwrap().unwrap(),
        Bytes::from_static(b"one\ntwo\n")
    );
    let listed = lake.list("bronze/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key, "keys are relative to the lake's prefix");
    assert_eq!(listed[0].size, 8);
    lake.delete(key).await.unwrap();
    assert!(lake.list("bronze/").await.unwrap().is_empty());

    admin.teardown().await.unwrap();
}
