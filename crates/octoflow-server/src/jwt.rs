//! Verifying a JWT: the keys a secret gives (HS256: the text, or the bytes it encodes as
//! base64; RS256: a PEM public key), the claims checked, and a refusal's reason in words.
//! Webhook triggers (`auth: {jwt: …}`) and the API (`auth.jwt` of config.yml) share it.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// How tokens of one issuer are checked.
#[derive(Clone)]
pub struct JwtCheck {
    keys: Vec<DecodingKey>,
    validation: Validation,
    audience: Option<String>,
    issuer: Option<String>,
}

impl std::fmt::Debug for JwtCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCheck")
            .field("algorithms", &self.validation.algorithms)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtCheck {
    /// Tokens signed with `key` (and/or the keys of [`JwtCheck::with_jwks`]) by one of
    /// `algorithms` (HS256, RS256); `exp` always required (and `nbf` checked when present),
    /// `aud` and `iss` required and checked when given.
    ///
    /// # Errors
    /// When no algorithm is given, one is not HS256 or RS256, or RS256 is asked for and the
    /// key is not a PEM public key.
    pub fn new(
        key: Option<&str>,
        algorithms: &[&str],
        audience: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for name in algorithms {
            match name.to_ascii_uppercase().as_str() {
                "HS256" => parsed.push(Algorithm::HS256),
                "RS256" => parsed.push(Algorithm::RS256),
                other => return Err(format!("algorithm `{other}` is not HS256 or RS256")),
            }
        }
        let Some(first) = parsed.first() else {
            return Err("no algorithm; give HS256 or RS256".to_owned());
        };
        let mut keys = Vec::new();
        if let Some(key) = key {
            if parsed.contains(&Algorithm::RS256) {
                keys.push(
                    DecodingKey::from_rsa_pem(key.as_bytes())
                        .map_err(|e| format!("the key is not an RSA public key (PEM): {e}"))?,
                );
            }
            if parsed.contains(&Algorithm::HS256) {
                keys.push(DecodingKey::from_secret(key.as_bytes()));
                keys.extend(DecodingKey::from_base64_secret(key.trim()).ok());
            }
        }
        let mut validation = Validation::new(*first);
        validation.algorithms = parsed;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            keys,
            validation,
            audience: audience.map(ToOwned::to_owned),
            issuer: issuer.map(ToOwned::to_owned),
        })
    }

    /// Also accepts tokens signed by the keys of a JWK set (an issuer's published keys).
    ///
    /// # Errors
    /// When a key of the set is not one this check can use.
    pub fn with_jwks(mut self, set: &jsonwebtoken::jwk::JwkSet) -> Result<Self, String> {
        for (i, jwk) in set.keys.iter().enumerate() {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i} of the set: {e}"))?;
            self.keys.push(key);
        }
        Ok(self)
    }

    /// Whether any key was given.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The token's claims, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let mut last = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => {
                    // Another key may be of the token's family or the right one.
                    let next_key = matches!(
                        error.kind(),
                        ErrorKind::InvalidSignature
                            | ErrorKind::InvalidKeyFormat
                            | ErrorKind::InvalidAlgorithm
                    );
                    last = Some(error);
                    if !next_key {
                        break;
                    }
                }
            }
        }
        Err(self.reason(last.as_ref().map(jsonwebtoken::errors::Error::kind)))
    }

    fn reason(&self, kind: Option<&ErrorKind>) -> String {
        match kind {
            Some(ErrorKind::ExpiredSignature) => "the JWT has expired".to_owned(),
            Some(ErrorKind::ImmatureSignature) => "the JWT is not valid yet (`nbf`)".to_owned(),
            Some(ErrorKind::InvalidAudience) => format!(
                "the JWT's audience is not `{}`",
                self.audience.as_deref().unwrap_or_default()
            ),
            Some(ErrorKind::InvalidIssuer) => format!(
                "the JWT's issuer is not `{}`",
                self.issuer.as_deref().unwrap_or_default()
            ),
            Some(ErrorKind::InvalidSignature) => "the JWT's signature does not verify".to_owned(),
            Some(ErrorKind::MissingRequiredClaim(claim)) => {
                format!("the JWT lacks the `{claim}` claim")
            }
            Some(ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat) => {
                "the JWT is signed with another algorithm".to_owned()
            }
            Some(other) => format!("invalid JWT: {other:?}"),
            None => "invalid JWT".to_owned(),
        }
    }
}

/// Whether a bearer token has the shape of a JWT (three base64url parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}
