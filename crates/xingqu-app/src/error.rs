//! The errors a use case returns: user errors (each with a stable code) apart from internal ones.

use xingqu_domain::Invalid;
use xingqu_domain::catalog::InvalidTransition;
use xingqu_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input broke a rule; names the field.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No credentials were presented where they are required.
    #[error("sign in first: send an Authorization: Bearer token")]
    Unauthenticated,
    /// The bearer token is unknown, expired or revoked.
    #[error("the token is invalid, expired or revoked; sign in again")]
    InvalidToken,
    #[error("e-mail or password is wrong")]
    InvalidCredentials,
    /// A caller that is not a user (a payment gateway) failed to prove who it is.
    #[error("{1}")]
    Unauthorized(&'static str, &'static str),
    /// Signed in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The resource does not exist, or the caller may not know it exists.
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// The request conflicts with the current state (a duplicate name, a stale version).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// Something on our side failed; details are logged, never returned.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn not_found(resource: &'static str) -> Self {
        AppError::NotFound { resource }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict { code, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AppError::Internal(message.into().into())
    }

    pub fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid(Invalid::new(field, code, message))
    }
}

impl From<xingqu_domain::order::InvalidOrderTransition> for AppError {
    fn from(error: xingqu_domain::order::InvalidOrderTransition) -> Self {
        AppError::conflict("invalid_transition", error.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Concurrent => {
                AppError::conflict("concurrent_modification", "changed by someone else meanwhile; reload and retry")
            }
            StoreError::FlashPoolsElsewhere => AppError::conflict(
                "flash_pools_elsewhere",
                "flash sales of this database are sold by another server process; buy through that one",
            ),
            other => AppError::Internal(Box::new(other)),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
