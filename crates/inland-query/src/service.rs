//! `inland query`: the Flight SQL and HTTP listeners over one engine.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::archive::Archive;
use crate::auth::Tokens;
use crate::config::{QueryConfig, TlsFiles};
use crate::engine::Engine;
use crate::flight::FlightSqlServer;
use crate::{Error, http, metrics};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving, query service.
pub struct QueryService {
    engine: Arc<Engine>,
    tokens: Arc<Tokens>,
    flight: TcpListener,
    http: TcpListener,
    tls: Option<TlsFiles>,
}

impl QueryService {
    /// Checks the configuration, loads the tokens, opens the engine over `archive` and
    /// binds both listeners (port 0 picks a free port; see the `*_addr` methods).
    pub async fn bind(archive: &Archive, config: &QueryConfig) -> Result<Self, Error> {
        config.validate()?;
        let tokens = Arc::new(Tokens::load(config.token_file.as_deref())?);
        if let Some(tls) = &config.tls {
            // Fail at start, not at the first client.
            server_tls(tls)?;
        }
        let engine = Arc::new(Engine::new(archive, config)?);
        let bind = |addr: SocketAddr, name: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("cannot listen on {name} = {addr}: {e}")))
        };
        Ok(Self {
            engine,
            tokens,
            flight: bind(config.flight_listen, "flight_listen").await?,
            http: bind(config.http_listen, "http_listen").await?,
            tls: config.tls.clone(),
        })
    }

    pub fn flight_addr(&self) -> SocketAddr {
        self.flight
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight queries finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        metrics::serving(
            self.flight_addr(),
            self.http_addr(),
            self.engine.audit_chain(),
        );
        let shutdown = shutdown.shared();
        let mut grpc = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            grpc = grpc
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| Error::Config(format!("query.tls: {e}")))?;
        }
        let flight = grpc
            .add_service(
                FlightSqlServer::new(self.engine.clone(), self.tokens.clone()).into_service(),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.flight),
                shutdown.clone(),
            );
        let router = http::router(self.engine, self.tokens);
        let http = async move {
            match &self.tls {
                None => {
                    axum::serve(self.http, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
                Some(tls) => {
                    let listener =
                        TlsListener::start(self.http, TlsAcceptor::from(server_tls(tls)?));
                    axum::serve(listener, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
            }
            .map_err(|e| Error::Internal(format!("the HTTP server stopped: {e}")))
        };
        let (flight, http) = tokio::join!(flight, http);
        flight.map_err(|e| Error::Internal(format!("the Flight SQL server stopped: {e}")))?;
        http
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("query.tls: cannot read {}: {e}", path.display())))
}

fn server_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, Error> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| Error::Config(format!("query.tls: {what}: {e}"));
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&files.cert.display().to_string(), &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad(&files.key.display().to_string(), &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("protocol versions", &e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad("certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and hands over those that completed the TLS handshake; the
/// handshakes run on their own tasks, so a slow client delays only itself.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn start(listener: TcpListener, acceptor: TlsAcceptor) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an HTTP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Self { ready, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use inland_core::ErrorCode;

    use super::*;
    use crate::client::Client;
    use crate::output::Format;
    use crate::testing::{self, token_file};

    fn local_config(token_file: std::path::PathBuf) -> QueryConfig {
        QueryConfig {
            flight_listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            token_file: Some(token_file),
            ..QueryConfig::default()
        }
    }

    #[tokio::test]
    async fn the_http_api_answers_in_each_format_and_maps_errors_to_statuses() {
        let fixture = testing::archive().await;
        let (tokens_path, [analyst, ..]) = token_file(fixture.dir.path());
        let mut config = local_config(tokens_path);
        config.limits.analyst.max_rows = 5;
        let service = QueryService::bind(&fixture.archive, &config).await.unwrap();
        let base = format!("http://{}", service.http_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(service.serve(async {
            let _ = stopped.await;
        }));

        let client = Client::new(&base, &analyst, None).unwrap();
        let (schema, batches) = client
            .query("SELECT camera_id, count(*) AS n FROM frame_index GROUP BY camera_id ORDER BY camera_id")
            .await
            .unwrap();
        assert_eq!(schema.field(0).name(), "camera_id");
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
        let csv = client
            .query_raw("SELECT 1 AS a, 'x' AS b", Format::Csv)
            .await
            .unwrap();
        assert_eq!(&csv[..], b"a,b\n1,x\n");
        let json = client
            .query_raw("SELECT 1 AS a, 'x' AS b", Format::Json)
            .await
            .unwrap();
        assert_eq!(&json[..], br#"[{"a":1,"b":"x"}]"#);

        let status = |e: Error| match e {
            Error::Server { status, message } => (status, message),
            other => panic!("not a server error: {other}"),
        };
        let wrong = Client::new(&base, "inq_wrong", None).unwrap();
        let (code, message) = status(wrong.query("SELECT 1").await.unwrap_err());
        assert_eq!(code, 401, "{message}");
        let (code, message) = status(
            client
                .query("SELECT pseudonym FROM telemetry")
                .await
                .unwrap_err(),
        );
        assert_eq!(
            code,
            ErrorCode::ResourceExhausted.http_status(),
            "{message}"
        );
        assert!(message.contains("more than 5 rows"), "{message}");
        let (code, _) = status(
            client
                .query("SELECT * FROM consent_events")
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 404);

        // A body that is not the JSON request, sent by hand.
        let response = reqwest::Client::new()
            .post(format!("{base}/v1/query"))
            .bearer_auth(&analyst)
            .body("SELECT 1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_input");
        let response = reqwest::Client::new()
            .post(format!("{base}/v1/query"))
            .json(&serde_json::json!({"sql": "SELECT 1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);

        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn with_tls_the_http_api_is_served_over_https_only() {
        let fixture = testing::archive().await;
        let (tokens_path, [analyst, ..]) = token_file(fixture.dir.path());
        let ca = inland_tls::FleetCa::generate().unwrap();
        let server = ca.issue_server(&["localhost".into()]).unwrap();
        let dir = fixture.dir.path();
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        let mut config = local_config(tokens_path);
        config.tls = Some(TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        });
        let service = QueryService::bind(&fixture.archive, &config).await.unwrap();
        let port = service.http_addr().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(service.serve(async {
            let _ = stopped.await;
        }));
        let https = Client::new(
            &format!("https://localhost:{port}"),
            &analyst,
            Some(&dir.join("ca.pem")),
        )
        .unwrap();
        let (_, batches) = https.query("SELECT 42 AS answer").await.unwrap();
        assert_eq!(batches[0].num_rows(), 1);
        let untrusted = Client::new(&format!("https://localhost:{port}"), &analyst, None).unwrap();
        assert!(matches!(
            untrusted.query("SELECT 1").await,
            Err(Error::Client { .. })
        ));
        let plain = Client::new(&format!("http://localhost:{port}"), &analyst, None).unwrap();
        assert!(plain.query("SELECT 1").await.is_err());
        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_bad_tls_file_or_token_list_stops_the_start() {
        let fixture = testing::archive().await;
        let (tokens_path, _) = token_file(fixture.dir.path());
        let mut config = local_config(tokens_path);
        config.tls = Some(TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        });
        let err = QueryService::bind(&fixture.archive, &config)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        let config = local_config(fixture.dir.path().join("missing-tokens.toml"));
        let err = QueryService::bind(&fixture.archive, &config)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    }
}
