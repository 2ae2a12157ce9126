use std::path::PathBuf;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::{DevCerts, Error, Issued};

/// The gateway's TLS files: its own identity and the fleet CA that vehicles' client
/// certificates must chain to. Client certificates are required, never optional.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl ServerTls {
    pub fn from_dev_certs(files: &DevCerts) -> Self {
        Self {
            cert: files.server_cert(),
            key: files.server_key(),
            client_ca: files.ca_cert(),
        }
    }

    pub fn load(&self) -> Result<ServerTlsConfig, Error> {
        Ok(ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
            .client_ca_root(Certificate::from_pem(read(&self.client_ca)?))
            .client_auth_optional(false))
    }
}

/// What a vehicle (or the simulator) presents: the CA that signed the gateway's
/// certificate, the name to verify it against, and its own certificate.
#[derive(Clone)]
pub struct ClientTls {
    pub server_ca_pem: String,
    pub server_name: String,
    pub identity: Issued,
}

impl ClientTls {
    pub fn config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.server_ca_pem))
            .domain_name(&self.server_name)
            .identity(Identity::from_pem(
                &self.identity.cert_pem,
                &self.identity.key_pem,
            ))
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })
}
