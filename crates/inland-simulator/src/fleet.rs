//! Who the simulated vehicles are: a VIN each, derived from the seed, and a gRPC channel
//! each, authenticated by its own client certificate from the dev fleet CA.

use std::path::Path;
use std::time::Duration;

use inland_core::Vin;
use inland_tls::{ClientTls, DevCerts, FleetCa};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, SimulatorConfig};

/// VIN characters: digits and capitals without I, O and Q.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
/// A world manufacturer identifier in the Chinese range (L…), so data looks like a local
/// fleet's; "SM" for simulated.
const WMI: &str = "LSM";
/// Model year (S = 2025) and plant (S, simulator).
const YEAR_AND_PLANT: &str = "SS";

/// The VINs of a simulated fleet: one per vehicle, distinct, the same for the same seed.
/// Each carries a valid ISO 3779 check digit.
pub fn vins(seed: u64, vehicles: usize) -> Vec<Vin> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let descriptor: String = (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let first_serial: usize = rng.random_range(0..1_000_000);
    (0..vehicles)
        .map(|i| {
            let serial = (first_serial + i) % 1_000_000;
            let mut vin = format!("{WMI}{descriptor}0{YEAR_AND_PLANT}{serial:06}").into_bytes();
            vin[8] = check_digit(&vin);
            let vin = String::from_utf8(vin).expect("ASCII");
            Vin::parse(&vin).expect("built from the VIN alphabet")
        })
        .collect()
}

/// The ISO 3779 (North American, also GB 16735) check digit at position 9.
fn check_digit(vin: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: u8| -> u32 {
        match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'H' => u32::from(c - b'A') + 1,
            b'J'..=b'N' => u32::from(c - b'J') + 1,
            b'P' => 7,
            b'R' => 9,
            b'S'..=b'Z' => u32::from(c - b'S') + 2,
            _ => unreachable!("not a VIN character"),
        }
    };
    let sum: u32 = vin.iter().zip(WEIGHTS).map(|(&c, w)| value(c) * w).sum();
    match sum % 11 {
        10 => b'X',
        d => b'0' + d as u8,
    }
}

/// The metadata header the gateway reads the VIN from in its plain-text dev mode.
pub const DEV_VIN_HEADER: &str = "x-inland-vin";

/// How a vehicle identifies itself: by its TLS certificate, or in plain-text mode by the
/// `x-inland-vin` header.
pub struct Link {
    pub vin: Vin,
    pub channel: Channel,
    pub plaintext: bool,
}

/// One lazily connected channel per vehicle, each with its own certificate: HTTP/2 would
/// otherwise share one TLS session, and so one identity, between them.
pub fn connect(
    config: &SimulatorConfig,
    certs: Option<&Path>,
    vins: Vec<Vin>,
) -> Result<Vec<Link>, Error> {
    let endpoint = Endpoint::from_shared(config.gateway.clone())
        .map_err(|source| endpoint_error(config, source))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if config.plaintext() {
        return Ok(vins
            .into_iter()
            .map(|vin| Link {
                vin,
                channel: endpoint.connect_lazy(),
                plaintext: true,
            })
            .collect());
    }
    let dir = certs.ok_or(Error::NoCerts)?;
    let ca = FleetCa::load(&DevCerts::new(dir)).map_err(|source| Error::Certs {
        dir: dir.into(),
        source,
    })?;
    vins.into_iter()
        .map(|vin| {
            let tls = ClientTls {
                server_ca_pem: ca.cert_pem().to_owned(),
                server_name: config.server_name.clone(),
                identity: ca.issue_vehicle(&vin).map_err(Error::Issue)?,
            };
            let channel = endpoint
                .clone()
                .tls_config(tls.config())
                .map_err(|source| endpoint_error(config, source))?
                .connect_lazy();
            Ok(Link {
                vin,
                channel,
                plaintext: false,
            })
        })
        .collect()
}

fn endpoint_error(config: &SimulatorConfig, source: tonic::transport::Error) -> Error {
    Error::Endpoint {
        url: config.gateway.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn vins_are_valid_distinct_and_seeded() {
        let fleet = vins(42, 5000);
        let distinct: HashSet<&str> = fleet.iter().map(Vin::as_str).collect();
        assert_eq!(distinct.len(), 5000);
        for vin in &fleet {
            let s = vin.as_str();
            assert!(Vin::parse(s).is_ok());
            assert!(s.starts_with(WMI));
            assert_eq!(check_digit(s.as_bytes()), s.as_bytes()[8], "{s}");
        }
        assert_eq!(vins(42, 3), fleet[..3]);
        assert_ne!(vins(43, 1)[0], fleet[0]);
    }

    #[test]
    fn check_digit_matches_a_known_vin() {
        // The textbook example: 1M8GDM9A_KP042788 has check digit X.
        assert_eq!(check_digit(b"1M8GDM9A0KP042788"), b'X');
        assert_eq!(check_digit(b"11111111111111111"), b'1');
    }

    #[tokio::test]
    async fn mutual_tls_needs_the_dev_certificates() {
        let config = SimulatorConfig::default();
        let err = connect(&config, None, vins(1, 1)).err().unwrap();
        assert!(matches!(err, Error::NoCerts));
        let missing = tempfile::tempdir().unwrap();
        let err = connect(&config, Some(missing.path()), vins(1, 1))
            .err()
            .unwrap();
        assert_eq!(err.code(), inland_core::ErrorCode::NotFound);
        assert!(err.to_string().contains("inland dev-certs"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        DevCerts::new(dir.path())
            .generate(&["localhost".into()], &[])
            .unwrap();
        let links = connect(&config, Some(dir.path()), vins(1, 2)).unwrap();
        assert_eq!(links.len(), 2);
        assert!(!links[0].plaintext);
    }
}
