use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// What went wrong, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS credentials found ({0}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or AWS_PROFILE with ~/.aws/credentials, or run with an instance/task role \
         (for moto or LocalStack any non-empty pair works, e.g. test/test)"
    )]
    NoCredentials(String),
    #[error(
        "access denied: {action} on {resource} ({message}); grant {action} to these credentials, \
         or point aws.* at a bucket/table they may use"
    )]
    AccessDenied {
        action: String,
        resource: String,
        message: String,
    },
    #[error(
        "cannot reach {endpoint} ({message}): is the endpoint running and aws.endpoint_url right?"
    )]
    Unreachable { endpoint: String, message: String },
    #[error(
        "DynamoDB table {table} exists with key schema {found}, but movierec needs {expected}. \
         It was left as it is. Fix: delete it (`movierec teardown-aws --yes` removes movierec's \
         resources, or `aws dynamodb delete-table --table-name {table}`), or set \
         aws.dynamodb.{key} to another table name"
    )]
    TableSchemaMismatch {
        table: String,
        key: &'static str,
        found: String,
        expected: String,
    },
    #[error("{action} on {resource} failed: {message}")]
    Failed {
        action: String,
        resource: String,
        message: String,
    },
}

/// Sorts an SDK error into the cases above.
pub(crate) fn classify<E, R>(
    error: SdkError<E, R>,
    endpoint: &str,
    action: &str,
    resource: &str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let failed = |message: String| AwsError::Failed {
        action: action.into(),
        resource: resource.into(),
        message,
    };
    match &error {
        SdkError::DispatchFailure(failure) => {
            let message = match failure.as_connector_error() {
                Some(connector) => source_chain(connector),
                None => format!("{failure:?}"),
            };
            if failure.is_io() || failure.is_timeout() {
                AwsError::Unreachable {
                    endpoint: endpoint.into(),
                    message,
                }
            } else {
                failed(message)
            }
        }
        SdkError::TimeoutError(_) => AwsError::Unreachable {
            endpoint: endpoint.into(),
            message: "timed out".into(),
        },
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or(code).to_string();
            let denied = matches!(
                code,
                "AccessDenied"
                    | "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidClientTokenId"
            ) || format!("{:?}", service.raw()).contains("status: StatusCode(403)");
            if denied {
                AwsError::AccessDenied {
                    action: action.into(),
                    resource: resource.into(),
                    // HEAD requests carry no error body: only the status says why.
                    message: if message.is_empty() {
                        "HTTP 403 Forbidden".to_string()
                    } else {
                        message
                    },
                }
            } else {
                failed(if code.is_empty() {
                    source_chain(&error)
                } else {
                    format!("{code}: {message}")
                })
            }
        }
        _ => failed(source_chain(&error)),
    }
}

/// An error and its sources on one line: SDK errors keep the useful part
/// (connection refused, DNS failure) a few levels down.
fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
