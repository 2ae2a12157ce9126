//! SDK errors → [`Error`]: each failure the operator can act on gets its own variant with
//! what to do; the store's own text is kept as detail, minus the access key id.

use std::error::Error as StdError;

use aws_sdk_s3::config::http::HttpResponse as Response;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::connect::Connection;
use crate::Error;

/// Maps a failed `op` on `key` ("" for bucket operations).
pub(crate) fn classify<E>(
    op: &'static str,
    conn: &Connection,
    key: &str,
    err: SdkError<E, Response>,
) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let endpoint = conn.endpoint.clone();
    match &err {
        SdkError::TimeoutError(_) => Error::Timeout { op, endpoint },
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                return Error::Timeout { op, endpoint };
            }
            let detail = redact(conn, &chain(&err));
            if mentions_tls(&err) {
                Error::Tls { endpoint, detail }
            } else {
                Error::Unreachable { endpoint, detail }
            }
        }
        SdkError::ServiceError(service) => {
            let reply = Reply {
                status: service.raw().status().as_u16(),
                code: service.err().code().unwrap_or_default(),
                message: service.err().message().unwrap_or_default().to_owned(),
                bucket_region: service
                    .raw()
                    .headers()
                    .get("x-amz-bucket-region")
                    .map(str::to_owned),
            };
            reply.into_error(op, conn, key)
        }
        _ => Error::Service {
            op,
            status: err.raw_response().map_or(0, |r| r.status().as_u16()),
            code: "InvalidResponse".into(),
            detail: redact(conn, &chain(&err)),
        },
    }
}

/// What the store answered, in the parts the mapping looks at.
struct Reply<'a> {
    status: u16,
    code: &'a str,
    message: String,
    bucket_region: Option<String>,
}

impl Reply<'_> {
    fn into_error(self, op: &'static str, conn: &Connection, key: &str) -> Error {
        let bucket = conn.bucket.clone();
        let detail = if self.message.is_empty() {
            format!("{} (HTTP {})", self.code_or_status(), self.status)
        } else {
            redact(conn, &self.message)
        };
        match (self.code, self.status) {
            ("NoSuchKey", _) => Error::NotFound(key.to_owned()),
            ("", 404) if !key.is_empty() => Error::NotFound(key.to_owned()),
            ("NoSuchBucket", _) | ("", 404) => Error::NoSuchBucket {
                bucket,
                endpoint: conn.endpoint.clone(),
            },
            (
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken",
                _,
            ) => Error::BadCredentials { op, detail },
            // Garage answers AccessDenied for an unknown key or a bad signature.
            ("AccessDenied", _) if self.about_credentials() => Error::BadCredentials { op, detail },
            _ if self.wrong_region().is_some() => {
                let actual = self.wrong_region().unwrap_or_default();
                Error::WrongRegion {
                    bucket,
                    configured: conn.region.clone(),
                    allowed: conn.allowed_regions.contains(&actual),
                    actual,
                }
            }
            _ if self.about_encryption() => Error::Encryption {
                op,
                key: key.to_owned(),
                detail,
            },
            ("AccessDenied" | "AllAccessDisabled" | "AccountProblem", _) | ("", 403) => {
                Error::AccessDenied { op, bucket, detail }
            }
            _ => Error::Service {
                op,
                status: self.status,
                code: self.code_or_status(),
                detail,
            },
        }
    }

    fn code_or_status(&self) -> String {
        if self.code.is_empty() {
            format!("HTTP{}", self.status)
        } else {
            self.code.to_owned()
        }
    }

    /// The store's region when the reply says our requests are signed for, or sent to,
    /// the wrong one; "another region" when it says so without naming it.
    fn wrong_region(&self) -> Option<String> {
        let region_reply = matches!(
            self.code,
            "PermanentRedirect" | "IllegalLocationConstraintException" | "InvalidRegion"
        ) || (self.code == "AuthorizationHeaderMalformed"
            && (self.message.contains("region") || self.message.contains("scope")))
            || (self.code.is_empty() && self.status == 301);
        if !region_reply {
            return None;
        }
        Some(
            self.bucket_region
                .clone()
                .or_else(|| region_in_message(&self.message))
                .unwrap_or_else(|| "another region".into()),
        )
    }

    fn about_credentials(&self) -> bool {
        let message = self.message.to_ascii_lowercase();
        message.contains("signature") || message.contains("no such key")
    }

    fn about_encryption(&self) -> bool {
        let message = self.message.to_ascii_lowercase();
        self.code.contains("Encryption")
            || (matches!(
                self.code,
                "InvalidRequest" | "InvalidArgument" | "BadRequest"
            ) && (message.contains("encrypt") || message.contains("customer")))
    }
}

/// The expected region in a signing-region complaint: Garage's "expected:
/// 'DATE/REGION/s3/aws4_request'", or AWS's "expecting 'REGION'".
fn region_in_message(message: &str) -> Option<String> {
    if let Some((_, rest)) = message.split_once("expected: '") {
        let scope = rest.split('\'').next()?;
        return scope.split('/').nth(1).map(str::to_owned);
    }
    let (_, rest) = message.split_once("expecting '")?;
    rest.split('\'').next().map(str::to_owned)
}

/// Every message of the error's chain, including what `io::Error`s wrap (their `source`
/// skips it), joined by ": ".
fn chain(err: &(dyn StdError + 'static)) -> String {
    // The SDK's and hyper's wrappers, which say nothing the inner errors do not.
    const WRAPPERS: [&str; 3] = ["dispatch failure", "io error", "client error (Connect)"];
    let mut parts: Vec<String> = Vec::new();
    visit(err, &mut |e| {
        let text = e.to_string();
        if !WRAPPERS.contains(&text.as_str()) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    });
    parts.join(": ")
}

fn mentions_tls(err: &(dyn StdError + 'static)) -> bool {
    let mut found = false;
    visit(err, &mut |e| found |= e.is::<rustls::Error>());
    found
}

fn visit<'a>(err: &'a (dyn StdError + 'static), f: &mut impl FnMut(&'a (dyn StdError + 'static))) {
    let mut next = Some(err);
    while let Some(e) = next {
        f(e);
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            visit(inner, f);
        }
        next = e.source();
    }
}

fn redact(conn: &Connection, text: &str) -> String {
    if conn.access_key_id.is_empty() {
        return text.to_owned();
    }
    text.replace(&conn.access_key_id, "<access key id>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        Connection {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: "inland".into(),
            endpoint: "http://127.0.0.1:3900".into(),
            region: "cn-northwest-1".into(),
            allowed_regions: vec!["cn-north-1".into(), "cn-northwest-1".into()],
            access_key_id: "GKSECRETISH".into(),
        }
    }

    fn reply(status: u16, code: &str, message: &str) -> Error {
        Reply {
            status,
            code,
            message: message.into(),
            bucket_region: None,
        }
        .into_error("GetObject", &conn(), "dataset=telemetry/x")
    }

    #[test]
    fn a_signing_region_complaint_names_both_regions() {
        let err = reply(
            400,
            "AuthorizationHeaderMalformed",
            "Authorization header malformed, unexpected scope: \
             '20260101/cn-northwest-1/s3/aws4_request', expected: '20260101/cn-north-1/s3/aws4_request'",
        );
        let text = err.to_string();
        assert!(
            matches!(&err, Error::WrongRegion { actual, allowed: true, .. } if actual == "cn-north-1"),
            "{err:?}"
        );
        assert!(
            text.contains("\"cn-north-1\"") && text.contains("\"cn-northwest-1\""),
            "{text}"
        );
        let err = reply(
            400,
            "AuthorizationHeaderMalformed",
            "the region 'cn-northwest-1' is wrong; expecting 'us-west-2'",
        );
        assert!(
            matches!(&err, Error::WrongRegion { actual, allowed: false, .. } if actual == "us-west-2"),
            "{err:?}"
        );
        assert!(err.to_string().contains("not an allowed region"));
    }

    #[test]
    fn codes_map_to_actionable_errors() {
        assert!(
            matches!(reply(404, "NoSuchKey", ""), Error::NotFound(k) if k == "dataset=telemetry/x")
        );
        assert!(matches!(
            reply(404, "NoSuchBucket", ""),
            Error::NoSuchBucket { .. }
        ));
        assert!(matches!(
            reply(403, "AccessDenied", "no"),
            Error::AccessDenied { .. }
        ));
        assert!(matches!(reply(403, "", ""), Error::AccessDenied { .. }));
        assert!(matches!(
            reply(403, "SignatureDoesNotMatch", ""),
            Error::BadCredentials { .. }
        ));
        assert!(matches!(
            reply(400, "InvalidRequest", "Object is encrypted"),
            Error::Encryption { .. }
        ));
        let err = reply(503, "SlowDown", "");
        assert_eq!(err.code(), inland_core::ErrorCode::ResourceExhausted);
        let err = reply(500, "InternalError", "boom");
        assert_eq!(err.code(), inland_core::ErrorCode::Unavailable);
        assert!(
            err.to_string().contains("InternalError (HTTP 500): boom"),
            "{err}"
        );
    }

    #[test]
    fn the_access_key_id_is_blanked_out() {
        let err = reply(403, "AccessDenied", "Forbidden: No such key: GKSECRETISH");
        assert!(matches!(err, Error::BadCredentials { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            !text.contains("GKSECRETISH") && text.contains("<access key id>"),
            "{text}"
        );
    }
}
