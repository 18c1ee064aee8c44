//! `setup-aws` and `teardown-aws`.

use crate::error::classify;
use crate::{Aws, AwsError, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
};
use std::fmt;
use std::time::Duration;

/// One resource and what setup did (or, in a dry run, would do) to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub resource: String,
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Exists,
    Created,
    WouldCreate,
    Updated(String),
    WouldUpdate(String),
    Deleted,
    Absent,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            StepOutcome::Exists => "exists (unchanged)".to_string(),
            StepOutcome::Created => "created".to_string(),
            StepOutcome::WouldCreate => "would be created".to_string(),
            StepOutcome::Updated(what) => format!("updated: {what}"),
            StepOutcome::WouldUpdate(what) => format!("would be updated: {what}"),
            StepOutcome::Deleted => "deleted".to_string(),
            StepOutcome::Absent => "not there (nothing to delete)".to_string(),
        };
        write!(f, "{:<55} {outcome}", self.resource)
    }
}

fn step(resource: impl Into<String>, outcome: StepOutcome) -> Step {
    Step {
        resource: resource.into(),
        outcome,
    }
}

impl Aws {
    /// The tables setup-aws makes, with the config key naming each.
    pub(crate) fn tables(&self) -> [TableSpec<'_>; 3] {
        let dynamodb = &self.config.dynamodb;
        [
            TableSpec {
                name: &dynamodb.user_features_table,
                keys: &["user_id"],
                config_key: "user_features_table",
                stream: true,
            },
            TableSpec {
                name: &dynamodb.movie_features_table,
                keys: &["movie_id"],
                config_key: "movie_features_table",
                stream: true,
            },
            TableSpec {
                name: &dynamodb.ratings_table,
                keys: &["user_id", "movie_id"],
                config_key: "ratings_table",
                // The warehouse export follows the feature tables only.
                stream: false,
            },
        ]
    }

    fn prefixes(&self) -> Vec<String> {
        let s3 = &self.config.s3;
        [&s3.bronze_prefix, &s3.silver_prefix, &s3.gold_prefix]
            .into_iter()
            .map(|p| {
                let p = p.trim_start_matches('/');
                if p.ends_with('/') {
                    p.to_string()
                } else {
                    format!("{p}/")
                }
            })
            .collect()
    }

    /// Creates what is missing: the bucket, the layer prefixes, the tables
    /// (on-demand, streams with new and old images). Re-running changes
    /// nothing; a table with another key schema is an error, left untouched.
    pub async fn setup(&self, dry_run: bool) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let bucket = self.config.s3.bucket.clone();
        let bucket_exists = self.bucket_exists(&bucket).await?;
        if bucket_exists {
            steps.push(step(format!("s3://{bucket}"), StepOutcome::Exists));
        } else if dry_run {
            steps.push(step(format!("s3://{bucket}"), StepOutcome::WouldCreate));
        } else {
            self.create_bucket(&bucket).await?;
            steps.push(step(format!("s3://{bucket}"), StepOutcome::Created));
        }
        for prefix in self.prefixes() {
            let resource = format!("s3://{bucket}/{prefix}");
            let exists = bucket_exists && self.object_exists(&bucket, &prefix).await?;
            let outcome = match (exists, dry_run) {
                (true, _) => StepOutcome::Exists,
                (false, true) => StepOutcome::WouldCreate,
                (false, false) => {
                    self.s3
                        .put_object()
                        .bucket(&bucket)
                        .key(&prefix)
                        .body(ByteStream::from_static(b""))
                        .send()
                        .await
                        .map_err(|e| classify(e, &self.endpoint(), "s3:PutObject", &resource))?;
                    StepOutcome::Created
                }
            };
            steps.push(step(resource, outcome));
        }
        for table in self.tables() {
            steps.push(self.setup_table(&table, dry_run).await?);
        }
        Ok(steps)
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(classify(
                e,
                &self.endpoint(),
                "s3:ListBucket (HeadBucket)",
                &format!("s3://{bucket}"),
            )),
        }
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut request = self.s3.create_bucket().bucket(bucket);
        // us-east-1 is the one region that refuses a LocationConstraint.
        if self.config.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(
                        self.config.region.as_str(),
                    ))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_exists()) =>
            {
                Err(AwsError::Failed {
                    action: "s3:CreateBucket".into(),
                    resource: format!("s3://{bucket}"),
                    message: "the name is taken by another account (bucket names are global): \
                              set aws.s3.bucket to another name"
                        .into(),
                })
            }
            Err(e) => Err(classify(
                e,
                &self.endpoint(),
                "s3:CreateBucket",
                &format!("s3://{bucket}"),
            )),
        }
    }

    async fn object_exists(&self, bucket: &str, key: &str) -> Result<bool> {
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(classify(
                e,
                &self.endpoint(),
                "s3:GetObject (HeadObject)",
                &format!("s3://{bucket}/{key}"),
            )),
        }
    }

    async fn setup_table(&self, spec: &TableSpec<'_>, dry_run: bool) -> Result<Step> {
        let table = spec.name;
        let resource = format!("dynamodb table {table}");
        let described = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await;
        let description = match described {
            Ok(out) => out.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => {
                return Err(classify(
                    e,
                    &self.endpoint(),
                    "dynamodb:DescribeTable",
                    table,
                ));
            }
        };
        let Some(description) = description else {
            if dry_run {
                return Ok(step(resource, StepOutcome::WouldCreate));
            }
            self.create_table(spec).await?;
            return Ok(step(resource, StepOutcome::Created));
        };

        let schema: Vec<String> = description
            .key_schema()
            .iter()
            .map(|k| {
                let kind = description
                    .attribute_definitions()
                    .iter()
                    .find(|a| a.attribute_name() == k.attribute_name())
                    .map_or("?", |a| a.attribute_type().as_str());
                format!("{} ({kind}, {})", k.attribute_name(), k.key_type().as_str())
            })
            .collect();
        let expected = spec.schema();
        if schema != expected {
            return Err(AwsError::TableSchemaMismatch {
                table: table.into(),
                key: spec.config_key,
                found: format!("[{}]", schema.join(", ")),
                expected: format!("[{}]", expected.join(", ")),
            });
        }
        if !spec.stream {
            return Ok(step(resource, StepOutcome::Exists));
        }
        let stream = description.stream_specification();
        let streaming = stream.is_some_and(|s| {
            s.stream_enabled() && s.stream_view_type() == Some(&StreamViewType::NewAndOldImages)
        });
        if streaming {
            return Ok(step(resource, StepOutcome::Exists));
        }
        let what = "stream with new and old images enabled (for the warehouse export)".to_string();
        if dry_run {
            return Ok(step(resource, StepOutcome::WouldUpdate(what)));
        }
        if stream.is_some_and(|s| s.stream_enabled()) {
            // Another view type: a stream's view cannot change in place.
            return Err(AwsError::Failed {
                action: "dynamodb:UpdateTable".into(),
                resource: table.into(),
                message: "its stream has another view type than NEW_AND_OLD_IMAGES; disable the \
                          stream (aws dynamodb update-table --stream-specification StreamEnabled=false) \
                          and run setup-aws again"
                    .into(),
            });
        }
        self.dynamodb
            .update_table()
            .table_name(table)
            .stream_specification(new_and_old_images())
            .send()
            .await
            .map_err(|e| classify(e, &self.endpoint(), "dynamodb:UpdateTable", table))?;
        Ok(step(resource, StepOutcome::Updated(what)))
    }

    async fn create_table(&self, spec: &TableSpec<'_>) -> Result<()> {
        let table = spec.name;
        let built = |e: aws_sdk_dynamodb::error::BuildError| AwsError::Failed {
            action: "dynamodb:CreateTable".into(),
            resource: table.into(),
            message: e.to_string(),
        };
        let mut request = self
            .dynamodb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for (i, key) in spec.keys.iter().enumerate() {
            let key_type = if i == 0 {
                KeyType::Hash
            } else {
                KeyType::Range
            };
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(*key)
                        .attribute_type(ScalarAttributeType::N)
                        .build()
                        .map_err(built)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*key)
                        .key_type(key_type)
                        .build()
                        .map_err(built)?,
                );
        }
        if spec.stream {
            request = request.stream_specification(new_and_old_images());
        }
        request
            .send()
            .await
            .map_err(|e| classify(e, &self.endpoint(), "dynamodb:CreateTable", table))?;
        // Tables take a moment to become usable on AWS (moto: at once).
        for _ in 0..120 {
            let out = self
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| classify(e, &self.endpoint(), "dynamodb:DescribeTable", table))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(AwsError::Failed {
            action: "dynamodb:CreateTable".into(),
            resource: table.into(),
            message: "the table did not become ACTIVE within 60 s".into(),
        })
    }

    /// Removes the tables and the bucket with everything in it.
    pub async fn teardown(&self) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for TableSpec { name: table, .. } in self.tables() {
            let resource = format!("dynamodb table {table}");
            match self.dynamodb.delete_table().table_name(table).send().await {
                Ok(_) => steps.push(step(resource, StepOutcome::Deleted)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    steps.push(step(resource, StepOutcome::Absent))
                }
                Err(e) => {
                    return Err(classify(e, &self.endpoint(), "dynamodb:DeleteTable", table));
                }
            }
        }
        let bucket = self.config.s3.bucket.clone();
        let resource = format!("s3://{bucket}");
        if !self.bucket_exists(&bucket).await? {
            steps.push(step(resource, StepOutcome::Absent));
            return Ok(steps);
        }
        let mut objects = 0usize;
        loop {
            let listed = self
                .s3
                .list_objects_v2()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| classify(e, &self.endpoint(), "s3:ListBucket", &resource))?;
            let keys: Vec<ObjectIdentifier> = listed
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if keys.is_empty() {
                break;
            }
            objects += keys.len();
            let delete = Delete::builder()
                .set_objects(Some(keys))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::Failed {
                    action: "s3:DeleteObject".into(),
                    resource: resource.clone(),
                    message: e.to_string(),
                })?;
            self.s3
                .delete_objects()
                .bucket(&bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| classify(e, &self.endpoint(), "s3:DeleteObject", &resource))?;
        }
        self.s3
            .delete_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| classify(e, &self.endpoint(), "s3:DeleteBucket", &resource))?;
        steps.push(step(
            format!("{resource} ({objects} objects)"),
            StepOutcome::Deleted,
        ));
        Ok(steps)
    }
}

/// A table setup-aws makes: number keys (hash, then range).
pub(crate) struct TableSpec<'a> {
    pub(crate) name: &'a str,
    keys: &'static [&'static str],
    config_key: &'static str,
    stream: bool,
}

impl TableSpec<'_> {
    /// As [`Aws::setup`] prints a found schema: `user_id (N, HASH)`.
    fn schema(&self) -> Vec<String> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| format!("{key} (N, {})", if i == 0 { "HASH" } else { "RANGE" }))
            .collect()
    }
}

fn new_and_old_images() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .expect("stream_enabled is set")
}
