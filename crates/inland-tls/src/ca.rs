//! A fleet CA for demos and tests (`inland dev-certs`). Production fleets bring their own
//! CA; Inland only needs its certificate to verify vehicles.

use std::path::{Path, PathBuf};

use inland_core::Vin;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, OPERATOR_OU};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct FleetCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Where `inland dev-certs` writes its files, under one directory.
pub struct DevCerts {
    pub dir: PathBuf,
}

impl DevCerts {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn vehicle_cert(&self, vin: &Vin) -> PathBuf {
        self.dir
            .join("vehicles")
            .join(format!("{}.pem", vin.as_str()))
    }
    pub fn vehicle_key(&self, vin: &Vin) -> PathBuf {
        self.dir
            .join("vehicles")
            .join(format!("{}.key", vin.as_str()))
    }
    /// The dev operator's certificate (`inland consent` uses it by default).
    pub fn operator_cert(&self) -> PathBuf {
        self.dir.join("operator.pem")
    }
    pub fn operator_key(&self) -> PathBuf {
        self.dir.join("operator.key")
    }

    /// Creates a CA, a server certificate for `server_names`, an operator certificate for
    /// [`DEV_OPERATOR`] and one certificate per VIN, keeping an existing CA so
    /// certificates issued earlier stay valid.
    pub fn generate(&self, server_names: &[String], vins: &[Vin]) -> Result<FleetCa, Error> {
        let ca = if self.ca_cert().exists() {
            FleetCa::load(self)?
        } else {
            let ca = FleetCa::generate()?;
            write(&self.ca_cert(), ca.cert_pem())?;
            write(&self.ca_key(), &ca.issuer.key().serialize_pem())?;
            ca
        };
        let server = ca.issue_server(server_names)?;
        write(&self.server_cert(), &server.cert_pem)?;
        write(&self.server_key(), &server.key_pem)?;
        self.ensure_operator(&ca)?;
        for vin in vins {
            let v = ca.issue_vehicle(vin)?;
            write(&self.vehicle_cert(vin), &v.cert_pem)?;
            write(&self.vehicle_key(vin), &v.key_pem)?;
        }
        Ok(ca)
    }

    /// Issues the dev operator certificate if there is none yet (a data directory made
    /// before operators existed gets one on its next start).
    pub fn ensure_operator(&self, ca: &FleetCa) -> Result<(), Error> {
        if self.operator_cert().exists() && self.operator_key().exists() {
            return Ok(());
        }
        let operator = ca.issue_operator(DEV_OPERATOR)?;
        write(&self.operator_cert(), &operator.cert_pem)?;
        write(&self.operator_key(), &operator.key_pem)
    }
}

/// The name of the operator certificate `inland dev-certs` issues.
pub const DEV_OPERATOR: &str = "dev-operator";

impl FleetCa {
    pub fn generate() -> Result<Self, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Inland dev fleet CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity(Duration::days(3650));
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA written by [`DevCerts::generate`]; the simulator uses it to issue
    /// certificates for as many vehicles as it simulates.
    pub fn load(files: &DevCerts) -> Result<Self, Error> {
        let cert_pem = read(&files.ca_cert())?;
        let key = KeyPair::from_pem(&read(&files.ca_key())?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self { cert_pem, issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn issue_vehicle(&self, vin: &Vin) -> Result<Issued, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(vin.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, Duration::days(365))
    }

    /// A certificate for an operator allowed to record consent for any vehicle: subject
    /// OU [`OPERATOR_OU`], common name `name`.
    pub fn issue_operator(&self, operator: &str) -> Result<Issued, Error> {
        let valid = (1..=64).contains(&operator.len())
            && operator.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        // A VIN as an operator's name would read like a vehicle in every record.
        if !valid || Vin::parse(operator).is_ok() {
            return Err(Error::OperatorName(operator.to_owned()));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name(operator);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, OPERATOR_OU);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, Duration::days(365))
    }

    pub fn issue_server(&self, names: &[String]) -> Result<Issued, Error> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name("Inland gateway");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, Duration::days(365))
    }

    fn issue(&self, mut params: CertificateParams, lifetime: Duration) -> Result<Issued, Error> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        (params.not_before, params.not_after) = validity(lifetime);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Backdated an hour so a vehicle whose clock runs slightly behind still accepts it.
fn validity(lifetime: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + lifetime)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, contents).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientIdentity, client_identity, vin_from_certificate};

    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    #[test]
    fn vehicle_certificate_names_its_vin_and_ca_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let files = DevCerts::new(dir.path());
        let vin = Vin::parse("LSVAU2180N2183294").unwrap();
        files
            .generate(&["localhost".into()], std::slice::from_ref(&vin))
            .unwrap();
        let pem = std::fs::read_to_string(files.vehicle_cert(&vin)).unwrap();
        assert_eq!(vin_from_certificate(&der(&pem)).unwrap(), vin);

        let ca_before = std::fs::read_to_string(files.ca_cert()).unwrap();
        let reloaded = files.generate(&["localhost".into()], &[]).unwrap();
        assert_eq!(reloaded.cert_pem(), ca_before, "an existing CA is kept");
        let other = Vin::parse("WVWZZZ1JZXW000001").unwrap();
        let issued = reloaded.issue_vehicle(&other).unwrap();
        assert_eq!(vin_from_certificate(&der(&issued.cert_pem)).unwrap(), other);
    }

    #[test]
    fn operator_certificates_are_operators_and_never_vehicles() {
        let dir = tempfile::tempdir().unwrap();
        let files = DevCerts::new(dir.path());
        let ca = files.generate(&["localhost".into()], &[]).unwrap();
        let pem = std::fs::read_to_string(files.operator_cert()).unwrap();
        assert_eq!(
            client_identity(&der(&pem)).unwrap(),
            ClientIdentity::Operator(DEV_OPERATOR.into())
        );
        assert!(matches!(
            vin_from_certificate(&der(&pem)),
            Err(Error::NotAVehicle)
        ));
        // Kept across runs, like the CA.
        files.generate(&["localhost".into()], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(files.operator_cert()).unwrap(), pem);

        let vin = Vin::parse("LSVAU2180N2183294").unwrap();
        let vehicle = ca.issue_vehicle(&vin).unwrap();
        assert_eq!(
            client_identity(&der(&vehicle.cert_pem)).unwrap(),
            ClientIdentity::Vehicle(vin.clone())
        );
        for bad in ["", "LSVAU2180N2183294", "tab\there"] {
            assert!(matches!(
                ca.issue_operator(bad),
                Err(Error::OperatorName(_))
            ));
        }
        let alice = ca.issue_operator("alice").unwrap();
        assert_eq!(
            client_identity(&der(&alice.cert_pem)).unwrap(),
            ClientIdentity::Operator("alice".into())
        );
    }

    #[test]
    fn server_certificate_is_not_a_vehicle() {
        let ca = FleetCa::generate().unwrap();
        let server = ca.issue_server(&["localhost".into()]).unwrap();
        assert!(matches!(
            vin_from_certificate(&der(&server.cert_pem)),
            Err(Error::NotAVin(_))
        ));
        assert!(matches!(
            vin_from_certificate(b"junk"),
            Err(Error::BadCertificate(_))
        ));
    }
}
