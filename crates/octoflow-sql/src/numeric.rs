//! PostgreSQL `numeric` values as exact decimal text, with the value's own scale (`1.50`
//! stays `1.50`), read from the server's binary form: a sign, a weight and base-10000
//! digits. `NaN` and the infinities come back as their names.

use std::fmt::Write as _;

/// The text of a binary `numeric` value, or `None` when the bytes are not one.
pub(crate) fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        let pair = bytes.get(i * 2..i * 2 + 2)?;
        Some(u16::from_be_bytes([pair[0], pair[1]]))
    };
    let count = usize::from(word(0)?);
    let weight = i32::from(word(1)?.cast_signed());
    let sign = word(2)?;
    let scale = usize::from(word(3)?);
    match sign {
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<u16> = (0..count).map(|i| word(4 + i)).collect::<Option<_>>()?;
    // Base-10000 digit `k` has the place value 10000^(weight - k).
    let digit_at = |place: i32| -> u16 {
        usize::try_from(weight - place)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for place in (0..=weight).rev() {
            let group = digit_at(place);
            if place == weight {
                let _ = write!(text, "{group}");
            } else {
                let _ = write!(text, "{group:04}");
            }
        }
    }
    if scale > 0 {
        text.push('.');
        let mut fraction = String::new();
        let mut place = -1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit_at(place));
            place -= 1;
        }
        fraction.truncate(scale);
        text.push_str(&fraction);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::numeric_text;

    /// The binary form of a numeric: header words then base-10000 digits.
    fn binary(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let count = u16::try_from(digits.len()).unwrap();
        let mut out = Vec::new();
        for word in [count, weight.cast_unsigned(), sign, scale]
            .iter()
            .chain(digits)
        {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[track_caller]
    fn case(weight: i16, sign: u16, scale: u16, digits: &[u16], expected: &str) {
        assert_eq!(
            numeric_text(&binary(weight, sign, scale, digits)).as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn values_keep_their_digits_and_scale() {
        case(0, 0, 2, &[1, 5000], "1.50");
        case(0, 0, 0, &[100], "100");
        case(1, 0, 0, &[1], "10000");
        case(-1, 0, 4, &[5], "0.0005");
        case(-2, 0, 6, &[1200], "0.000012");
        case(0, 0x4000, 3, &[7, 1230], "-7.123");
        case(0, 0, 0, &[], "0");
        case(0, 0, 2, &[], "0.00");
        case(
            4,
            0,
            10,
            &[1234, 5678, 9012, 3456, 7890, 123, 4567, 8900],
            "12345678901234567890.0123456789",
        );
        case(0, 0xC000, 0, &[], "NaN");
        case(0, 0xD000, 0, &[], "Infinity");
        assert_eq!(numeric_text(&[0, 1]), None);
    }
}
