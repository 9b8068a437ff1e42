//! Search bodies as raw little-endian `f32` (`Content-Type: application/octet-stream`), next to
//! JSON: the query vectors are the body, `k`, `oversample` and `effort` the query string
//! (`POST /collections/{name}/search?k=10`). The collection's dimension says how many values
//! make a query, so `search/batch` takes `n × dim` values. Parsing a JSON array of 384 numbers
//! costs more than the search on a small collection; this costs one copy.

use crate::routes::{read_body, JsonBody};
use crate::{ApiError, AppState};
use axum::extract::{FromRequest, Query, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;

/// The media type of a raw body.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A search's parameters when its body is raw vectors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParams {
    #[serde(default = "crate::routes::default_k")]
    pub k: usize,
    #[serde(default)]
    pub oversample: Option<f32>,
    #[serde(default)]
    pub effort: Option<usize>,
}

/// A search body: JSON (`T`), or raw vectors with their parameters.
pub(crate) enum SearchBody<T> {
    Json(T),
    Raw { values: Vec<f32>, params: RawParams },
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<Arc<AppState>> for SearchBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let raw = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == OCTET_STREAM)
            });
        if !raw {
            return JsonBody::<T>::from_request(req, state)
                .await
                .map(|b| SearchBody::Json(b.0));
        }
        let (mut parts, body) = req.into_parts();
        let Query(params) =
            <Query<RawParams> as axum::extract::FromRequestParts<_>>::from_request_parts(
                &mut parts, state,
            )
            .await
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "bad query string for a raw body ({e}): give k, oversample and effort there, as in ?k=10&oversample=4&effort=32 (filters need a JSON body)"
                ))
            })?;
        let bytes = read_body(Request::from_parts(parts, body), state).await?;
        if !bytes.len().is_multiple_of(4) {
            return Err(ApiError::bad_request(format!(
                "the raw body has {} bytes, not a whole number of little-endian f32 values (4 bytes each)",
                bytes.len()
            )));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(SearchBody::Raw { values, params })
    }
}

/// Splits `values` into queries of `dim` values, or says why it cannot.
pub(crate) fn queries(values: &[f32], dim: usize) -> Result<usize, ApiError> {
    if values.is_empty() || !values.len().is_multiple_of(dim) {
        return Err(ApiError::bad_request(format!(
            "the raw body holds {} f32 values, not a positive multiple of the collection's dimension {dim}: send {dim} little-endian f32 values per query",
            values.len()
        )));
    }
    Ok(values.len() / dim)
}
