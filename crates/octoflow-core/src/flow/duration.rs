//! Durations as written in flow files: `500ms`, `30s`, `5m`, `2h`, `1d`, or a number of seconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration read from a flow file or config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// The longest duration written anywhere: a longer one would overflow the time
/// computations it feeds (a deadline, a next fire), so it is refused where it is read.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`; {hint}")]
pub struct DurationError {
    /// The text that was given.
    pub text: String,
    /// What to write instead.
    pub hint: &'static str,
}

const USE: &str = "use 500ms, 30s, 5m, 2h or 1d";
const AT_MOST: &str = "at most 36500d (100 years)";

fn bounded(text: &str, duration: Duration) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        return Err(DurationError {
            text: text.to_owned(),
            hint: AT_MOST,
        });
    }
    Ok(duration)
}

/// Parses one or more `<number><unit>` parts (`1h30m`); units are `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        text: text.to_owned(),
        hint: USE,
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| err())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            _ => return Err(err()),
        };
        total = total.saturating_add(part);
        rest = tail;
    }
    bounded(text, total)
}

/// Writes a duration in the shortest flow-file form (`1500ms`, `30s`, `5m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number of seconds, or text such as 500ms, 30s, 5m, 2h or 1d (parts may follow each other: 1h30m).",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^\\s*(\\d+(ms|s|m|h|d))+\\s*$"}
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 500ms, 30s, 5m, 2h or 1d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                bounded(&v.to_string(), Duration::from_secs(v))
                    .map(Dur)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                let seconds = u64::try_from(v).map_err(|_| {
                    E::custom(format!("invalid duration `{v}`; it must not be negative"))
                })?;
                self.visit_u64(seconds)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                let duration = Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("invalid duration `{v}`; {USE}")))?;
                bounded(&v.to_string(), duration)
                    .map(Dur)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_that_would_overflow_are_refused() {
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        for text in ["36501d", "99999999999999d", "18446744073709551615s"] {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains("at most 36500d (100 years)"), "{text}: {err}");
        }
        let err = serde_json::from_value::<Dur>(serde_json::json!(u64::MAX)).unwrap_err();
        assert!(err.to_string().contains("at most 36500d"), "{err}");
        let err = serde_json::from_value::<Dur>(serde_json::json!(1e300)).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }

    #[track_caller]
    fn case(text: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(text).ok(), expected, "{text}");
    }

    #[test]
    fn parses_flow_file_durations() {
        case("500ms", Some(Duration::from_millis(500)));
        case("30s", Some(Duration::from_secs(30)));
        case("5m", Some(Duration::from_secs(300)));
        case("2h", Some(Duration::from_secs(7200)));
        case("1d", Some(Duration::from_secs(86_400)));
        case("1h30m", Some(Duration::from_secs(5400)));
        case("10 minutes", None);
        case("", None);
        case("m", None);
        case("5x", None);
    }

    #[test]
    fn message_names_the_forms() {
        let err = parse_duration("10 minutes").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration `10 minutes`; use 500ms, 30s, 5m, 2h or 1d"
        );
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }
}
