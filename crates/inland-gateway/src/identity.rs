use inland_consent::Principal;
use inland_core::Vin;
use inland_tls::ClientIdentity;
use tonic::Request;

use crate::Error;

/// The metadata header naming the vehicle in plain-text development mode.
pub const DEV_VIN_HEADER: &str = "x-inland-vin";
/// The metadata header naming an operator in plain-text development mode.
pub const DEV_OPERATOR_HEADER: &str = inland_consent::cli::DEV_OPERATOR_HEADER;

/// Which vehicle is uploading. With TLS, the verified client certificate (an operator's is
/// refused); in plain-text development mode (loopback only), the `x-inland-vin` header.
pub fn vehicle<T>(request: &Request<T>, plaintext: bool) -> Result<Vin, Error> {
    match caller(request, plaintext)? {
        Principal::Vehicle(vin) => Ok(vin),
        Principal::Operator(_) => Err(Error::Unauthenticated(
            "an operator certificate cannot upload vehicle data; use the vehicle's certificate"
                .into(),
        )),
    }
}

/// Who calls the consent API: a vehicle, or an operator (certificate with the operator OU;
/// in plain-text mode the `x-inland-operator` header).
pub fn caller<T>(request: &Request<T>, plaintext: bool) -> Result<Principal, Error> {
    if plaintext {
        if let Some(name) = header(request, DEV_OPERATOR_HEADER)? {
            return Ok(Principal::Operator(name.to_owned()));
        }
        let vin = header(request, DEV_VIN_HEADER)?.ok_or_else(|| {
            Error::Unauthenticated(format!(
                "plain-text mode needs the {DEV_VIN_HEADER} (or {DEV_OPERATOR_HEADER}) header"
            ))
        })?;
        return Vin::parse(vin)
            .map(Principal::Vehicle)
            .map_err(|e| Error::Unauthenticated(e.to_string()));
    }
    let certs = request
        .peer_certs()
        .ok_or_else(|| Error::Unauthenticated("no client certificate was presented".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Error::Unauthenticated("no client certificate was presented".into()))?;
    Ok(match inland_tls::client_identity(leaf)? {
        ClientIdentity::Vehicle(vin) => Principal::Vehicle(vin),
        ClientIdentity::Operator(name) => Principal::Operator(name),
    })
}

fn header<'a, T>(request: &'a Request<T>, name: &str) -> Result<Option<&'a str>, Error> {
    request
        .metadata()
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::Unauthenticated(format!("{name} is not text")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (k, v) in headers {
            request.metadata_mut().insert(*k, v.parse().unwrap());
        }
        request
    }

    #[test]
    fn plaintext_callers_are_named_by_headers() {
        let vin = "LSVAU2180N2183294";
        assert!(matches!(
            caller(&with(&[(DEV_VIN_HEADER, vin)]), true),
            Ok(Principal::Vehicle(v)) if v.as_str() == vin
        ));
        assert!(matches!(
            caller(&with(&[(DEV_OPERATOR_HEADER, "alice")]), true),
            Ok(Principal::Operator(name)) if name == "alice"
        ));
        assert!(vehicle(&with(&[(DEV_OPERATOR_HEADER, "alice")]), true).is_err());
        assert!(caller(&with(&[]), true).is_err());
        assert!(caller(&with(&[(DEV_VIN_HEADER, "nope")]), true).is_err());
        assert!(
            caller(&with(&[(DEV_VIN_HEADER, vin)]), false).is_err(),
            "without TLS no certificate, whatever the headers"
        );
    }
}
