//! Secrets (SPEC §10): `secrets.yml` is a list of named credentials. Resolved values are
//! [`Secret`]s — printed as `***` — and every one of them is handed to the engine's
//! [`Redactor`] so it never reaches a log, a result or an error.

mod forms;
mod redact;
mod sealed;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

pub use redact::{MASK, MIN_SECRET_LEN, Redactor};
pub use sealed::{SealError, SealKey};

/// A value that must not be shown: `Debug`, `Display` and `Serialize` print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// One entry of `secrets.yml`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum SecretSpec {
    /// A user name and password (HTTP basic auth, `basic` webhooks).
    Credential {
        /// How flows and config name it.
        name: String,
        /// The user name (not secret).
        username: String,
        /// The password.
        password: Secret<String>,
    },
    /// A bearer token.
    Token {
        /// How flows and config name it.
        name: String,
        /// The token.
        token: Secret<String>,
    },
    /// An API key sent in a header.
    ApiKey {
        /// How flows and config name it.
        name: String,
        /// The key.
        key: Secret<String>,
        /// The header it is sent in (default `X-API-Key`).
        #[serde(default)]
        header: Option<String>,
    },
    /// Any secret text (an HMAC key, a PEM key, a salt).
    Value {
        /// How flows and config name it.
        name: String,
        /// The text.
        value: Secret<String>,
    },
    /// The value of an environment variable of the server.
    Env {
        /// How flows and config name it.
        name: String,
        /// The variable's name.
        env: String,
    },
    /// A value sealed with `octoflow secret seal`, opened with the key at start.
    Encrypted {
        /// How flows and config name it.
        name: String,
        /// The sealed text.
        value: String,
    },
    /// A value read from HashiCorp Vault's KV v2 API at start.
    Vault {
        /// How flows and config name it.
        name: String,
        /// The KV v2 path, such as `secret/data/app`.
        path: String,
        /// The key inside the secret's data.
        key: String,
    },
}

/// `secrets.yml` as written: a list of named secrets (or nothing).
#[derive(schemars::JsonSchema)]
#[schemars(title = "octoflow secrets.yml")]
#[expect(dead_code, reason = "only its shape is used: the secrets-file schema")]
struct SecretsFile(Option<Vec<SecretSpec>>);

/// The JSON Schema of `secrets.yml` (`octoflow schema secrets`).
pub fn secrets_schema() -> Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<SecretsFile>()
        .to_value()
}

/// A secret kept in HashiCorp Vault (`type: vault`): the binary reads it from the KV v2 API
/// ([`Secrets::vault_refs`]) and hands the value back ([`Secrets::set_vault_value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRef {
    /// The secret's name.
    pub name: String,
    /// The KV v2 path, such as `secret/data/app`.
    pub path: String,
    /// The key inside the secret's data.
    pub key: String,
}

/// A resolved entry: its name, its secret fields and its plain fields.
type Resolved = (
    String,
    Vec<(&'static str, Secret<String>)>,
    Vec<(&'static str, String)>,
);

/// Why `secrets.yml` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The file is not a valid secrets list.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong (never a secret value).
        message: String,
    },
    /// A secret value shorter than [`MIN_SECRET_LEN`]: an empty one would let an empty
    /// credential pass a check, and neither could be masked.
    #[error(
        "secret `{name}`: its {field} is {what}; a secret must be at least {MIN_SECRET_LEN} characters (an empty one would let an empty credential through)"
    )]
    TooShort {
        /// The secret.
        name: String,
        /// Its field.
        field: String,
        /// `empty` or `one character`.
        what: &'static str,
    },
    /// An `env` secret names a variable that is not set.
    #[error("secret `{name}` reads environment variable `{var}`, which is not set")]
    MissingEnv {
        /// The secret.
        name: String,
        /// The variable.
        var: String,
    },
    /// An `encrypted` secret, but no key to open it.
    #[error(
        "secret `{name}` is sealed; give the key in OCTOFLOW_SECRETS_KEY or the file `secrets_key_file` names"
    )]
    NoKey {
        /// The secret.
        name: String,
    },
    /// An `encrypted` secret that does not open.
    #[error("secret `{name}`: {source}")]
    Sealed {
        /// The secret.
        name: String,
        /// Why.
        source: SealError,
    },
}

/// The secret fields a secret named without a field stands for, in the order tried.
const SECRET_FIELDS: [&str; 4] = ["value", "token", "key", "password"];

/// Why a reference to a secret ([`Secrets::lookup`]) found no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingSecret {
    /// No secret of that name.
    #[error("no such secret in secrets.yml")]
    Unknown,
    /// The secret has no secret field (only plain ones).
    #[error("the secret has no secret value; name one of its fields")]
    NoSecretField,
    /// The secret exists but not that field.
    #[error("secret `{name}` has no secret field `{field}`")]
    NoField {
        /// The secret.
        name: String,
        /// The field asked for.
        field: String,
    },
}

/// Every resolved secret, by name and field.
#[derive(Clone, Default)]
pub struct Secrets {
    entries: BTreeMap<String, BTreeMap<&'static str, Secret<String>>>,
    /// Fields that are not secret themselves (a credential's `username`, a key's header).
    plain: BTreeMap<String, BTreeMap<&'static str, String>>,
    /// Values no template can reach that must never be shown either: the node's admin
    /// token, the passwords in configured URLs.
    hidden: Vec<Secret<String>>,
    /// `type: vault` secrets not read yet.
    vault: Vec<VaultRef>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl Secrets {
    /// Parses `secrets.yml` text; `env` resolves `type: env` secrets. A `type: encrypted`
    /// secret needs [`Secrets::parse_with_key`].
    pub fn parse(
        text: &str,
        file: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, SecretsError> {
        Self::parse_with_key(text, file, env, None)
    }

    /// Parses `secrets.yml` text; `env` resolves `type: env` secrets and `key` opens
    /// `type: encrypted` ones.
    pub fn parse_with_key(
        text: &str,
        file: &str,
        env: &BTreeMap<String, String>,
        key: Option<&SealKey>,
    ) -> Result<Self, SecretsError> {
        let invalid = |message: String| SecretsError::Invalid {
            file: file.to_owned(),
            message,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let specs: Vec<SecretSpec> = crate::yaml::from_str::<Option<Vec<SecretSpec>>>(text)
            .map_err(|e| invalid(scrub(&e.to_string())))?
            .unwrap_or_default();
        let mut secrets = Self::default();
        for spec in specs {
            let (name, fields, plain): Resolved = match spec {
                SecretSpec::Credential {
                    name,
                    username,
                    password,
                } => (
                    name,
                    vec![("password", password)],
                    vec![("username", username)],
                ),
                SecretSpec::Token { name, token } => (name, vec![("token", token)], vec![]),
                SecretSpec::ApiKey { name, key, header } => {
                    let header = header.unwrap_or_else(|| "X-API-Key".to_owned());
                    (name, vec![("key", key)], vec![("header", header)])
                }
                SecretSpec::Value { name, value } => (name, vec![("value", value)], vec![]),
                SecretSpec::Env { name, env: var } => {
                    let value = env.get(&var).ok_or_else(|| SecretsError::MissingEnv {
                        name: name.clone(),
                        var: var.clone(),
                    })?;
                    (name, vec![("value", Secret::new(value.clone()))], vec![])
                }
                SecretSpec::Encrypted { name, value } => {
                    let Some(key) = key else {
                        return Err(SecretsError::NoKey { name });
                    };
                    let opened = key.open(&value).map_err(|source| SecretsError::Sealed {
                        name: name.clone(),
                        source,
                    })?;
                    (name, vec![("value", Secret::new(opened))], vec![])
                }
                SecretSpec::Vault { name, path, key } => {
                    if secrets.entries.contains_key(&name)
                        || secrets.vault.iter().any(|v| v.name == name)
                    {
                        return Err(invalid(format!("secret `{name}` is defined twice")));
                    }
                    secrets.vault.push(VaultRef { name, path, key });
                    continue;
                }
            };
            if secrets.entries.contains_key(&name) || secrets.vault.iter().any(|v| v.name == name) {
                return Err(invalid(format!("secret `{name}` is defined twice")));
            }
            for (field, value) in &fields {
                long_enough(&name, field, value.expose())?;
            }
            secrets
                .entries
                .insert(name.clone(), fields.into_iter().collect());
            secrets.plain.insert(name, plain.into_iter().collect());
        }
        Ok(secrets)
    }

    /// A secret's field, such as `password` of `jira`.
    pub fn field(&self, name: &str, field: &str) -> Option<&Secret<String>> {
        self.entries.get(name)?.get(field)
    }

    /// A secret's non-secret field, such as `username`.
    pub fn plain_field(&self, name: &str, field: &str) -> Option<&str> {
        self.plain.get(name)?.get(field).map(String::as_str)
    }

    /// The value a setting names: `name` — the secret's one secret field (`value`, `token`,
    /// `key` or `password`: every type has exactly one) — or `name.field`. Also returns the
    /// secret's name, for messages.
    pub fn lookup<'a>(
        &'a self,
        reference: &'a str,
    ) -> Result<(&'a str, &'a Secret<String>), MissingSecret> {
        if let Some(fields) = self.entries.get(reference) {
            return SECRET_FIELDS
                .iter()
                .find_map(|field| fields.get(field))
                .map(|value| (reference, value))
                .ok_or(MissingSecret::NoSecretField);
        }
        if let Some((name, field)) = reference.rsplit_once('.')
            && let Some(fields) = self.entries.get(name)
        {
            return fields.get(field).map(|value| (name, value)).ok_or_else(|| {
                MissingSecret::NoField {
                    name: name.to_owned(),
                    field: field.to_owned(),
                }
            });
        }
        Err(MissingSecret::Unknown)
    }

    /// The `type: vault` secrets still to read.
    pub fn vault_refs(&self) -> &[VaultRef] {
        &self.vault
    }

    /// The value read from Vault for secret `name` (a `type: vault` one): from now on it is
    /// `secrets.<name>.value`, redacted like every secret.
    ///
    /// # Errors
    /// A value shorter than [`MIN_SECRET_LEN`].
    pub fn set_vault_value(&mut self, name: &str, value: String) -> Result<(), SecretsError> {
        long_enough(name, "value", &value)?;
        if let Some(i) = self.vault.iter().position(|v| v.name == name) {
            let read = self.vault.remove(i);
            let fields = [("value", Secret::new(value))].into_iter().collect();
            self.entries.insert(read.name.clone(), fields);
            self.plain.insert(read.name, BTreeMap::new());
        }
        Ok(())
    }

    /// Whether a secret of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Redacts `value` too, wherever secrets are redacted, without making it a secret that
    /// templates can read (the node's admin token, a password in a configured URL).
    pub fn hide(&mut self, value: &str) {
        self.hidden.push(Secret::new(value.to_owned()));
    }

    /// A redactor for every secret value and every hidden one.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.entries
                .values()
                .flat_map(|fields| fields.values())
                .chain(&self.hidden)
                .map(|s| s.expose().clone()),
        )
    }

    /// Renders a node-level setting written with secrets, such as a connection or sink URL
    /// (`mysql://reader:{{ secrets.ew.password }}@db/x`); only `secrets` is in scope. The
    /// result holds secret values: keep it out of messages (the redactor masks it anyway).
    pub fn render(&self, text: &str) -> Result<String, crate::expr::ExprError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_owned());
        }
        let scope = crate::expr::Scope::builder()
            .name("secrets", self.to_scope_value())
            .build();
        crate::expr::render_str(text, &scope)
    }

    /// `secrets` as templates see it: `secrets.<name>.<field>`.
    pub fn to_scope_value(&self) -> Value {
        let mut all = Map::new();
        for (name, fields) in &self.entries {
            let mut entry: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String(v.expose().clone())))
                .collect();
            if let Some(plain) = self.plain.get(name) {
                entry.extend(
                    plain
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))),
                );
            }
            all.insert(name.clone(), Value::Object(entry));
        }
        Value::Object(all)
    }
}

/// Parser messages may quote the document; keep only the first line and no values.
fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or("invalid secrets file");
    if first.contains("unknown variant") {
        let variants = "credential, token, api-key, value, env, encrypted, vault";
        return format!("unknown secret type; use one of {variants}");
    }
    first.to_owned()
}

/// Refuses a secret value shorter than [`MIN_SECRET_LEN`].
fn long_enough(name: &str, field: &str, value: &str) -> Result<(), SecretsError> {
    let what = match value.chars().count() {
        0 => "empty",
        n if n < MIN_SECRET_LEN => "one character",
        _ => return Ok(()),
    };
    Err(SecretsError::TooShort {
        name: name.to_owned(),
        field: field.to_owned(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
- { name: jira, type: credential, username: bot, password: s3cret }
- { name: api,  type: token, token: abc123 }
- { name: salt, type: value, value: '$2b$12$abcdefghijklmnopqrstuv' }
- { name: db,   type: env, env: DB_PASSWORD }
- { name: key,  type: api-key, key: k-999 }
";

    fn env() -> BTreeMap<String, String> {
        [("DB_PASSWORD".to_owned(), "pg-pass".to_owned())]
            .into_iter()
            .collect()
    }

    #[test]
    fn resolves_every_type() {
        let s = Secrets::parse(FILE, "secrets.yml", &env()).unwrap();
        assert_eq!(s.field("jira", "password").unwrap().expose(), "s3cret");
        assert_eq!(s.plain_field("jira", "username"), Some("bot"));
        assert_eq!(s.field("db", "value").unwrap().expose(), "pg-pass");
        assert_eq!(s.plain_field("key", "header"), Some("X-API-Key"));
        assert_eq!(format!("{:?}", s.field("api", "token").unwrap()), "***");
        let r = s.redactor();
        assert_eq!(
            r.text("s3cret abc123 pg-pass k-999 bot"),
            "*** *** *** *** bot"
        );
    }

    #[test]
    fn a_reference_names_a_secret_or_one_of_its_fields() {
        let s = Secrets::parse(FILE, "secrets.yml", &env()).unwrap();
        let value = |r| s.lookup(r).map(|(name, v)| (name, v.expose().as_str()));
        assert_eq!(value("jira"), Ok(("jira", "s3cret")));
        assert_eq!(value("jira.password"), Ok(("jira", "s3cret")));
        assert_eq!(value("key"), Ok(("key", "k-999")));
        assert_eq!(value("salt"), Ok(("salt", "$2b$12$abcdefghijklmnopqrstuv")));
        assert_eq!(value("nope"), Err(MissingSecret::Unknown));
        assert_eq!(
            value("jira.username"),
            Err(MissingSecret::NoField {
                name: "jira".to_owned(),
                field: "username".to_owned()
            })
        );
    }

    #[test]
    fn encrypted_secrets_open_with_the_key_only() {
        let key = SealKey::from_base64(&SealKey::generate().unwrap()).unwrap();
        let other = SealKey::from_base64(&SealKey::generate().unwrap()).unwrap();
        let text = format!(
            "- {{ name: enc, type: encrypted, value: '{}' }}\n",
            key.seal("opened-value").unwrap()
        );
        let s = Secrets::parse_with_key(&text, "secrets.yml", &env(), Some(&key)).unwrap();
        assert_eq!(s.field("enc", "value").unwrap().expose(), "opened-value");
        assert_eq!(s.redactor().text("x opened-value"), "x ***");
        let wrong = Secrets::parse_with_key(&text, "secrets.yml", &env(), Some(&other));
        assert_eq!(
            wrong.unwrap_err().to_string(),
            "secret `enc`: the value does not open with this key (sealed with another key, or altered)"
        );
        let none = Secrets::parse(&text, "secrets.yml", &env())
            .unwrap_err()
            .to_string();
        assert!(
            none.starts_with("secret `enc` is sealed; give the key"),
            "{none}"
        );
    }

    #[test]
    fn vault_secrets_wait_for_their_value() {
        let text = "- { name: kv, type: vault, path: secret/data/app, key: password }\n";
        let mut s = Secrets::parse(text, "secrets.yml", &env()).unwrap();
        assert_eq!(
            s.vault_refs(),
            [VaultRef {
                name: "kv".to_owned(),
                path: "secret/data/app".to_owned(),
                key: "password".to_owned()
            }]
        );
        assert_eq!(s.lookup("kv").unwrap_err(), MissingSecret::Unknown);
        s.set_vault_value("kv", "vault-pw".to_owned()).unwrap();
        assert!(s.vault_refs().is_empty());
        assert_eq!(s.lookup("kv").unwrap().1.expose(), "vault-pw");
        assert_eq!(s.redactor().text("pw=vault-pw"), "pw=***");
        let twice = format!("{text}- {{ name: kv, type: value, value: x }}\n");
        assert!(Secrets::parse(&twice, "secrets.yml", &env()).is_err());
    }

    #[test]
    fn node_settings_render_with_secrets_only() {
        let s = Secrets::parse(FILE, "secrets.yml", &env()).unwrap();
        assert_eq!(
            s.render("mysql://r:{{ secrets.db.value }}@h/x").unwrap(),
            "mysql://r:pg-pass@h/x"
        );
        assert_eq!(s.render("nats://h:4222").unwrap(), "nats://h:4222");
        assert!(s.render("{{ secrets.nope.value }}").is_err());
    }

    #[test]
    fn hidden_values_are_redacted_but_not_in_scope() {
        let mut s = Secrets::parse(FILE, "secrets.yml", &env()).unwrap();
        s.hide("admin-token-1");
        assert_eq!(s.redactor().text("t=admin-token-1"), "t=***");
        assert!(!s.to_scope_value().to_string().contains("admin-token-1"));
    }

    #[test]
    fn missing_env_and_bad_types_are_errors_without_values() {
        let err = Secrets::parse(FILE, "secrets.yml", &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret `db` reads environment variable `DB_PASSWORD`, which is not set"
        );
        let err = Secrets::parse(
            "- { name: x, type: keyring, password: hunter22 }",
            "s.yml",
            &env(),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
        assert!(err.to_string().contains("unknown secret type"), "{err}");
    }

    #[test]
    fn empty_and_one_character_secrets_are_refused_at_load() {
        for (file, what) in [
            (
                "- { name: hook, type: token, token: \"\" }",
                "its token is empty",
            ),
            (
                "- { name: hook, type: value, value: x }",
                "its value is one character",
            ),
            (
                "- { name: db, type: credential, username: u, password: \"\" }",
                "its password is empty",
            ),
        ] {
            let err = Secrets::parse(file, "s.yml", &env())
                .unwrap_err()
                .to_string();
            assert!(err.contains(what), "{file}: {err}");
            assert!(err.contains("at least 2 characters"), "{err}");
        }
        let mut vault = Secrets::parse(
            "- { name: kv, type: vault, path: a/b, key: pw }",
            "s.yml",
            &env(),
        )
        .unwrap();
        let err = vault.set_vault_value("kv", String::new()).unwrap_err();
        assert!(
            err.to_string().contains("`kv`: its value is empty"),
            "{err}"
        );
        Secrets::parse("- { name: ok, type: value, value: ab }", "s.yml", &env()).unwrap();
    }
}
