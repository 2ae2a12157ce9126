use inland_core::Vin;
use tonic::Request;

use crate::Error;

/// The metadata header naming the vehicle in plain-text development mode.
pub const DEV_VIN_HEADER: &str = "x-inland-vin";

/// Who is calling. With TLS, the verified client certificate; in plain-text development
/// mode (loopback only), the `x-inland-vin` header.
pub fn vehicle<T>(request: &Request<T>, plaintext: bool) -> Result<Vin, Error> {
    if plaintext {
        let value = request.metadata().get(DEV_VIN_HEADER).ok_or_else(|| {
            Error::Unauthenticated(format!("plain-text mode needs the {DEV_VIN_HEADER} header"))
        })?;
        let text = value
            .to_str()
            .map_err(|_| Error::Unauthenticated(format!("{DEV_VIN_HEADER} is not text")))?;
        return Vin::parse(text).map_err(|e| Error::Unauthenticated(e.to_string()));
    }
    let certs = request
        .peer_certs()
        .ok_or_else(|| Error::Unauthenticated("no client certificate was presented".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Error::Unauthenticated("no client certificate was presented".into()))?;
    Ok(inland_tls::vin_from_certificate(leaf)?)
}
