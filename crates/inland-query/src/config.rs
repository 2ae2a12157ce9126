//! The `query` configuration section.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::auth::Role;

/// How the query service listens, who may use it and how much one query may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Where the Arrow Flight SQL server (ADBC, JDBC/DBeaver, pyarrow clients) listens.
    pub flight_listen: SocketAddr,
    /// Where the HTTP API (`POST /v1/query`) listens.
    pub http_listen: SocketAddr,
    /// Certificate and key both listeners serve. Without them bearer tokens would cross
    /// the network in clear text, so both listen addresses must then be loopback.
    pub tls: Option<TlsFiles>,
    /// The token list (TOML, `[[tokens]]` entries of user, role and sha256 of the token).
    /// Unset, the list is read from the `INLAND_QUERY_TOKENS` environment variable (the
    /// same TOML, e.g. from a Kubernetes Secret).
    pub token_file: Option<PathBuf>,
    /// Names this process's audit chains (`audit/log/chain=<writer>-<start>-<random>/`);
    /// empty: the host name. Never a credential.
    pub audit_writer: String,
    /// Limits per role.
    pub limits: Limits,
    /// The aggregates-only export (`inland export`).
    pub export: ExportConfig,
    /// Threads one query may use (DataFusion target partitions); 0: every core.
    pub target_partitions: usize,
    /// Memory all running queries may hold together, MiB; beyond it sorts and
    /// aggregations spill to disk or the query fails as resource_exhausted. 0: no limit.
    pub memory_limit_mib: u64,
    /// How long a listing of the archive is reused: files the archiver adds become
    /// visible at most this long after they land.
    #[serde(with = "humantime_serde")]
    pub listing_ttl: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            flight_listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls: None,
            token_file: None,
            audit_writer: String::new(),
            limits: Limits::default(),
            export: ExportConfig::default(),
            target_partitions: 0,
            memory_limit_mib: 4096,
            listing_ttl: Duration::from_secs(30),
        }
    }
}

/// The server certificate (chain) and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What one query of each role may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub analyst: RoleLimits,
    pub auditor: RoleLimits,
    pub admin: RoleLimits,
}

impl Default for Limits {
    fn default() -> Self {
        let standard = RoleLimits {
            max_rows: 100_000,
            timeout: Duration::from_secs(60),
        };
        Self {
            analyst: standard.clone(),
            auditor: standard,
            admin: RoleLimits {
                max_rows: 1_000_000,
                timeout: Duration::from_secs(300),
            },
        }
    }
}

impl Limits {
    pub fn of(&self, role: Role) -> &RoleLimits {
        match role {
            Role::Analyst => &self.analyst,
            Role::Auditor => &self.auditor,
            Role::Admin => &self.admin,
        }
    }
}

/// One role's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleLimits {
    /// Most rows one result may have; a larger result is refused (resource_exhausted),
    /// never silently cut.
    pub max_rows: u64,
    /// Longest a query may run before it is cancelled (timeout).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RoleLimits {
    fn default() -> Self {
        Limits::default().analyst
    }
}

/// The export's privacy rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Groups aggregating fewer than `k` distinct vehicles (pseudonyms) are suppressed.
    pub k: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self { k: 10 }
    }
}

impl QueryConfig {
    /// Refuses settings that cannot work or would weaken a rule.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_listeners()?;
        self.validate_engine()
    }

    /// The server's part: no bearer token in clear text beyond this machine.
    pub(crate) fn validate_listeners(&self) -> Result<(), Error> {
        if self.tls.is_none() {
            for (name, addr) in [
                ("flight_listen", self.flight_listen),
                ("http_listen", self.http_listen),
            ] {
                if !addr.ip().is_loopback() {
                    return Err(Error::Config(format!(
                        "{name} = {addr} is not a loopback address and query.tls is unset: \
                         bearer tokens would cross the network in clear text; set query.tls \
                         (cert, key) or listen on 127.0.0.1"
                    )));
                }
            }
        }
        Ok(())
    }

    /// What every engine needs, served or run from the command line.
    pub(crate) fn validate_engine(&self) -> Result<(), Error> {
        if self.export.k < 2 {
            return Err(Error::Config(format!(
                "export.k = {}: a group of one vehicle is that vehicle; use 2 or more (default 10)",
                self.export.k
            )));
        }
        for role in Role::ALL {
            let limits = self.limits.of(role);
            if limits.max_rows == 0 || limits.timeout.is_zero() {
                return Err(Error::Config(format!(
                    "limits.{}: max_rows and timeout must be above zero",
                    role.as_str()
                )));
            }
        }
        if self.audit_writer.contains(['/', '=']) || self.audit_writer.chars().any(char::is_control)
        {
            return Err(Error::Config(
                "audit_writer may not contain '/', '=' or control characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_toml_round_trips() {
        let config = QueryConfig::default();
        config.validate().unwrap();
        let text = toml::to_string(&config).unwrap();
        let back: QueryConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn a_section_sets_limits_per_role_and_refuses_unknown_keys() {
        let config: QueryConfig =
            toml::from_str("[limits.analyst]\nmax_rows = 10\ntimeout = \"5s\"\n[export]\nk = 25\n")
                .unwrap();
        assert_eq!(config.limits.analyst.max_rows, 10);
        assert_eq!(config.limits.analyst.timeout, Duration::from_secs(5));
        assert_eq!(config.limits.admin, Limits::default().admin);
        assert_eq!(config.export.k, 25);
        assert!(toml::from_str::<QueryConfig>("row_limit = 5").is_err());
    }

    #[test]
    fn unsafe_settings_are_refused() {
        let public = QueryConfig {
            http_listen: "0.0.0.0:8081".parse().unwrap(),
            ..QueryConfig::default()
        };
        let err = public.validate().unwrap_err();
        assert!(err.to_string().contains("clear text"), "{err}");
        let with_tls = QueryConfig {
            tls: Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            ..public
        };
        with_tls.validate().unwrap();
        let k1 = QueryConfig {
            export: ExportConfig { k: 1 },
            ..QueryConfig::default()
        };
        assert!(k1.validate().is_err());
        let mut zero = QueryConfig::default();
        zero.limits.auditor.max_rows = 0;
        assert!(zero.validate().is_err());
        let slash = QueryConfig {
            audit_writer: "../x".into(),
            ..QueryConfig::default()
        };
        assert!(slash.validate().is_err());
    }
}
