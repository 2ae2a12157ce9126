//! Typed, layered configuration. Every value has a default in code; a TOML file overrides
//! defaults, `INLAND__SECTION__KEY` environment variables override the file (double
//! underscores separate levels, e.g. `INLAND__GATEWAY__LISTEN=0.0.0.0:50051`), and
//! command-line flags override everything.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use inland_core::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const ENV_PREFIX: &str = "INLAND__";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    /// figment's message names the key, the bad value and the layer it came from.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidInput
    }
}

/// Loads `T` from its defaults, the optional TOML `file`, the environment and `flags`
/// (a serializable value holding only the flags the user gave).
pub fn load<T>(file: Option<&Path>, flags: impl Serialize) -> Result<T, Error>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(Error::MissingFile(file.display().to_string()));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment
        .merge(Env::prefixed(ENV_PREFIX).split("__").lowercase(true))
        .merge(Serialized::defaults(flags))
        .extract()
        .map_err(|e| Error::Invalid(Box::new(e)))
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        gateway: Gateway,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Gateway {
        listen: String,
        rate: u32,
        plaintext: bool,
    }

    impl Default for Gateway {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:1".into(),
                rate: 5,
                plaintext: false,
            }
        }
    }

    /// What the binary passes when no flag was given.
    #[derive(Serialize)]
    struct NoFlags {}

    #[derive(Serialize)]
    struct Flags {
        gateway: FlagGateway,
    }
    #[derive(Serialize)]
    struct FlagGateway {
        plaintext: bool,
    }

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "inland.toml",
                "[gateway]\nlisten = \"127.0.0.1:2\"\nrate = 7\n",
            )?;
            jail.set_env("INLAND__GATEWAY__RATE", "9");
            let flags = Flags {
                gateway: FlagGateway { plaintext: true },
            };
            let conf: Conf = load(Some(Path::new("inland.toml")), flags).unwrap();
            assert_eq!(
                conf.gateway,
                Gateway {
                    listen: "127.0.0.1:2".into(),
                    rate: 9,
                    plaintext: true
                }
            );
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_problem() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[gateway]\nrate = \"fast\"\n")?;
            let err = load::<Conf>(Some(Path::new("bad.toml")), NoFlags {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("rate") && err.contains("fast"), "{err}");
            let err = load::<Conf>(Some(Path::new("missing.toml")), NoFlags {}).unwrap_err();
            assert!(matches!(err, Error::MissingFile(_)));
            jail.create_file("typo.toml", "[gateway]\nlisen = \"x\"\n")?;
            let err = load::<Conf>(Some(Path::new("typo.toml")), NoFlags {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("lisen"), "{err}");
            Ok(())
        });
    }
}
