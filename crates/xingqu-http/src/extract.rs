//! Request extractors whose rejections speak the API's error shape: JSON bodies, query strings,
//! path ids, and bearer-token authentication.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use xingqu_app::AppError;
use xingqu_app::accounts::User;

/// A JSON body: `415` without a JSON content type, `413` over the body limit, `400
/// malformed_json` when it does not parse, `422` naming the field when it has the wrong shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                let (kind, subtype) = mime.split_once('/').unwrap_or((mime, ""));
                let subtype = subtype.as_bytes();
                kind.eq_ignore_ascii_case("application")
                    && (subtype.eq_ignore_ascii_case(b"json")
                        || subtype.len() >= 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body exceeds the size limit")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, mapping serde's errors to the API's codes.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The common case, a body that fits, is parsed once; only a body that does not is parsed
    // again, more slowly, to say exactly what is wrong with it.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    // Check the syntax of the whole body first (without allocating), so a truncated body is
    // reported as malformed rather than by whichever field the typed parse tripped on first.
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {inner}"))
            }
            Category::Data => {
                let message = inner.to_string();
                // "missing field `title`" names the field inside the message, not in the path.
                let (code, field) = if let Some(rest) = message.strip_prefix("missing field `") {
                    let name = rest.split('`').next().unwrap_or_default();
                    ("missing_field", if path == "." { name.to_owned() } else { format!("{path}.{name}") })
                } else if message.starts_with("unknown field") {
                    ("unknown_field", path)
                } else {
                    ("invalid_type", path)
                };
                let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
                let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
                // "." is the whole body: no field to name.
                if field == "." { error } else { error.with_field(field) }
            }
        }
    })
}

/// A query string: `400 invalid_query` when it does not fit.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// The `Idempotency-Key` header when present and text, read without copying the request's headers.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(IdempotencyKey(key))
    }
}

/// A numeric id in the path: `400 invalid_id` when it is not a positive integer.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "ids are positive integers");
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| invalid())?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(invalid()),
        }
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::from(AppError::InvalidToken))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::InvalidToken.into()),
    }
}

/// A signed-in user (`401` without a live bearer token), with the token they used.
pub struct Auth {
    pub user: std::sync::Arc<User>,
    pub token: String,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or(AppError::Unauthenticated)?;
        let user = state.app.authenticate(token).await?;
        Ok(Auth { user, token: token.to_owned() })
    }
}

/// Who a signed-in request is (`401` without a live bearer token), for handlers that need only
/// the actor: it is read from the session cache's own entry, with no user record shared.
pub struct AuthActor(pub xingqu_domain::account::Actor);

impl FromRequestParts<AppState> for AuthActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or(AppError::Unauthenticated)?;
        Ok(AuthActor(state.app.authenticate_actor(token).await?))
    }
}

/// A user who may or may not be signed in; a token that is present must be valid.
pub struct MaybeAuth(pub Option<std::sync::Arc<User>>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            None => Ok(MaybeAuth(None)),
            Some(token) => Ok(MaybeAuth(Some(state.app.authenticate(token).await?))),
        }
    }
}

impl MaybeAuth {
    pub fn actor(&self) -> Option<xingqu_domain::account::Actor> {
        self.0.as_deref().map(User::actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        price_fen: i64,
    }

    fn check(raw: &str, expected: (StatusCode, &str, Option<&str>)) {
        let error = parse_json::<Body>(raw.as_bytes()).expect_err(raw);
        assert_eq!((error.status, error.code.as_str(), error.field.as_deref()), expected, "{raw}");
    }

    #[test]
    fn json_errors_map_to_codes() {
        check(r#"{"title": "#, (StatusCode::BAD_REQUEST, "malformed_json", None));
        check("", (StatusCode::BAD_REQUEST, "malformed_json", None));
        check(r#"{"title": 1, "price_fen": 1}"#, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", Some("title")));
        check(r#"{"title": "a"}"#, (StatusCode::UNPROCESSABLE_ENTITY, "missing_field", Some("price_fen")));
        check(
            r#"{"title": "a", "price_fen": 99999999999999999999}"#,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", Some("price_fen")),
        );
        check(
            r#"{"title": "a", "price_fen": 1, "x": 1}"#,
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", Some("x")),
        );
        check(r#"[1]"#, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", Some("[0]")));
        check("null", (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", None));
    }
}
