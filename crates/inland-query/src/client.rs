//! A client of the HTTP API, for `inland sql --server` and tests.

use std::path::Path;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;

use crate::Error;
use crate::http::QueryRequest;
use crate::output::Format;

/// Talks to one query server as one caller.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    /// `base` is the server's URL (`https://query.example.cn:8081`; plain `http://` only
    /// to a loopback address, as the token travels with every request); `ca_file` trusts
    /// a private CA.
    pub fn new(base: &str, token: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let bad = |problem: String| Error::Client {
            url: base.into(),
            problem,
        };
        let url = reqwest::Url::parse(base).map_err(|e| bad(format!("not a URL: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(bad(
                    "use https (plain http only to a loopback address): the token travels \
                     with every request"
                        .into(),
                ));
            }
        }
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| bad(format!("cannot read the CA file {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| bad(format!("{} is not a PEM certificate: {e}", path.display())))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            url: format!("{}/v1/query", base.trim_end_matches('/')),
            token: token.into(),
        })
    }

    /// Runs `sql` and returns the encoded body.
    pub async fn query_raw(&self, sql: &str, format: Format) -> Result<Bytes, Error> {
        let request = QueryRequest {
            sql: sql.into(),
            format: Some(format),
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&request)
            .send()
            .await
            .map_err(|e| self.failed(format!("the request failed: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.failed(format!("reading the answer failed: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(Error::Server {
            status: status.as_u16(),
            message,
        })
    }

    /// Runs `sql` and decodes the result (fetched as an Arrow IPC stream).
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
        let body = self.query_raw(sql, Format::Arrow).await?;
        let reader = StreamReader::try_new(body.as_ref(), None)
            .map_err(|e| self.failed(format!("not an Arrow IPC stream: {e}")))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed(format!("a broken Arrow IPC stream: {e}")))?;
        Ok((schema, batches))
    }

    fn failed(&self, problem: String) -> Error {
        Error::Client {
            url: self.url.clone(),
            problem,
        }
    }
}
