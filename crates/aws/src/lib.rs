//! The AWS side of `storage_mode: aws`: provisioning the bucket, its layer
//! prefixes and the feature tables (`movierec setup-aws`, idempotent; a table
//! with another key schema is reported, never replaced), removing them
//! (`teardown-aws`), and the checks `/health` reports.
//! The warehouse export reads the feature tables' DynamoDB Streams and
//! scans them through [`streams`].
//!
//! Every call goes to `aws.endpoint_url` when it is set (moto, LocalStack,
//! MinIO: path-style S3 addressing), else to AWS itself; credentials come
//! from the standard chain (environment, profile, instance role).
//! Failures are sorted into what a user can act on: no credentials, access
//! denied (naming the resource and action), an endpoint that does not answer
//! (naming the URL), a table with another schema (naming the fix).

pub mod bronze;
pub mod cost;
pub mod emr;
mod error;
pub mod features;
mod provision;
mod sink;
pub mod streams;

pub use bronze::{BronzeSink, bronze_key};
pub use error::AwsError;
pub use features::{BatchRefresh, FeatureSink};
pub use provision::{Step, StepOutcome};
pub use sink::AwsSink;
pub use streams::{DynamoDbChangeStream, DynamoDbTableScan};

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::config::Region;
use movierec_config::AwsConfig;
use std::time::Duration;

pub type Result<T, E = AwsError> = std::result::Result<T, E>;

/// Clients for S3, DynamoDB and DynamoDB Streams, configured from `aws.*`.
#[derive(Clone, Debug)]
pub struct Aws {
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB Streams of the feature tables (the warehouse export).
    pub(crate) dynamodbstreams: aws_sdk_dynamodbstreams::Client,
    pub(crate) config: AwsConfig,
    /// For clients made on demand (EMR).
    pub(crate) shared: aws_config::SdkConfig,
}

impl Aws {
    /// Builds the clients and makes sure credentials can be found, so that a
    /// missing one is reported before any call is made.
    pub async fn connect(config: &AwsConfig) -> Result<Self> {
        let region = RegionProviderChain::first_try(Region::new(config.region.clone()));
        // The SDK waits forever on a request that never gets an answer (an
        // endpoint that hangs); bounded attempts turn that into an error
        // the consumer retries with backoff, and /health answers in time.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(20))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        match shared.credentials_provider() {
            None => return Err(AwsError::NoCredentials(String::from("no provider"))),
            Some(provider) => {
                provider
                    .provide_credentials()
                    .await
                    .map_err(|e| AwsError::NoCredentials(e.to_string()))?;
            }
        }
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            // moto, LocalStack and MinIO serve buckets under the path.
            .force_path_style(config.endpoint_url.is_some())
            .build();
        Ok(Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            // Same endpoint override as DynamoDB (moto and LocalStack serve both).
            dynamodbstreams: aws_sdk_dynamodbstreams::Client::new(&shared),
            config: config.clone(),
            shared,
        })
    }

    /// Where calls go, for messages.
    pub fn endpoint(&self) -> String {
        self.config
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("AWS ({})", self.config.region))
    }

    /// `/health`'s `storage_info` in aws mode: the bucket and each table, checked.
    pub async fn check(
        &self,
    ) -> std::result::Result<serde_json::Value, (serde_json::Value, String)> {
        use serde_json::json;
        let mut failures = Vec::new();
        let bucket = &self.config.s3.bucket;
        let s3_status = match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => json!("ok"),
            Err(e) => {
                let error = error::classify(e, &self.endpoint(), "s3:HeadBucket", bucket);
                failures.push(format!("s3 bucket {bucket}: {error}"));
                json!({"status": "failed", "error": error.to_string()})
            }
        };
        let mut tables = serde_json::Map::new();
        for provision::TableSpec { name: table, .. } in self.tables() {
            let status = match self
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
            {
                Ok(out) => json!(
                    out.table()
                        .and_then(|t| t.table_status())
                        .map_or("unknown".to_string(), |s| s.as_str().to_lowercase())
                ),
                Err(e) => {
                    let error =
                        error::classify(e, &self.endpoint(), "dynamodb:DescribeTable", table);
                    failures.push(format!("dynamodb table {table}: {error}"));
                    json!({"status": "failed", "error": error.to_string()})
                }
            };
            tables.insert(table.to_string(), status);
        }
        let info = json!({
            "mode": "aws",
            "region": self.config.region,
            "endpoint_url": self.config.endpoint_url,
            "s3_bucket": bucket,
            "s3_status": s3_status,
            "dynamodb_tables": tables,
        });
        if failures.is_empty() {
            Ok(info)
        } else {
            Err((info, failures.join("; ")))
        }
    }
}
