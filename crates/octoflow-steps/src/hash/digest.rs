//! From a value's text to its digest: the secrets a step names, bcrypt salts, and hashing
//! many values off the async runtime, in chunks on a few threads, stopping on cancel.

use std::num::NonZeroUsize;
use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{GeneralPurpose, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use octoflow_core::secrets::{MissingSecret, Secrets};
use octoflow_core::step::StepError;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::settings::{Algorithm, HashSettings};

/// The length of a bcrypt salt string, `$2b$12$` and 22 characters: the prefix of every
/// digest that `strip_salt` drops.
pub(super) const BCRYPT_SALT_LEN: usize = 29;

/// The most bytes of a value bcrypt uses; a longer value is refused, as Python's
/// `bcrypt.hashpw` does, rather than cut.
pub(super) const BCRYPT_MAX_BYTES: usize = 72;

/// The fewest bytes of salt argon2 accepts.
const ARGON2_MIN_SALT: usize = argon2::MIN_SALT_LEN;

/// bcrypt's base64: its own alphabet, no padding, unused bits zero.
const BCRYPT_BASE64: GeneralPurpose =
    GeneralPurpose::new(&alphabet::BCRYPT, general_purpose::NO_PAD);

/// The most values one blocking task hashes, by algorithm speed.
const SLOW_CHUNK: usize = 8;
const FAST_CHUNK: usize = 4096;

/// A bcrypt salt, parsed from its string form.
#[derive(Clone)]
pub(super) struct BcryptSalt {
    version: bcrypt::Version,
    cost: u32,
    raw: [u8; 16],
}

/// Why a secret is not a bcrypt salt. Never holds the secret's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadSalt {
    /// Not 29 ASCII characters.
    #[error("it is not 29 characters long")]
    Length,
    /// No `$2a$`, `$2b$`, `$2x$` or `$2y$` at the start.
    #[error("it does not start with `$2a$`, `$2b$`, `$2x$` or `$2y$`")]
    Version,
    /// The cost is not `04`–`31` followed by `$`.
    #[error("its cost is not a two-digit number from 04 to 31 followed by `$`")]
    Cost,
    /// The 22 salt characters are not bcrypt base64.
    #[error(
        "its last 22 characters are not bcrypt base64 (`./A-Za-z0-9`, the last one `.`, `O`, `e` or `u`)"
    )]
    Base64,
}

impl BcryptSalt {
    /// Parses `$2b$12$` and 22 characters of bcrypt base64, as Python's `bcrypt.gensalt()`
    /// writes it.
    pub(super) fn parse(text: &str) -> Result<Self, BadSalt> {
        let bytes = text.as_bytes();
        if bytes.len() != BCRYPT_SALT_LEN || !text.is_ascii() {
            return Err(BadSalt::Length);
        }
        let (head, rest) = bytes.split_at(4);
        let version = match head {
            b"$2a$" => bcrypt::Version::TwoA,
            b"$2b$" => bcrypt::Version::TwoB,
            b"$2x$" => bcrypt::Version::TwoX,
            b"$2y$" => bcrypt::Version::TwoY,
            _ => return Err(BadSalt::Version),
        };
        let (cost, encoded) = rest.split_at(3);
        let cost = match cost {
            [tens @ b'0'..=b'9', ones @ b'0'..=b'9', b'$'] => {
                u32::from(tens - b'0') * 10 + u32::from(ones - b'0')
            }
            _ => return Err(BadSalt::Cost),
        };
        if !(4..=31).contains(&cost) {
            return Err(BadSalt::Cost);
        }
        let raw = BCRYPT_BASE64
            .decode(encoded)
            .ok()
            .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
            .ok_or(BadSalt::Base64)?;
        Ok(Self { version, cost, raw })
    }
}

/// One way of hashing, with its secret resolved.
pub(super) enum Hasher {
    /// SHA-256 of the salt (empty without one) and the value.
    Sha256 { salt: Vec<u8> },
    /// HMAC-SHA-256 keyed once.
    HmacSha256 { mac: Hmac<Sha256> },
    /// bcrypt with a fixed salt.
    Bcrypt { salt: BcryptSalt, strip: bool },
    /// argon2id with default parameters and a fixed salt.
    Argon2 { salt: Vec<u8> },
}

impl Hasher {
    /// The hasher of a step: its algorithm, with the secrets it names.
    pub(super) fn new(settings: &HashSettings, secrets: &Secrets) -> Result<Self, StepError> {
        let salt = settings
            .salt
            .as_deref()
            .map(|name| secret(secrets, "salt", name))
            .transpose()?;
        let key = settings
            .key
            .as_deref()
            .map(|name| secret(secrets, "key", name))
            .transpose()?;
        // Load-time checks make sure the secret an algorithm needs is named; these `None`s
        // are for a flow that skipped them.
        let needs =
            |setting: &str| StepError::fatal(format!("`{}` needs `{setting}`", settings.algorithm));
        Ok(match settings.algorithm {
            Algorithm::Sha256 => Self::Sha256 {
                salt: salt
                    .map(|(_, value)| value.into_bytes())
                    .unwrap_or_default(),
            },
            Algorithm::HmacSha256 => {
                let (_, key) = key.ok_or_else(|| needs("key"))?;
                let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
                    .map_err(|e| StepError::Internal(Box::new(e)))?;
                Self::HmacSha256 { mac }
            }
            Algorithm::Bcrypt => {
                let (name, text) = salt.ok_or_else(|| needs("salt"))?;
                let salt = BcryptSalt::parse(&text).map_err(|reason| {
                    StepError::fatal(format!(
                        "secret `{name}` in `salt` is not a bcrypt salt: {reason}; bcrypt needs one such as `$2b$12$` followed by 22 characters"
                    ))
                })?;
                Self::Bcrypt {
                    salt,
                    strip: settings.strip_salt,
                }
            }
            Algorithm::Argon2 => {
                let (name, text) = salt.ok_or_else(|| needs("salt"))?;
                if text.len() < ARGON2_MIN_SALT {
                    return Err(StepError::fatal(format!(
                        "secret `{name}` in `salt` is too short for argon2: it has {} bytes, argon2 needs at least {ARGON2_MIN_SALT}",
                        text.len()
                    )));
                }
                Self::Argon2 {
                    salt: text.into_bytes(),
                }
            }
        })
    }

    /// The most bytes of a value this hasher takes.
    pub(super) fn max_bytes(&self) -> Option<usize> {
        matches!(self, Self::Bcrypt { .. }).then_some(BCRYPT_MAX_BYTES)
    }

    fn is_slow(&self) -> bool {
        matches!(self, Self::Bcrypt { .. } | Self::Argon2 { .. })
    }

    /// The digest of one value's text. bcrypt values are at most [`BCRYPT_MAX_BYTES`] long
    /// (the caller checks); `blocks` is argon2's working memory, reused between values.
    pub(super) fn digest(
        &self,
        text: &str,
        blocks: &mut Vec<argon2::Block>,
    ) -> Result<String, StepError> {
        match self {
            Self::Sha256 { salt } => {
                let mut sha = Sha256::new();
                sha.update(salt);
                sha.update(text.as_bytes());
                Ok(hex::encode(sha.finalize()))
            }
            Self::HmacSha256 { mac } => {
                let mut mac = mac.clone();
                mac.update(text.as_bytes());
                Ok(hex::encode(mac.finalize().into_bytes()))
            }
            Self::Bcrypt { salt, strip } => {
                let parts = bcrypt::hash_with_salt(text.as_bytes(), salt.cost, salt.raw)
                    .map_err(|e| StepError::fatal(format!("bcrypt: {e}")))?;
                let full = parts.format_for_version(salt.version.clone());
                if *strip {
                    Ok(full.get(BCRYPT_SALT_LEN..).unwrap_or_default().to_owned())
                } else {
                    Ok(full)
                }
            }
            Self::Argon2 { salt } => {
                let argon = argon2::Argon2::default();
                blocks.resize(argon.params().block_count(), argon2::Block::default());
                let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
                argon
                    .hash_password_into_with_memory(text.as_bytes(), salt, &mut out, blocks)
                    .map_err(|e| StepError::fatal(format!("argon2: {e}")))?;
                Ok(hex::encode(out))
            }
        }
    }

    /// The digests of `texts`, in order; stops with `Cancelled` before any value once `stop`
    /// is cancelled.
    fn digest_chunk(
        &self,
        texts: &[String],
        stop: &CancellationToken,
    ) -> Result<Vec<String>, StepError> {
        let mut blocks = Vec::new();
        texts
            .iter()
            .map(|text| {
                if stop.is_cancelled() {
                    return Err(StepError::Cancelled);
                }
                self.digest(text, &mut blocks)
            })
            .collect()
    }
}

/// The digests of `texts`, in order, computed on blocking threads: chunks of a few values,
/// at most one chunk per CPU at a time. On cancel it returns at once, and the threads stop
/// before their next value; so they do when this future is dropped.
pub(super) async fn digest_all(
    hasher: Arc<Hasher>,
    texts: Vec<String>,
    cancel: &CancellationToken,
) -> Result<Vec<String>, StepError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let most = if hasher.is_slow() {
        SLOW_CHUNK
    } else {
        FAST_CHUNK
    };
    let chunk_len = texts.len().div_ceil(workers).clamp(1, most);
    let mut chunks = Vec::new();
    let mut texts = texts.into_iter().peekable();
    while texts.peek().is_some() {
        chunks.push(texts.by_ref().take(chunk_len).collect::<Vec<_>>());
    }
    let mut digests: Vec<Vec<String>> = vec![Vec::new(); chunks.len()];
    let mut queue = chunks.into_iter().enumerate();
    let stop = cancel.child_token();
    let _stop_when_dropped = stop.clone().drop_guard();
    let mut running = JoinSet::new();
    loop {
        while running.len() < workers {
            let Some((i, chunk)) = queue.next() else {
                break;
            };
            let (hasher, stop) = (hasher.clone(), stop.clone());
            running.spawn_blocking(move || (i, hasher.digest_chunk(&chunk, &stop)));
        }
        let joined = tokio::select! {
            () = stop.cancelled() => return Err(StepError::Cancelled),
            joined = running.join_next() => joined,
        };
        let Some(joined) = joined else {
            break;
        };
        let (i, chunk) = joined.map_err(|e| StepError::Internal(Box::new(e)))?;
        digests[i] = chunk?;
    }
    Ok(digests.into_iter().flatten().collect())
}

/// The value of the secret a setting names: `name` (the secret's one secret field) or
/// `name.field`. Returns the secret's name, for messages, with the value.
fn secret(secrets: &Secrets, setting: &str, written: &str) -> Result<(String, String), StepError> {
    match secrets.lookup(written) {
        Ok((name, value)) => Ok((name.to_owned(), value.expose().clone())),
        Err(MissingSecret::Unknown) => Err(StepError::fatal(format!(
            "unknown secret `{written}` in `{setting}`; add it to secrets.yml"
        ))),
        Err(MissingSecret::NoSecretField) => Err(StepError::fatal(format!(
            "secret `{written}` in `{setting}` has no secret value; name one of its fields, as in `{written}.password`"
        ))),
        Err(MissingSecret::NoField { name, field }) => Err(StepError::fatal(format!(
            "secret `{name}` in `{setting}` has no secret field `{field}`"
        ))),
    }
}
