use inland_core::Vin;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The subject organizational unit that makes a fleet-CA certificate an operator's. Vehicle
/// certificates carry none, and a vehicle cannot choose its certificate's subject: only
/// the fleet CA issues certificates with this OU, to people or systems allowed to record
/// consent for any vehicle.
pub const OPERATOR_OU: &str = "inland-operator";

const MAX_OPERATOR_NAME: usize = 64;

/// Who a (TLS-verified) client certificate identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIdentity {
    /// A vehicle: its certificate's subject common name is its VIN.
    Vehicle(Vin),
    /// An operator: subject OU [`OPERATOR_OU`], common name the operator's name.
    Operator(String),
}

/// The identity a client certificate carries.
pub fn client_identity(der: &[u8]) -> Result<ClientIdentity, Error> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::BadCertificate(e.to_string()))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .ok_or(Error::NoVin)?
        .as_str()
        .map_err(|e| Error::BadCertificate(e.to_string()))?;
    let operator = subject
        .iter_organizational_unit()
        .any(|ou| ou.as_str() == Ok(OPERATOR_OU));
    if operator {
        let valid = (1..=MAX_OPERATOR_NAME).contains(&cn.len())
            && cn.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if !valid {
            return Err(Error::BadOperatorName);
        }
        return Ok(ClientIdentity::Operator(cn.to_owned()));
    }
    Ok(ClientIdentity::Vehicle(Vin::parse(cn)?))
}

/// The VIN a (TLS-verified) client certificate names in its subject common name. An
/// operator certificate is refused: operators do not upload vehicle data.
pub fn vin_from_certificate(der: &[u8]) -> Result<Vin, Error> {
    match client_identity(der)? {
        ClientIdentity::Vehicle(vin) => Ok(vin),
        ClientIdentity::Operator(_) => Err(Error::NotAVehicle),
    }
}
