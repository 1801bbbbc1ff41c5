//! One batch delivered: sent, then the records the sink refused sent again after a growing
//! wait, up to `retry.attempts` times. What is still refused then is counted, not retried.

use std::fmt::Write as _;

use crate::batch::Item;
use crate::settings::Resend;
use crate::sinks::{Outgoing, Sink, SinkError};

/// What became of one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Records the sink took.
    pub(crate) accepted: usize,
    /// Record sends after the first (one record sent three times counts two).
    pub(crate) resent: usize,
    /// Records the sink already had (NATS's duplicate window).
    pub(crate) duplicates: usize,
    /// Records still refused after the last re-send.
    pub(crate) refused: usize,
    /// Why the last refused record was refused.
    pub(crate) reason: Option<String>,
}

/// Sends `items` as batch `number` (the other fields of `template` say where from), and
/// the refused ones again as `retry` says.
pub(crate) async fn deliver(
    sink: &Sink,
    items: &[Item],
    number: usize,
    template: &Outgoing<'_>,
    retry: &Resend,
) -> Result<Delivery, SinkError> {
    let mut delivery = Delivery::default();
    let mut pending: Vec<&Item> = items.iter().collect();
    let mut resends = 0;
    loop {
        let out = Outgoing {
            items: &pending,
            number,
            ..*template
        };
        let outcome = sink.send(&out).await?;
        delivery.accepted += pending.len().saturating_sub(outcome.refused.len());
        delivery.duplicates += outcome.duplicates;
        if outcome.refused.is_empty() {
            return Ok(delivery);
        }
        if resends >= retry.attempts {
            delivery.refused = outcome.refused.len();
            delivery.reason = outcome.refused.into_iter().last().map(|(_, why)| why);
            return Ok(delivery);
        }
        resends += 1;
        tokio::time::sleep(retry.backoff(resends)).await;
        pending = outcome
            .refused
            .iter()
            .filter_map(|(i, _)| pending.get(*i).copied())
            .collect();
        delivery.resent += pending.len();
    }
}

/// `1 record`, `2 records`.
pub(crate) fn count_records(n: usize) -> String {
    if n == 1 {
        "1 record".to_owned()
    } else {
        format!("{n} records")
    }
}

impl Delivery {
    /// The step-log line of batch `number` of `total` (never a payload).
    pub(crate) fn describe(
        &self,
        sink: &Sink,
        number: usize,
        total: usize,
        millis: u128,
    ) -> String {
        let mut line = format!(
            "Batch {number}/{total}: {} published to sink `{}` ({}) in {millis} ms",
            count_records(self.accepted),
            sink.name,
            sink.config.kind()
        );
        if self.resent > 0 {
            let _ = write!(line, ", {} re-sent", self.resent);
        }
        if self.duplicates > 0 {
            let _ = write!(line, ", {} already there", self.duplicates);
        }
        if self.refused > 0 {
            let _ = write!(line, ", {} refused", self.refused);
        }
        line.push('.');
        line
    }
}
