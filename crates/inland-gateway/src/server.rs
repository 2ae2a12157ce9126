use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use inland_consent::proto::consent_service_server::ConsentServiceServer;
use inland_consent::{ConsentLedger, ConsentLog};
use inland_proto::ingest::v1::in_place::vehicle_ingest_server::VehicleIngestServer;
use inland_stage::Producer;
use inland_tls::ServerTls;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::consent::ConsentCheck;
use crate::consent_api::ConsentApi;
use crate::service::IngestService;
use crate::{Error, GatewayConfig, metrics};

/// HTTP/2 flow-control windows: large enough that a stream's in-flight uploads (frames
/// included) are not throttled by the window before the gateway's own in-flight bound.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// How vehicles connect: mutual TLS (the default), or plain text on loopback for local
/// development.
#[derive(Debug, Clone)]
pub enum GatewayTls {
    Mutual(ServerTls),
    LoopbackPlaintext,
}

/// A gateway bound to its port, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    service: IngestService,
    consent: ConsentApi,
    ledger: ConsentLedger,
    tls: GatewayTls,
    max_message_bytes: usize,
}

impl Gateway {
    /// Checks the configuration and binds the listening socket, so callers learn the
    /// address (port 0 picks a free one) before serving. `producer` carries uploads to
    /// `config.raw_topic`; `consent` is the consent topic (`config.consent_topic`) with
    /// its caught-up view: what uploads are checked against and where the ConsentService
    /// appends.
    pub async fn bind(
        config: GatewayConfig,
        producer: Arc<dyn Producer>,
        consent: ConsentLog,
    ) -> Result<Self, Error> {
        if consent.view.topic() != config.consent_topic {
            return Err(Error::Config(format!(
                "the consent view follows {}, but gateway.consent_topic is {}",
                consent.view.topic(),
                config.consent_topic
            )));
        }
        let tls = match (&config.tls, config.insecure_plaintext) {
            (_, true) if !config.listen.ip().is_loopback() => {
                return Err(Error::Config(format!(
                    "plain-text gRPC is allowed only on a loopback address, not {}",
                    config.listen
                )));
            }
            (_, true) => GatewayTls::LoopbackPlaintext,
            (Some(files), false) => GatewayTls::Mutual(files.clone()),
            (None, false) => {
                return Err(Error::Config(
                    "gateway.tls is not set: give cert, key and client_ca (`inland dev-certs` makes a set for testing)"
                        .into(),
                ));
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let max_message_bytes = config.max_message_bytes;
        let check = ConsentCheck::new(consent.view.clone(), &config.exterior_cameras)?;
        let ledger =
            ConsentLedger::new(consent, &config.consent_purposes, config.delivery_timeout)?;
        let plaintext = config.insecure_plaintext;
        let service = IngestService::new(config, producer, check)?;
        let consent = ConsentApi::new(ledger.clone(), service.rate_limit().clone(), plaintext);
        Ok(Self {
            listener,
            service,
            consent,
            ledger,
            tls,
            max_message_bytes,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight uploads
    /// finish (each is acked only once durable).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let addr = self.local_addr();
        let mut builder = transport(&self.tls)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<VehicleIngestServer<IngestService>>()
            .await;
        health
            .set_serving::<ConsentServiceServer<ConsentApi>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(inland_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| Error::Config(format!("reflection: {e}")))?;
        let ingest = VehicleIngestServer::new(self.service.clone())
            .max_decoding_message_size(self.max_message_bytes);

        let consent = ConsentServiceServer::new(self.consent.clone());
        let stop_restating = CancellationToken::new();
        let restating = tokio::spawn(
            self.ledger
                .clone()
                .restate_conflicts(stop_restating.clone()),
        );
        let rate = self.service.rate_limit().clone();
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                rate.forget_idle();
            }
        });
        metrics::serving(addr, matches!(self.tls, GatewayTls::Mutual(_)));
        let served = builder
            .add_service(health_service)
            .add_service(reflection)
            .add_service(ingest)
            .add_service(consent)
            .serve_with_incoming_shutdown(accepted(self.listener), shutdown)
            .await;
        sweeper.abort();
        stop_restating.cancel();
        let _ = restating.await;
        Ok(served?)
    }
}

/// The transport of every gateway listener: HTTP/2 with the windows above, under mutual TLS
/// unless plain text on loopback was asked for. Public so that the gateway bench can
/// measure this transport alone, on the very same settings.
pub fn transport(tls: &GatewayTls) -> Result<Server, Error> {
    let builder = Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    Ok(match tls {
        GatewayTls::Mutual(files) => builder.tls_config(files.load()?)?,
        GatewayTls::LoopbackPlaintext => builder,
    })
}

/// The connections `listener` accepts, each with TCP_NODELAY: acks are small writes, and
/// without it Nagle's algorithm holds them back until the vehicle's delayed ACK, adding
/// tens of milliseconds to every ack.
pub fn accepted(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map_ok(|stream| {
        let _ = stream.set_nodelay(true);
        stream
    })
}
