//! Why an API call failed, and the one place that becomes a gRPC status:
//! handlers return `ApiResult`, `From<ApiError> for Status` names every
//! variant of every error below it (no catch-all arm), so a new kind of
//! error must be mapped on purpose.

use tonic::Status;

use crate::app::AppError;
use crate::store::StoreError;

/// A failed call: the request refused at the edge, or the use case's error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the caller must change (a field named in the message).
    #[error("{0}")]
    InvalidArgument(String),
    /// No key, or a key that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key's roles do not include the call.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// A per-key or per-request limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request is valid but the service's state refuses it (say, a rules directory that does not load).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The service is stopping: retry on another replica or after the restart.
    #[error("{0}")]
    Unavailable(String),
    /// A broken invariant of the service itself (a task that died).
    #[error("{0}")]
    Internal(String),
    /// What the use case refused or could not do.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::App(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A field's value refused: `field: why`.
pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidArgument(format!("{field}: {why}"))
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match error {
            ApiError::InvalidArgument(m) => Status::invalid_argument(m),
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal(m)
            }
            ApiError::App(e) => app_status(e),
        }
    }
}

/// The one place use-case errors become gRPC statuses: every variant is
/// named (no catch-all), so a new kind of error must be mapped on purpose.
fn app_status(error: AppError) -> Status {
    match error {
        AppError::InvalidArgument(m) => Status::invalid_argument(m),
        AppError::NotFound(m) => Status::not_found(m),
        AppError::AlreadyExists(m) => Status::already_exists(m),
        AppError::FailedPrecondition(m) => Status::failed_precondition(m),
        AppError::DataLoss(m) => Status::data_loss(m),
        // Logged where it was caught.
        AppError::Internal(m) => Status::internal(m),
        // Counted and logged where it was found (`AppError::unreadable`).
        unreadable @ (AppError::Unreadable { .. } | AppError::Store(StoreError::Unreadable { .. })) => {
            Status::failed_precondition(format!(
                "{unreadable}: nothing was decided on it; an operator must repair or remove the row"
            ))
        }
        AppError::Store(StoreError::Unavailable(e)) => {
            metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
            tracing::warn!(error = %e, "database unavailable");
            Status::unavailable("the database is unavailable; retry later")
        }
        AppError::Store(StoreError::ShuttingDown) => {
            Status::unavailable("this replica is shutting down; retry (on another replica)")
        }
        AppError::Store(StoreError::DiskFull(e)) => {
            metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
            tracing::error!(error = %e, "database disk full");
            Status::resource_exhausted("the database disk is full: nothing was stored; retry once space is freed")
        }
        AppError::Store(StoreError::ReadOnly(e)) => {
            metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
            tracing::error!(error = %e, "database is read-only");
            Status::unavailable("the database is read-only: nothing was stored; retry later")
        }
        AppError::Store(
            e @ (StoreError::Database(_)
            | StoreError::Migration(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::BadUrl(_)
            | StoreError::NotWritable { .. }),
        ) => {
            metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
            tracing::error!(error = %e, "storage error");
            Status::internal("storage error")
        }
    }
}
