//! The one error shape every endpoint answers with: an HTTP status and a JSON body
//! `{"error": {"status", "code", "message", "limit"?}}` whose message names the problem and the fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitseek_store::{ErrorKind, StoreError};
use serde::Serialize;

/// A limit a request ran into: its name (the `bitseek serve` flag without dashes) and its value.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub value: u64,
}

/// An error answered to the client. `code` is a stable machine-readable word; `message` is for
/// people and says what to do.
#[derive(Clone, Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            limit: None,
        }
    }

    /// 400: the request is well-formed JSON but asks for something invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A request over one of the server's limits.
    pub fn limit(status: StatusCode, name: &'static str, value: u64, message: String) -> Self {
        ApiError {
            status,
            code: "limit_exceeded",
            message,
            limit: Some(Limit { name, value }),
        }
    }

    /// 500: something failed on the server's side (I/O, a damaged file).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e.kind() {
            ErrorKind::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "conflict", message),
            ErrorKind::BadInput => Self::bad_request(message),
            ErrorKind::NoSpace => Self::new(StatusCode::INSUFFICIENT_STORAGE, "no_space", message),
            ErrorKind::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ErrorKind::Internal => Self::internal(message),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyInner<'a>,
}

#[derive(Serialize)]
struct BodyInner<'a> {
    status: u16,
    #[serde(flatten)]
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            eprintln!("bitseek-server: {} {}", self.status, self.message);
        }
        let body = Body {
            error: BodyInner {
                status: self.status.as_u16(),
                error: &self,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
