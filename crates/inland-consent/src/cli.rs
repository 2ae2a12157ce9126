//! `inland consent grant|withdraw|show|history`: the ConsentService of a gateway, called
//! with an operator certificate. The defaults reach `inland run`'s gateway with the dev
//! certificates under `.inland/certs`.
//!
//! ```no_run
//! # async fn consent(command: inland_consent::cli::ConsentCommand) -> Result<(), inland_consent::Error> {
//! print!("{}", inland_consent::cli::run(command).await?);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use inland_core::Vin;
use inland_proto::consent::v1::consent_service_client::ConsentServiceClient;
use inland_proto::consent::v1::{
    Category, Channel, GetRequest, GrantRequest, HistoryRequest, Notice, Subject, WithdrawRequest,
    consent_event,
};
use inland_tls::{ClientTls, Issued};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel as GrpcChannel, Endpoint};

use crate::{Error, report};

/// The metadata header naming the operator on a plain-text (loopback dev) gateway.
pub const DEV_OPERATOR_HEADER: &str = "x-inland-operator";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConsentCommand {
    /// Record a grant: categories for purposes, with the notice shown and who decided.
    Grant(GrantArgs),
    /// Record a withdrawal (all categories and purposes unless named); opens an erasure
    /// request for what is already held.
    Withdraw(WithdrawArgs),
    /// Show a vehicle's current consent and its erasure requests.
    Show(ShowArgs),
    /// Show a vehicle's consent events, oldest first.
    History(ShowArgs),
}

/// Where the gateway is and the operator's credentials.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The gateway: https:// (mutual TLS), or http:// for its loopback dev mode
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:50051")]
    pub gateway: String,
    /// The name the gateway's certificate carries
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// The CA that signed the gateway's certificate
    #[arg(long, value_name = "PEM", default_value = ".inland/certs/ca.pem")]
    pub ca: PathBuf,
    /// The operator certificate: issued by the fleet CA with subject OU inland-operator
    /// (`inland dev-certs` writes one)
    #[arg(long, value_name = "PEM", default_value = ".inland/certs/operator.pem")]
    pub cert: PathBuf,
    /// The operator certificate's private key
    #[arg(long, value_name = "PEM", default_value = ".inland/certs/operator.key")]
    pub key: PathBuf,
    /// The operator name sent to an http:// (dev mode) gateway, which has no certificates
    #[arg(long, default_value = "dev-operator")]
    pub operator: String,
}

/// Whose consent.
#[derive(Debug, Clone, clap::Args)]
pub struct SubjectArgs {
    /// The vehicle
    #[arg(long)]
    pub vin: Vin,
    /// A driver profile the vehicle reports, instead of the vehicle (its owner) itself
    #[arg(long, value_name = "ID")]
    pub driver_profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CategoryArg {
    Telemetry,
    PreciseLocation,
    CameraFrames,
    CabinCamera,
    Voice,
}

/// The channels an operator records; a vehicle's HMI records its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelArg {
    /// A person at the operator (customer service, a signed form)
    Operator,
    /// The owner's phone app, relayed by the operator's backend
    CompanionApp,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// A category granted (repeat for several)
    #[arg(long = "category", value_enum, required = true)]
    pub categories: Vec<CategoryArg>,
    /// A purpose it is granted for (repeat for several), e.g. driving_statistics
    #[arg(long = "purpose", required = true)]
    pub purposes: Vec<String>,
    /// The version of the notice the person was shown, e.g. 2026-03
    #[arg(long)]
    pub notice_version: String,
    /// The notice text shown; its SHA-256 is recorded
    #[arg(long, value_name = "FILE", required_unless_present = "notice_sha256")]
    pub notice_file: Option<PathBuf>,
    /// The SHA-256 of the notice text shown (64 hex digits), instead of --notice-file
    #[arg(long, value_name = "HEX", conflicts_with = "notice_file")]
    pub notice_sha256: Option<String>,
    #[arg(long, value_enum, default_value = "operator")]
    pub channel: ChannelArg,
    /// Who decided, e.g. "owner (signed form 2026-118)"
    #[arg(long)]
    pub actor: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WithdrawArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// A category withdrawn (repeat for several); none: every category
    #[arg(long = "category", value_enum)]
    pub categories: Vec<CategoryArg>,
    /// A purpose it is withdrawn for (repeat for several); none: every purpose
    #[arg(long = "purpose")]
    pub purposes: Vec<String>,
    #[arg(long, value_enum, default_value = "operator")]
    pub channel: ChannelArg,
    /// Who decided
    #[arg(long)]
    pub actor: String,
    /// Why, if the person said
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub subject: SubjectArgs,
}

/// Runs the command against the gateway and returns what to print.
pub async fn run(command: ConsentCommand) -> Result<String, Error> {
    match command {
        ConsentCommand::Grant(args) => {
            let sha256 = match (&args.notice_sha256, &args.notice_file) {
                (Some(hex), _) => hex.clone(),
                (None, Some(file)) => notice_sha256(file)?,
                (None, None) => unreachable!("clap requires one of them"),
            };
            let request = GrantRequest {
                subject: Some(subject(&args.subject)),
                categories: categories(&args.categories),
                purposes: args.purposes,
                notice: Some(Notice {
                    version: args.notice_version,
                    sha256,
                }),
                channel: channel(args.channel),
                actor: args.actor,
            };
            let mut client = connect(&args.connection).await?;
            let event = client
                .grant(args.connection.request(request))
                .await
                .map_err(Error::Refused)?
                .into_inner()
                .event
                .unwrap_or_default();
            Ok(format!(
                "Recorded: {}\n\n{}",
                report::event(&event),
                report::state(&event.state.unwrap_or_default())
            ))
        }
        ConsentCommand::Withdraw(args) => {
            let request = WithdrawRequest {
                subject: Some(subject(&args.subject)),
                categories: categories(&args.categories),
                purposes: args.purposes,
                channel: channel(args.channel),
                actor: args.actor,
                reason: args.reason.unwrap_or_default(),
            };
            let mut client = connect(&args.connection).await?;
            let response = client
                .withdraw(args.connection.request(request))
                .await
                .map_err(Error::Refused)?
                .into_inner();
            let event = response.event.unwrap_or_default();
            debug_assert!(matches!(
                event.change,
                Some(consent_event::Change::Withdrawn(_))
            ));
            Ok(format!(
                "Recorded: {}\nUploads of what was withdrawn are refused from now on. Erasure \
                 request {} is open for what is already held; `inland consent show --vin {}` \
                 tracks it.\n\n{}",
                report::event(&event),
                response.erasure_request_id,
                args.subject.vin.as_str(),
                report::state(&event.state.unwrap_or_default())
            ))
        }
        ConsentCommand::Show(args) => {
            let mut client = connect(&args.connection).await?;
            let request = GetRequest {
                subject: Some(subject(&args.subject)),
                include_driver_profiles: args.subject.driver_profile.is_none(),
            };
            let states = client
                .get(args.connection.request(request))
                .await
                .map_err(Error::Refused)?
                .into_inner()
                .states;
            Ok(states
                .iter()
                .map(report::state)
                .collect::<Vec<_>>()
                .join("\n"))
        }
        ConsentCommand::History(args) => {
            let mut client = connect(&args.connection).await?;
            let request = HistoryRequest {
                subject: Some(subject(&args.subject)),
                include_driver_profiles: args.subject.driver_profile.is_none(),
            };
            let events = client
                .history(args.connection.request(request))
                .await
                .map_err(Error::Refused)?
                .into_inner()
                .events;
            Ok(report::history(&events))
        }
    }
}

impl Connection {
    fn plaintext(&self) -> bool {
        self.gateway.starts_with("http://")
    }

    /// A request, naming the operator in a header for a plain-text dev gateway.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if self.plaintext()
            && let Ok(name) = self.operator.parse()
        {
            request.metadata_mut().insert(DEV_OPERATOR_HEADER, name);
        }
        request
    }
}

async fn connect(c: &Connection) -> Result<ConsentServiceClient<GrpcChannel>, Error> {
    let failed = |source| Error::Connect {
        url: c.gateway.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(c.gateway.clone()).map_err(failed)?;
    if !c.plaintext() {
        let tls = ClientTls {
            server_ca_pem: read(&c.ca)?,
            server_name: c.server_name.clone(),
            identity: Issued {
                cert_pem: read(&c.cert)?,
                key_pem: read(&c.key)?,
            },
        };
        endpoint = endpoint.tls_config(tls.config()).map_err(failed)?;
    }
    Ok(ConsentServiceClient::new(
        endpoint.connect().await.map_err(failed)?,
    ))
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// The SHA-256 of a notice file, as recorded in a grant.
pub fn notice_sha256(path: &Path) -> Result<String, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex::encode(Sha256::digest(&text)))
}

fn subject(args: &SubjectArgs) -> Subject {
    Subject {
        vin: args.vin.as_str().to_owned(),
        driver_profile_id: args.driver_profile.clone().unwrap_or_default(),
    }
}

fn categories(args: &[CategoryArg]) -> Vec<i32> {
    args.iter()
        .map(|c| {
            (match c {
                CategoryArg::Telemetry => Category::Telemetry,
                CategoryArg::PreciseLocation => Category::PreciseLocation,
                CategoryArg::CameraFrames => Category::CameraFrames,
                CategoryArg::CabinCamera => Category::CabinCamera,
                CategoryArg::Voice => Category::Voice,
            }) as i32
        })
        .collect()
}

fn channel(arg: ChannelArg) -> i32 {
    (match arg {
        ChannelArg::Operator => Channel::Operator,
        ChannelArg::CompanionApp => Channel::CompanionApp,
    }) as i32
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ConsentCommand,
    }

    fn parse(args: &[&str]) -> Result<ConsentCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("consent").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn grant_needs_categories_purposes_a_notice_and_an_actor() {
        let ok = parse(&[
            "grant",
            "--vin",
            "LSVAU2180N2183294",
            "--category",
            "telemetry",
            "--category",
            "precise-location",
            "--purpose",
            "driving_statistics",
            "--notice-version",
            "2026-03",
            "--notice-sha256",
            &"a".repeat(64),
            "--actor",
            "owner",
        ])
        .unwrap();
        let ConsentCommand::Grant(g) = ok else {
            panic!()
        };
        assert_eq!(
            categories(&g.categories),
            [Category::Telemetry as i32, Category::PreciseLocation as i32]
        );
        assert_eq!(
            g.connection.cert,
            PathBuf::from(".inland/certs/operator.pem")
        );
        assert_eq!(g.connection.gateway, "https://127.0.0.1:50051");
        for missing in ["--category", "--purpose", "--notice-version", "--actor"] {
            let mut args = vec![
                "grant",
                "--vin",
                "LSVAU2180N2183294",
                "--category",
                "telemetry",
                "--purpose",
                "p",
                "--notice-version",
                "1",
                "--notice-sha256",
                "x",
                "--actor",
                "owner",
            ];
            let i = args.iter().position(|a| *a == missing).unwrap();
            args.drain(i..i + 2);
            assert!(parse(&args).is_err(), "{missing} is required");
        }
        assert!(
            parse(&[
                "grant",
                "--vin",
                "LSVAU2180N2183294",
                "--category",
                "telemetry",
                "--purpose",
                "p",
                "--notice-version",
                "1",
                "--actor",
                "owner"
            ])
            .is_err(),
            "a notice hash or file is required"
        );
        assert!(parse(&["show", "--vin", "NOT-A-VIN"]).is_err());
    }

    #[test]
    fn the_notice_file_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notice.txt");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(
            notice_sha256(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let missing = notice_sha256(&dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.code(), inland_core::ErrorCode::NotFound);
    }
}
