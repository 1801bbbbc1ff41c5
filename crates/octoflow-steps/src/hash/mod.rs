//! The `hash` kind: replaces fields of records with their digests (`sha256`, `hmac-sha256`,
//! `bcrypt`, `argon2`), salted or keyed with a secret. Result: the records, one record or a
//! list as given. The same value and secret always give the same digest; bcrypt digests are
//! those of Python's `bcrypt.hashpw`, as the spooler's poller made them.

mod digest;
mod records;
mod settings;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use octoflow_core::step::prelude::*;

use digest::{Hasher, digest_all};
use records::Records;
use settings::HashSettings;

/// The `hash` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hash;

impl StepKind for Hash {
    const NAME: &'static str = "hash";
    type Settings = HashSettings;

    fn check(&self, settings: &HashSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        settings.problems()
    }

    async fn run(&self, settings: &HashSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let data_key = settings
            .data_key
            .as_deref()
            .or(cx.data_key())
            .unwrap_or_default()
            .to_owned();
        let input = cx
            .input_with(settings.data_key.as_deref())?
            .ok_or_else(|| {
                StepError::fatal("`hash` needs `data_key`: where the records are in `data`")
            })?;
        let hasher = Hasher::new(settings, cx.secrets())?;
        let records = Records::from_input(input, &data_key)?;
        let algorithm = settings.algorithm;
        let most = hasher.max_bytes().map(|most| (most, algorithm.as_str()));
        let mut values = records.values(&settings.fields, most)?;
        let log = cx.log();
        log.note(format!(
            "Hashing {} values ({} distinct) in {} records with {algorithm}.",
            values.count(),
            values.texts.len(),
            records.len()
        ))
        .await;
        for (field, missing) in settings.fields.iter().zip(&values.missing) {
            if *missing > 0 {
                log.note(format!(
                    "Field `{}` is missing from {missing} of {} records; left as they are.",
                    field.as_str(),
                    records.len()
                ))
                .await;
            }
        }
        let texts = std::mem::take(&mut values.texts);
        let digests = digest_all(Arc::new(hasher), texts, cx.cancel_token()).await?;
        Ok(records.replace(&settings.fields, &values, &digests))
    }
}
