//! The HTTP API.
//!
//! `POST /v1/query` with `Authorization: Bearer <token>` and a JSON body
//! `{"sql": "SELECT …", "format": "json" | "csv" | "arrow"}` (`format` optional: else
//! the `Accept` header decides — `application/json`, `text/csv`,
//! `application/vnd.apache.arrow.stream` — and JSON is the default). The answer carries
//! `x-inland-rows` and `x-inland-audit` (`chain/seq` of the audit entry). Errors are
//! `{"error": {"code": "...", "message": "..."}}` with the code's HTTP status.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::Error;
use crate::auth::Tokens;
use crate::engine::{Engine, Interface};
use crate::output::{Format, encode};

/// Response header: rows in the result.
pub const ROWS_HEADER: &str = "x-inland-rows";
/// Response header: `chain/seq` of the query's audit entry.
pub const AUDIT_HEADER: &str = "x-inland-audit";

/// The body of `POST /v1/query`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

#[derive(Clone)]
struct Api {
    engine: Arc<Engine>,
    tokens: Arc<Tokens>,
}

/// The API's routes.
pub fn router(engine: Arc<Engine>, tokens: Arc<Tokens>) -> Router {
    Router::new()
        .route("/v1/query", post(query))
        .with_state(Api { engine, tokens })
}

async fn query(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or(""));
    let who = match api.tokens.caller(authorization, Interface::Http) {
        Ok(who) => who,
        Err(e) => return error(&e),
    };
    let request: QueryRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(&Error::Sql(format!(
                "the body must be JSON {{\"sql\": \"SELECT …\", \"format\": \"json|csv|arrow\"}}: {e}"
            )));
        }
    };
    let format = request.format.unwrap_or_else(|| {
        Format::from_accept(headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()))
    });
    let result = match api.engine.query(&who, Interface::Http, &request.sql).await {
        Ok(result) => result,
        Err(e) => return error(&e),
    };
    let body = match encode(format, &result.schema, &result.batches) {
        Ok(body) => body,
        Err(e) => return error(&e),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    headers.insert(ROWS_HEADER, HeaderValue::from(result.rows));
    if let Ok(audit) =
        HeaderValue::from_str(&format!("{}/{}", result.audit.chain, result.audit.seq))
    {
        headers.insert(AUDIT_HEADER, audit);
    }
    response
}

fn error(e: &Error) -> Response {
    let code = e.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "error": { "code": code.as_str(), "message": e.to_string() }
    });
    (status, axum::Json(body)).into_response()
}
