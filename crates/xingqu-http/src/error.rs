//! The one error shape of the API, `{"error":{"code","message","field"}}`, and the mapping of
//! every use-case error to a status and a stable snake_case code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use xingqu_app::AppError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case; clients branch on it.
    #[schema(example = "malformed_json")]
    pub code: String,
    /// For people; may change wording.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), field: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let message = error.to_string();
        match error {
            AppError::Invalid(invalid) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, invalid.code, invalid.message).with_field(invalid.field)
            }
            AppError::Unauthenticated => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message),
            AppError::InvalidToken => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message),
            AppError::InvalidCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message),
            AppError::Unauthorized(code, _) => ApiError::new(StatusCode::UNAUTHORIZED, code, message),
            AppError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            AppError::NotFound { resource } => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{resource}_not_found"), message)
            }
            AppError::Conflict { code, .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            AppError::InvalidTransition(_) => ApiError::new(StatusCode::CONFLICT, "invalid_transition", message),
            AppError::Internal(inner) => {
                tracing::error!(error = %inner, "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
            }
        }
    }
}

impl From<xingqu_domain::Invalid> for ApiError {
    fn from(invalid: xingqu_domain::Invalid) -> Self {
        AppError::Invalid(invalid).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
