//! Amazon EMR: the lakehouse job as a cluster step (`movierec emr submit`).

use crate::error::classify;
use crate::{Aws, AwsError, Result};
use aws_sdk_emr::types::{ActionOnFailure, HadoopJarStepConfig, StepConfig, StepState};

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStatus {
    /// PENDING, RUNNING, COMPLETED, CANCEL_PENDING, CANCELLED, FAILED, INTERRUPTED.
    pub state: String,
    /// For a failed step: EMR's reason, message and log file, when it gives them.
    pub failure: Option<String>,
}

impl StepStatus {
    pub fn is_done(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING" | "RUNNING" | "CANCEL_PENDING"
        )
    }
}

impl Aws {
    fn emr(&self) -> aws_sdk_emr::Client {
        aws_sdk_emr::Client::new(&self.shared)
    }

    /// Adds `command-runner.jar ARGS` (e.g. spark-submit …) as a step of a
    /// running cluster; returns the step id. A failed step does not stop the
    /// cluster (ActionOnFailure CONTINUE).
    pub async fn add_step(
        &self,
        cluster_id: &str,
        name: &str,
        args: Vec<String>,
    ) -> Result<String> {
        let failed = |message: String| AwsError::Failed {
            action: "elasticmapreduce:AddJobFlowSteps".into(),
            resource: cluster_id.into(),
            message,
        };
        let jar = HadoopJarStepConfig::builder()
            .jar("command-runner.jar")
            .set_args(Some(args))
            .build();
        let step = StepConfig::builder()
            .name(name)
            .action_on_failure(ActionOnFailure::Continue)
            .hadoop_jar_step(jar)
            .build();
        let out = self
            .emr()
            .add_job_flow_steps()
            .job_flow_id(cluster_id)
            .steps(step)
            .send()
            .await
            .map_err(|e| {
                classify(
                    e,
                    &self.endpoint(),
                    "elasticmapreduce:AddJobFlowSteps",
                    cluster_id,
                )
            })?;
        out.step_ids()
            .first()
            .cloned()
            .ok_or_else(|| failed("EMR returned no step id".into()))
    }

    pub async fn step_status(&self, cluster_id: &str, step_id: &str) -> Result<StepStatus> {
        let resource = format!("{cluster_id} step {step_id}");
        let out = self
            .emr()
            .describe_step()
            .cluster_id(cluster_id)
            .step_id(step_id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    e,
                    &self.endpoint(),
                    "elasticmapreduce:DescribeStep",
                    &resource,
                )
            })?;
        let status = out.step().and_then(|s| s.status());
        let state = status
            .and_then(|s| s.state())
            .map_or("UNKNOWN".to_string(), |s: &StepState| {
                s.as_str().to_string()
            });
        let failure = status.and_then(|s| s.failure_details()).map(|f| {
            [f.reason(), f.message(), f.log_file()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ")
        });
        Ok(StepStatus { state, failure })
    }
}
