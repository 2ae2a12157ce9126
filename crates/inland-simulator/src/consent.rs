//! A simulated owner's consent. Before its first upload each vehicle grants, through the
//! ConsentService as a real vehicle's HMI would (its own certificate, channel vehicle
//! HMI), telemetry, camera frames and precise location for the configured purposes,
//! recording the simulated notice's version and SHA-256. Without it the gateway refuses
//! every upload: there is no implicit consent, simulated or not.

use inland_proto::consent::v1::consent_service_client::ConsentServiceClient;
use inland_proto::consent::v1::{Category, Channel, GrantRequest, Notice, Subject};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

use crate::fleet::{DEV_VIN_HEADER, Link};
use crate::stats::Stats;
use crate::vehicle::Backoff;
use crate::{Error, SimulatorConfig, metrics};

/// The notice a simulated owner is shown; its SHA-256 is recorded with the grant.
pub const NOTICE: &str = "Inland fleet simulator. This vehicle is simulated: no person drives \
it and no personal data is concerned. Its simulated owner consents to telemetry, camera \
frames and precise location for the purposes the simulator is configured with, and may \
withdraw at any time.";

/// Lower-case hex SHA-256 of [`NOTICE`].
pub fn notice_sha256() -> String {
    Sha256::digest(NOTICE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Grants the vehicle's consent, retrying while the gateway is unreachable (each failure
/// counts as a stream error); returns early (without granting) if `stop` fires first. A
/// refusal ends the run.
pub(crate) async fn grant(
    index: usize,
    link: &Link,
    config: &SimulatorConfig,
    stats: &Stats,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let mut client = ConsentServiceClient::new(link.channel.clone());
    let mut backoff = Backoff::default();
    loop {
        let mut request = Request::new(GrantRequest {
            subject: Some(Subject {
                vin: link.vin.as_str().to_owned(),
                driver_profile_id: String::new(),
            }),
            categories: [
                Category::Telemetry,
                Category::CameraFrames,
                Category::PreciseLocation,
            ]
            .map(|c| c as i32)
            .to_vec(),
            purposes: config.consent_purposes.clone(),
            notice: Some(Notice {
                version: config.consent_notice_version.clone(),
                sha256: notice_sha256(),
            }),
            channel: Channel::VehicleHmi as i32,
            actor: "owner (simulated)".into(),
        });
        if link.plaintext {
            let vin = link.vin.as_str().parse().expect("a VIN is ASCII");
            request.metadata_mut().insert(DEV_VIN_HEADER, vin);
        }
        let status = match client.grant(request).await {
            Ok(_) => {
                metrics::consented(index);
                return Ok(());
            }
            Err(status) => status,
        };
        if refuses(&status) {
            metrics::refused(index, &status);
            return Err(Error::Refused {
                vehicle: index,
                status,
            });
        }
        stats.stream_error(index, &status);
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Retrying an invalid or forbidden grant cannot help.
fn refuses(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::InvalidArgument
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_hash_is_the_sha256_of_the_notice() {
        let hash = notice_sha256();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, notice_sha256(), "stable");
        assert!(refuses(&tonic::Status::invalid_argument("unknown purpose")));
        assert!(!refuses(&tonic::Status::unavailable("restarting")));
    }
}
