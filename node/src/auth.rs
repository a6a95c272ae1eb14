//! The secure key file and the HS256 tokens it signs, scoped `sources:write` (one source) or
//! `repos:read` (one repo, or all). Each token carries an id (`jti`, a UUID) under which it is
//! recorded in the store, where it can be revoked (`store::tokens`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Smallest accepted key, in bits (Workbench's rule).
pub const MIN_KEY_BITS: usize = 128;

/// Problems with the secure key file. Each maps to a node status in a cluster.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("secure key file {0} cannot be read: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("secure key file {path} must have mode 0600, has {mode:o}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("secure key in {path} has {bits} bits; at least {MIN_KEY_BITS} are needed")]
    TooShort { path: PathBuf, bits: usize },
}

/// The node's secure key. Never logged, never stored in the database: only its fingerprint.
#[derive(Clone)]
pub struct SecureKey {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SecureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureKey({})", self.fingerprint())
    }
}

impl SecureKey {
    /// Reads the key file, creating a fresh 256-bit key (mode 0600) when `create` and absent.
    pub fn load(path: &Path, create: bool) -> Result<Self, KeyError> {
        if create && !path.exists() {
            let key: [u8; 32] = rand::random();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(path.into(), e))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| KeyError::Io(path.into(), e))?;
            writeln!(file, "{}", hex::encode(key)).map_err(|e| KeyError::Io(path.into(), e))?;
        }
        let metadata = std::fs::metadata(path).map_err(|e| KeyError::Io(path.into(), e))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode != 0o600 {
            return Err(KeyError::Permissions {
                path: path.into(),
                mode,
            });
        }
        let text = std::fs::read(path).map_err(|e| KeyError::Io(path.into(), e))?;
        let trimmed = String::from_utf8_lossy(&text).trim().to_string();
        // A hex key counts its decoded bits; anything else counts its bytes.
        let bytes = hex::decode(&trimmed).unwrap_or_else(|_| trimmed.into_bytes());
        let bits = bytes.len() * 8;
        if bits < MIN_KEY_BITS {
            return Err(KeyError::TooShort {
                path: path.into(),
                bits,
            });
        }
        Ok(Self { bytes })
    }

    /// A key from bytes already in memory (tests).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// sha256 of the key, hex: safe to store and compare across nodes.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }

    /// HMAC-SHA256 of a message, hex, for node-to-node requests.
    pub fn sign(&self, message: &str) -> String {
        // HMAC takes a key of any length, so `mac` does not fail; were it to, the empty
        // signature would verify nothing.
        self.mac(message)
            .map(|mac| hex::encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Whether `signature_hex` is this key's HMAC-SHA256 of `message`. The comparison is the
    /// `hmac` crate's, in constant time, so the time taken says nothing about the signature.
    pub fn verify(&self, message: &str, signature_hex: &str) -> bool {
        let (Ok(signature), Ok(mac)) = (hex::decode(signature_hex), self.mac(message)) else {
            return false;
        };
        mac.verify_slice(&signature).is_ok()
    }

    fn mac(&self, message: &str) -> Result<Hmac<Sha256>, hmac::digest::InvalidLength> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)?;
        mac.update(message.as_bytes());
        Ok(mac)
    }

    /// Issues a token for `scope`. The caller records it (`Store::record_token`) before handing it
    /// out: a token without a record is refused.
    pub fn issue(&self, scope: &Scope, valid_for: Duration) -> Result<Issued, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let (scope_name, source, repo) = match scope {
            Scope::SourcesWrite { source } => ("sources:write", Some(source.clone()), None),
            Scope::ReposRead { repo } => ("repos:read", None, repo.clone()),
        };
        let claims = Claims {
            sub: "pkgnode".into(),
            scope: scope_name.into(),
            source,
            repo,
            iat: now,
            exp: now + valid_for.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.bytes),
        )
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok(Issued {
            token,
            guid: claims.jti,
            scope: claims.scope,
            source: claims.source,
            repo: claims.repo,
            issued_at_ms: claims.iat * 1000,
            expires_at_ms: claims.exp * 1000,
        })
    }

    /// The claims of a token signed with this key, expired or not: expiry is judged by the
    /// caller, against its clock.
    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = false;
        validation.leeway = 0;
        Ok(jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.bytes),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })?
        .claims)
    }

    /// The id of a token signed with this key, expired or not (to revoke a leaked token by its
    /// text).
    pub fn guid_of(&self, token: &str) -> Result<String, TokenError> {
        Ok(self.decode(token)?.jti)
    }

    /// Checks a token's signature and expiry and that it grants `needed`; returns its id, which
    /// the caller checks against the record of issued tokens.
    pub fn authorize(&self, token: &str, needed: &Scope) -> Result<String, TokenError> {
        self.authorize_at(token, needed, chrono::Utc::now().timestamp())
    }

    /// [`Self::authorize`] at `now` (epoch seconds): a token has expired once `now` is past its
    /// `exp`, as `jsonwebtoken` judges it with no leeway.
    pub fn authorize_at(
        &self,
        token: &str,
        needed: &Scope,
        now: i64,
    ) -> Result<String, TokenError> {
        let claims = self.decode(token)?;
        if claims.exp < now {
            return Err(TokenError::Expired);
        }
        let granted = match needed {
            Scope::SourcesWrite { source } => {
                claims.scope == "sources:write" && claims.source.as_deref() == Some(source.as_str())
            }
            Scope::ReposRead { repo } => {
                claims.scope == "repos:read"
                    && (claims.repo.is_none() || claims.repo.as_deref() == repo.as_deref())
            }
        };
        if granted {
            Ok(claims.jti)
        } else {
            Err(TokenError::WrongScope {
                needed: needed.to_string(),
                granted: match (&claims.source, &claims.repo) {
                    (Some(s), _) => format!("{} for source {s}", claims.scope),
                    (_, Some(r)) => format!("{} for repo {r}", claims.scope),
                    _ => claims.scope,
                },
            })
        }
    }
}

/// A token just signed, with what its record needs.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub guid: String,
    pub scope: String,
    pub source: Option<String>,
    pub repo: Option<String>,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Upload to one source.
    SourcesWrite { source: String },
    /// Read one authenticated repo, or all of them when `None`.
    ReposRead { repo: Option<String> },
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SourcesWrite { source } => write!(f, "sources:write for source {source}"),
            Self::ReposRead { repo: Some(repo) } => write!(f, "repos:read for repo {repo}"),
            Self::ReposRead { repo: None } => write!(f, "repos:read"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not valid: {0}")]
    Invalid(String),
    #[error("token has expired")]
    Expired,
    #[error("token grants {granted}, but {needed} is needed")]
    WrongScope { needed: String, granted: String },
    #[error("token {guid} was revoked at {at}; ask an administrator for a new one")]
    Revoked { guid: String, at: String },
    #[error(
        "token {guid} is not recorded on this server (issued before tokens were recorded, or \
         against another database); create a new one with `pkgnode create token`"
    )]
    Unrecorded { guid: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_scoped_and_expire() {
        let key = SecureKey::from_bytes(vec![7; 32]);
        let token = key
            .issue(
                &Scope::SourcesWrite { source: "a".into() },
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(
            key.authorize(&token.token, &Scope::SourcesWrite { source: "a".into() })
                .is_ok()
        );
        assert!(matches!(
            key.authorize(&token.token, &Scope::SourcesWrite { source: "b".into() }),
            Err(TokenError::WrongScope { .. })
        ));
        let other = SecureKey::from_bytes(vec![8; 32]);
        assert!(matches!(
            other.authorize(&token.token, &Scope::SourcesWrite { source: "a".into() }),
            Err(TokenError::Invalid(_))
        ));
        let expired = key
            .issue(&Scope::ReposRead { repo: None }, Duration::from_secs(0))
            .unwrap();
        // Valid through its expiry second, expired the second after.
        let exp = expired.expires_at_ms / 1000;
        let read = Scope::ReposRead { repo: None };
        assert!(key.authorize_at(&expired.token, &read, exp).is_ok());
        assert_eq!(
            key.authorize_at(&expired.token, &read, exp + 1),
            Err(TokenError::Expired)
        );
        // An expired token still names its id, so it can be revoked by its text.
        assert_eq!(key.guid_of(&expired.token), Ok(expired.guid));
    }

    #[test]
    fn key_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = SecureKey::load(&path, true).unwrap();
        assert_eq!(
            SecureKey::load(&path, false).unwrap().fingerprint(),
            key.fingerprint()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecureKey::load(&path, false),
            Err(KeyError::Permissions { .. })
        ));
        let short = dir.path().join("short");
        std::fs::write(&short, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SecureKey::load(&short, false),
            Err(KeyError::TooShort { bits: 64, .. })
        ));
    }
}
