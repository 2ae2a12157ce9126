//! Who is asking: bearer tokens bound to a user and a role.
//!
//! The token list holds only SHA-256 hashes of the tokens, so a leaked config does not
//! leak credentials. Tokens are 256 random bits, which makes a plain hash enough (no slow
//! KDF is needed against guessing). Tokens are never logged, never echoed in errors.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::Interface;
use crate::{Error, metrics};

/// The environment variable holding the token list when `query.token_file` is unset.
pub const TOKENS_ENV: &str = "INLAND_QUERY_TOKENS";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Queries the anonymized datasets (`telemetry`, `frame_index`).
    Analyst,
    /// An analyst who may also read the audit log (`audit_log`).
    Auditor,
    /// An auditor who may also export aggregates (`inland export`) and has larger limits.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Self::Analyst, Self::Auditor, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// Whether the audit log is visible to this role.
    pub fn reads_audit_log(self) -> bool {
        matches!(self, Self::Auditor | Self::Admin)
    }

    /// Whether this role may take data out of the country (aggregates only).
    pub fn may_export(self) -> bool {
        self == Self::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// One `[[tokens]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds the token, as written in the audit log.
    pub user: String,
    pub role: Role,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}

impl TokenEntry {
    /// The entry as a `[[tokens]]` table of the token list.
    pub fn to_toml(&self) -> String {
        let file = TokenFile {
            tokens: vec![self.clone()],
        };
        toml::to_string(&file).expect("a token entry is plain strings")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// The accepted tokens, by hash.
#[derive(Clone)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} entries)", self.by_hash.len())
    }
}

impl Tokens {
    /// Parses a token list; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, Error> {
        let problem = |problem: String| Error::Tokens {
            source_name: source_name.into(),
            problem,
        };
        let file: TokenFile = toml::from_str(text).map_err(|e| problem(e.message().into()))?;
        let mut by_hash = HashMap::with_capacity(file.tokens.len());
        for (i, entry) in file.tokens.into_iter().enumerate() {
            let n = i + 1;
            if entry.user.trim().is_empty() || entry.user.chars().any(char::is_control) {
                return Err(problem(format!("entry {n}: user must be a non-empty name")));
            }
            let hash = parse_hash(&entry.sha256).ok_or_else(|| {
                problem(format!(
                    "entry {n} ({}): sha256 must be 64 hex digits",
                    entry.user
                ))
            })?;
            let principal = Principal {
                user: entry.user,
                role: entry.role,
            };
            if let Some(other) = by_hash.insert(hash, principal) {
                return Err(problem(format!(
                    "entry {n}: the same token is also given to {}; one token, one user",
                    other.user
                )));
            }
        }
        if by_hash.is_empty() {
            return Err(problem("no tokens: nobody could query".into()));
        }
        Ok(Self { by_hash })
    }

    /// Loads the list from `file`, else from [`TOKENS_ENV`].
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::TokenFileRead {
                        path: path.into(),
                        source,
                    })?;
                Self::parse(&text, &path.display().to_string())
            }
            None => match std::env::var(TOKENS_ENV) {
                Ok(text) => Self::parse(&text, TOKENS_ENV),
                Err(_) => Err(Error::Config(format!(
                    "no tokens: set query.token_file or {TOKENS_ENV}"
                ))),
            },
        }
    }

    /// The caller a token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<&Principal, Error> {
        self.by_hash
            .get(&hash(token))
            .ok_or_else(|| Error::Unauthenticated("unknown or revoked token".into()))
    }

    /// The caller an `Authorization` header value names (`Bearer <token>`).
    pub fn bearer(&self, header: Option<&str>) -> Result<&Principal, Error> {
        self.authenticate(bearer_token(header)?)
    }

    /// [`Self::bearer`] for a request that arrived `via` an interface; a refusal is
    /// counted and logged (without the token).
    pub(crate) fn caller(&self, header: Option<&str>, via: Interface) -> Result<Principal, Error> {
        self.bearer(header).cloned().inspect_err(|e| {
            metrics::auth_failed(via, e.code());
        })
    }

    /// The token and caller of a Flight handshake: `Bearer <token>`, or
    /// `Basic base64(user:token)` as the JDBC driver (DBeaver) sends it; the user part is
    /// ignored, the token decides.
    pub fn handshake(&self, header: Option<&str>) -> Result<(String, &Principal), Error> {
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            let token = bearer_token(header)?;
            return Ok((token.to_owned(), self.authenticate(token)?));
        };
        let bad = || {
            Error::Unauthenticated(
                "the Authorization header must be `Basic base64(user:token)` or `Bearer <token>`"
                    .into(),
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (_, token) = text.split_once(':').ok_or_else(bad)?;
        let principal = self.authenticate(token)?;
        Ok((token.to_owned(), principal))
    }
}

/// The token of a `Bearer <token>` header value.
fn bearer_token(header: Option<&str>) -> Result<&str, Error> {
    let header = header.filter(|h| !h.is_empty()).ok_or_else(|| {
        Error::Unauthenticated("no credentials: send `Authorization: Bearer <token>`".into())
    })?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            Error::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random token (256 bits, URL-safe) and its entry for the token list.
pub fn generate(user: &str, role: Role) -> (String, TokenEntry) {
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "inq_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let entry = TokenEntry {
        user: user.into(),
        role,
        sha256: hex::encode(hash(&token)),
    };
    (token, entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inland_core::ErrorCode;

    fn three_roles() -> (Tokens, [String; 3]) {
        let (text, tokens) = crate::testing::token_list();
        (Tokens::parse(&text, "test").unwrap(), tokens)
    }

    #[test]
    fn tokens_resolve_to_their_user_and_role_by_hash() {
        let (tokens, [analyst, auditor, admin]) = three_roles();
        assert_eq!(tokens.authenticate(&analyst).unwrap().role, Role::Analyst);
        assert_eq!(tokens.authenticate(&auditor).unwrap().user, "otto");
        let header = format!("Bearer {admin}");
        assert_eq!(tokens.bearer(Some(&header)).unwrap().role, Role::Admin);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x:{analyst}"));
        let (token, who) = tokens.handshake(Some(&format!("Basic {basic}"))).unwrap();
        assert_eq!(
            (token.as_str(), who.user.as_str()),
            (analyst.as_str(), "ana")
        );
        let (token, who) = tokens.handshake(Some(&header)).unwrap();
        assert_eq!((token.as_str(), who.role), (admin.as_str(), Role::Admin));
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated_without_echo() {
        let (tokens, [analyst, ..]) = three_roles();
        let wrong = format!("{analyst}x");
        for header in [
            None,
            Some(analyst.as_str()),
            Some("Basic abc"),
            Some(&*format!("Bearer {wrong}")),
        ] {
            let err = tokens.bearer(header).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthenticated);
            assert!(!err.to_string().contains(&analyst), "{err}");
        }
        assert!(tokens.handshake(Some("Basic !!!")).is_err());
        assert!(tokens.handshake(None).is_err());
    }

    #[test]
    fn bad_token_lists_are_refused_with_the_entry_named() {
        let (_, entry) = generate("a", Role::Analyst);
        let line = |user: &str, role: &str, sha: &str| {
            format!("[[tokens]]\nuser = \"{user}\"\nrole = \"{role}\"\nsha256 = \"{sha}\"\n")
        };
        for (text, expected) in [
            (String::new(), "no tokens"),
            (line("a", "analyst", "abc"), "entry 1 (a): sha256"),
            (line("", "analyst", &entry.sha256), "entry 1: user"),
            (line("a", "root", &entry.sha256), "unknown variant"),
            (
                line("a", "analyst", &entry.sha256) + &line("b", "admin", &entry.sha256),
                "entry 2: the same token is also given to a",
            ),
        ] {
            let err = Tokens::parse(&text, "t.toml").unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = Tokens::load(Some(Path::new("/nonexistent/tokens.toml"))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
    }
}
