//! The sections of `config.yml` (`auth`, `limits`, `files`, `http`, `connections`, `sinks`,
//! `smtp`) and the byte sizes they are written in.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use octoflow_core::flow::Dur;
use serde::Deserialize;

/// `auth:` of config.yml.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthConfig {
    /// Whether reads need no token.
    pub(crate) public_read: bool,
    /// Lifetime of login tokens.
    pub(crate) token_ttl: Dur,
    /// Tokens from an outside issuer.
    pub(crate) jwt: Option<JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            public_read: false,
            token_ttl: Dur(Duration::from_secs(15 * 60)),
            jwt: None,
        }
    }
}

/// `auth.jwt:` of config.yml: bearer tokens an outside issuer signs (SPEC §11.1).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtConfig {
    /// The `iss` a token must carry; none: not checked.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    /// The `aud` a token must carry; none: not checked.
    #[serde(default)]
    pub(crate) audience: Option<String>,
    /// `HS256` and/or `RS256`; default `[HS256]`.
    #[serde(default = "JwtConfig::default_algorithms")]
    pub(crate) algorithms: Vec<String>,
    /// The secret holding the key: the HS256 key, or the RS256 public key (PEM); `name` or
    /// `name.field`.
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// A JSON Web Key Set file (the issuer's published keys), relative to the data directory.
    #[serde(default)]
    pub(crate) jwks_file: Option<std::path::PathBuf>,
    /// The claim holding the role (`viewer`, `operator`, `admin`); default `role`. A token
    /// without it is a viewer.
    #[serde(default = "JwtConfig::default_role_claim")]
    pub(crate) role_claim: String,
}

impl JwtConfig {
    fn default_algorithms() -> Vec<String> {
        vec!["HS256".to_owned()]
    }

    fn default_role_claim() -> String {
        "role".to_owned()
    }
}

/// `http:` of config.yml: the one HTTP client of `rest` steps.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSection {
    /// How long connecting (TCP and TLS) may take (`10s`).
    pub(crate) connect_timeout: Dur,
    /// How long a peer may stay silent while a request is sent or an answer read (`5m`).
    pub(crate) read_timeout: Dur,
    /// How long an idle connection is kept for reuse (`90s`).
    pub(crate) pool_idle_timeout: Dur,
    /// Largest response body kept in memory as a step's result (`256MiB`).
    pub(crate) max_body_bytes: ByteSize,
    /// Largest response body `save_to` writes to a file (`16GiB`).
    pub(crate) max_save_bytes: ByteSize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            connect_timeout: Dur(Duration::from_secs(10)),
            read_timeout: Dur(Duration::from_secs(300)),
            pool_idle_timeout: Dur(Duration::from_secs(90)),
            max_body_bytes: ByteSize(256 * 1024 * 1024),
            max_save_bytes: ByteSize(16 * 1024 * 1024 * 1024),
        }
    }
}

impl HttpSection {
    /// The settings of the built-in kinds.
    pub(crate) fn steps_config(&self) -> octoflow_steps::StepsConfig {
        let mut config = octoflow_steps::StepsConfig::default();
        config.http.connect_timeout = self.connect_timeout.get();
        config.http.read_timeout = Some(self.read_timeout.get());
        config.http.pool_idle_timeout = self.pool_idle_timeout.get();
        config.http.max_body_bytes = self.max_body_bytes.0;
        config.http.max_save_bytes = self.max_save_bytes.0;
        config
    }
}

/// `limits:` of config.yml.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// Largest step result kept in the record (`1MiB`).
    pub(crate) max_result_bytes: ByteSize,
    /// Largest API body, and webhook body that is not an upload (`1MiB`).
    pub(crate) max_body_bytes: ByteSize,
    /// Largest webhook upload (`512MiB`).
    pub(crate) max_upload_bytes: ByteSize,
    /// Most files in one webhook upload (`100`).
    pub(crate) max_upload_files: usize,
    /// How long a webhook body may take, or an upload may pause (`30s`).
    pub(crate) body_timeout: Dur,
    /// How long finished runs are kept (`30d`).
    pub(crate) run_retention: Dur,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_result_bytes: ByteSize(1024 * 1024),
            max_body_bytes: ByteSize(1024 * 1024),
            max_upload_bytes: ByteSize(512 * 1024 * 1024),
            max_upload_files: 100,
            body_timeout: Dur(Duration::from_secs(30)),
            run_retention: Dur(Duration::from_secs(30 * 86_400)),
        }
    }
}

impl LimitsConfig {
    /// The server's bounds of request bodies.
    pub(crate) fn body_limits(&self) -> octoflow_server::BodyLimits {
        octoflow_server::BodyLimits {
            body: usize::try_from(self.max_body_bytes.0).unwrap_or(usize::MAX),
            upload: self.max_upload_bytes.0,
            files: self.max_upload_files,
            read_timeout: self.body_timeout.get(),
            ..octoflow_server::BodyLimits::default()
        }
    }
}

/// `files:` of config.yml.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FilesConfig {
    /// Whether absolute paths may point anywhere.
    pub(crate) allow_absolute: bool,
    /// More directories steps may touch (relative ones are in the data directory).
    pub(crate) roots: Vec<PathBuf>,
}

/// `store:` of config.yml: how the embedded store keeps its file, and the PostgreSQL
/// store's pool and schema.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreSection {
    /// `SQLite`: `normal` (a crash or `kill -9` loses nothing committed) or `full` (a power
    /// loss neither; each commit waits for the disk).
    pub(crate) synchronous: SynchronousMode,
    /// PostgreSQL: connections this node keeps at most (default 10).
    pub(crate) max_connections: Option<u32>,
    /// PostgreSQL: the schema of octoflow's tables (created when missing; default: the
    /// connection's `search_path`).
    pub(crate) schema: Option<String>,
}

/// `store.synchronous`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SynchronousMode {
    /// Synced at checkpoints.
    #[default]
    Normal,
    /// Synced at every commit.
    Full,
}

/// One entry of `smtp:`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpConfig {
    /// `smtp://host:port` or `smtps://…`.
    pub(crate) url: String,
    /// The sender address.
    #[serde(default)]
    pub(crate) from: Option<String>,
}

/// A size in bytes, written `1048576`, `512KiB`, `1MiB`, `2GiB`, `10MB` or `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let err = || format!("invalid size `{text}`; use a number of bytes, 512KiB, 1MiB or 2GiB");
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let number: u64 = digits.parse().map_err(|_| err())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return Err(err()),
        };
        number.checked_mul(factor).map(Self).ok_or_else(err)
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number of bytes, or text such as 512KiB, 1MiB, 2GiB, 10MB or 1GB.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*\\d+\\s*([KkMmGg]([Ii]?[Bb])?|[Bb])?\\s*$"}
            ]
        })
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(n) => Ok(Self(n)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}
