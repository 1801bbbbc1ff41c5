//! What the client commands print for people: tables of plain aligned columns on a terminal
//! (tab-separated rows for pipes), `key  value` blocks, and times and durations.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// Rows under a header.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether it has no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// On a terminal: the header and the rows in columns two spaces apart. Otherwise one
    /// tab-separated line per row and no header, for `cut` and `awk`.
    pub(crate) fn render(&self, terminal: bool) -> String {
        let clean = |cell: &str| cell.replace(['\t', '\n', '\r'], " ");
        if !terminal {
            let mut out = String::new();
            for row in &self.rows {
                let cells: Vec<String> = row.iter().map(|c| clean(c)).collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            return out;
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let rows: Vec<Vec<String>> = std::iter::once(header)
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.iter().map(|c| clean(c)).collect()),
            )
            .collect();
        let mut widths = vec![0; self.header.len()];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines with the values aligned; pairs with an empty value are left out.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let shown: Vec<&(&str, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in shown {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(out, "{key:width$}  {first}");
        for more in lines {
            let _ = writeln!(out, "{:width$}  {more}", "");
        }
    }
    out
}

/// A time for people, in UTC: `2026-11-22 10:00:03`; empty for none.
pub(crate) fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// How long from `start` to `end` (or to now, for what is still going), for people.
pub(crate) fn took(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let end = end.unwrap_or_else(Utc::now);
    (end - start)
        .to_std()
        .map(crate::output::human_duration)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["ID", "FLOW", "STATUS"]);
        t.row(vec!["1".into(), "a long name".into(), "ok".into()]);
        t.row(vec!["22".into(), "b\tc".into(), String::new()]);
        t
    }

    #[test]
    fn terminals_get_aligned_columns_pipes_get_tabs() {
        assert_eq!(
            sample().render(true),
            "ID  FLOW         STATUS\n1   a long name  ok\n22  b c\n"
        );
        assert_eq!(sample().render(false), "1\ta long name\tok\n22\tb c\t\n");
        assert!(Table::new(&["A"]).is_empty());
    }

    #[test]
    fn fields_align_and_skip_empty_values() {
        let text = fields(&[
            ("run", "r1".into()),
            ("node", String::new()),
            ("status", "failed\nsecond line".into()),
        ]);
        assert_eq!(text, "run     r1\nstatus  failed\n        second line\n");
    }

    #[test]
    fn times_and_durations() {
        let at = "2026-11-22T10:00:03.5Z".parse::<DateTime<Utc>>().unwrap();
        let later = "2026-11-22T10:02:04Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(time(Some(at)), "2026-11-22 10:00:03");
        assert_eq!(time(None), "");
        assert_eq!(took(Some(at), Some(later)), "2m 0s");
        assert_eq!(took(None, Some(later)), "");
    }
}
