use inland_core::Vin;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The VIN a (TLS-verified) client certificate names in its subject common name.
pub fn vin_from_certificate(der: &[u8]) -> Result<Vin, Error> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::BadCertificate(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .ok_or(Error::NoVin)?
        .as_str()
        .map_err(|e| Error::BadCertificate(e.to_string()))?;
    Ok(Vin::parse(cn)?)
}
