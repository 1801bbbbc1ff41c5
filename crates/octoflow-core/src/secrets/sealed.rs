//! Values sealed with `octoflow secret seal` (`type: encrypted` in `secrets.yml`):
//! `ENC[v1:<base64 of nonce ‖ ciphertext ‖ tag>]`, ChaCha20-Poly1305 under a 32-byte key
//! given as base64 (`OCTOFLOW_SECRETS_KEY`, or the file `secrets_key_file` names). Each
//! seal draws a fresh random nonce, so sealing a value twice gives two different texts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::aead::Payload;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

/// What every sealed value is bound to besides its key (format and version).
const AAD: &[u8] = b"octoflow-secret-v1";
const PREFIX: &str = "ENC[v1:";
const NONCE_LEN: usize = 12;

/// Why a key or a sealed value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key is not 32 bytes of base64.
    #[error("the secrets key must be 32 bytes written as base64 (`octoflow secret key` makes one)")]
    BadKey,
    /// The text is not an `ENC[v1:…]` value.
    #[error("not a sealed value; expected `ENC[v1:…]` as `octoflow secret seal` prints it")]
    NotSealed,
    /// The value was sealed with another key, or altered.
    #[error("the value does not open with this key (sealed with another key, or altered)")]
    WrongKey,
    /// No random numbers for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

/// The key that seals and opens secrets.
#[derive(Clone)]
pub struct SealKey(Key);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl SealKey {
    /// A key from its base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Self(key.into()))
    }

    /// A new random key, as base64.
    pub fn generate() -> Result<String, SealError> {
        let mut key = [0_u8; 32];
        getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(STANDARD.encode(key))
    }

    /// `value` sealed: `ENC[v1:…]`.
    pub fn seal(&self, value: &str) -> Result<String, SealError> {
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: AAD,
                },
            )
            .map_err(|_| SealError::WrongKey)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}]", STANDARD.encode(bytes)))
    }

    /// The value inside `ENC[v1:…]`.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let inner = sealed
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(SealError::NotSealed)?;
        let bytes = STANDARD.decode(inner).map_err(|_| SealError::NotSealed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::NotSealed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::NotSealed)?;
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: AAD,
                },
            )
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key() {
        let key = SealKey::from_base64(&SealKey::generate().unwrap()).unwrap();
        let other = SealKey::from_base64(&SealKey::generate().unwrap()).unwrap();
        let sealed = key.seal("s3cret ünïcode").unwrap();
        assert!(
            sealed.starts_with("ENC[v1:") && sealed.ends_with(']'),
            "{sealed}"
        );
        assert!(!sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            key.seal("s3cret ünïcode").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).unwrap(), "s3cret ünïcode");
        assert_eq!(other.open(&sealed), Err(SealError::WrongKey));
        let mut altered = sealed.clone().into_bytes();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        assert!(key.open(&String::from_utf8(altered).unwrap()).is_err());
        assert_eq!(key.open("plain"), Err(SealError::NotSealed));
        assert_eq!(
            SealKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadKey
        );
        assert_eq!(format!("{key:?}"), "SealKey(***)");
    }
}
