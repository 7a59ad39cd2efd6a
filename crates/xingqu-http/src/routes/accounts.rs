//! Registration, sign-in, sign-out, the signed-in user, and operator creation.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth};
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::accounts::{Registration, Session, User};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_operator))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "li.na@example.com")]
    email: String,
    /// 8 to 128 characters.
    password: String,
    display_name: String,
    /// `consumer` (default) or `creator`. Merchant staff come from a shop application.
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorRequest {
    email: String,
    password: String,
    display_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    id: i64,
    email: String,
    display_name: String,
    /// consumer, merchant_staff, creator or operator.
    role: &'static str,
    /// The shop a merchant-staff user works for.
    merchant_id: Option<i64>,
    created_at: String,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            role: user.role.as_str(),
            merchant_id: user.merchant_id,
            created_at: rfc3339(user.created_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is stored.
    token: String,
    expires_at: String,
    user: UserResponse,
}

impl From<Session> for SessionResponse {
    fn from(session: Session) -> Self {
        Self { token: session.token, expires_at: rfc3339(session.expires_at_ms), user: session.user.into() }
    }
}

/// Registers a consumer or creator account and signs it in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = SessionResponse), (status = 409, body = ErrorBody, description = "email_taken"),
              (status = 422, body = ErrorBody), (status = 400, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let registration = Registration {
        email: &body.email,
        password: &body.password,
        display_name: &body.display_name,
        role: body.role.as_deref().unwrap_or("consumer"),
    };
    let session = state.app.register(registration).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// Signs in with e-mail and password; returns a bearer token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = ErrorBody, description = "invalid_credentials")))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<SessionResponse>> {
    Ok(Json(state.app.login(&body.email, &body.password).await?.into()))
}

/// Revokes the token used for this request.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    state.app.logout(&auth.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
async fn me(auth: Auth) -> Json<UserResponse> {
    Json(User::clone(&auth.user).into())
}

/// Creates another operator (operators only).
#[utoipa::path(post, path = "/v1/operators", tag = "accounts", security(("bearer" = [])), request_body = CreateOperatorRequest,
    responses((status = 201, body = UserResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_operator(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateOperatorRequest>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    let user =
        state.app.create_operator_as(&auth.user.actor(), &body.email, &body.password, &body.display_name).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}
