//! Which runs of a jq program are quick enough to run in place, on the calling thread,
//! instead of being handed to a jq thread ([`super::threads`]) and back — two thread
//! wake-ups that cost more than a small program itself.
//!
//! A run in place cannot be interrupted (jaq cannot be), so only runs whose work is bounded
//! by the size of their input are, and only on small inputs:
//! - the program ([`is_quick`], a lexical pass over its text): at most [`MAX_TOKENS`]
//!   tokens; only names of a list of builtins that do bounded work (no `def`, `reduce`,
//!   `foreach`, `recurse`, `..`, `range`, `limit`, `until`, `split` and other regular
//!   expressions, `input`);
//!   at most one iteration (`[]`, `map`, `sort_by`, …), so the work is at most the input's
//!   size times itself; commas only between an object's fields (elsewhere they make streams
//!   that a pipe multiplies); no string interpolation;
//! - the input and the variables ([`is_small`]): at most [`MAX_WEIGHT`] values and string
//!   bytes together, nested at most [`MAX_DEPTH`] deep, so converting them never needs more
//!   stack than any thread has.
//!
//! Everything else runs on a jq thread, as before: the answer is the same either way.

use serde_json::Value;

/// Most tokens of a program run in place.
pub(super) const MAX_TOKENS: usize = 128;
/// Most values plus string bytes of the input and variables of a run in place.
pub(super) const MAX_WEIGHT: usize = 16 * 1024;
/// Deepest nesting of the input and variables of a run in place.
pub(super) const MAX_DEPTH: usize = 64;

/// Keywords and builtins whose work is bounded by their input (none iterates a function).
#[rustfmt::skip]
const BOUNDED: &[&str] = &[
    "if", "then", "elif", "else", "end", "and", "or", "not", "as", "try", "catch", "null",
    "true", "false", "empty", "error", "select", "length", "utf8bytelength", "keys",
    "keys_unsorted", "has", "in", "contains", "inside", "add", "flatten", "tostring",
    "tonumber", "tojson", "ascii_downcase", "ascii_upcase", "ltrimstr", "rtrimstr", "trim",
    "ltrim", "rtrim", "startswith", "endswith", "join", "explode", "implode", "type", "round",
    "floor", "ceil", "sqrt", "fabs", "abs", "min", "max", "unique", "reverse", "sort", "first",
    "last", "values", "nulls", "booleans", "numbers", "strings", "arrays", "objects",
    "iterables", "scalars", "to_entries", "from_entries", "todate", "fromdate", "now",
    "indices", "index", "rindex", "del", "isnan", "isinfinite", "isnormal", "infinite", "nan",
    "@text", "@json", "@csv", "@tsv", "@html", "@uri", "@sh", "@base64", "@base64d",
];

/// Builtins that apply a function to each element of their input: each counts as an
/// iteration.
const ITERATING: &[&str] = &[
    "map",
    "map_values",
    "with_entries",
    "any",
    "all",
    "sort_by",
    "group_by",
    "unique_by",
    "min_by",
    "max_by",
];

/// Whether runs of `source` may run in place (see the module's docs); a lexical pass that
/// never recurses.
pub(super) fn is_quick(source: &str) -> bool {
    let chars: Vec<char> = source.chars().collect();
    // The innermost bracket around each character: `(`, `[` or `{`.
    let mut frames: Vec<char> = Vec::new();
    let (mut tokens, mut iterations) = (0usize, 0usize);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                tokens += 1;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        if chars.get(i + 1) == Some(&'(') {
                            return false;
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' || c == '@' => {
                let start = i;
                while i + 1 < chars.len() && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '_')
                {
                    i += 1;
                }
                tokens += 1;
                let word: String = chars[start..=i].iter().collect();
                let after = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                let before = chars[..start].iter().rev().find(|c| !c.is_whitespace());
                let field = start > 0 && chars[start - 1] == '.';
                let key = frames.last() == Some(&'{')
                    && matches!(before, Some('{' | ','))
                    && matches!(after, Some(':' | ',' | '}'));
                if c.is_ascii_digit() || c == '$' || field || key {
                    // A number, a variable, a field or an object's key.
                } else if ITERATING.contains(&word.as_str()) {
                    iterations += 1;
                } else if !BOUNDED.contains(&word.as_str()) {
                    return false;
                }
            }
            '.' if chars.get(i + 1) == Some(&'.') => return false,
            '(' | '{' => {
                tokens += 1;
                frames.push(c);
            }
            '[' => {
                tokens += 1;
                let next = chars[i + 1..].iter().position(|c| !c.is_whitespace());
                if next.is_some_and(|n| chars[i + 1 + n] == ']') {
                    iterations += 1;
                    i += 1 + next.unwrap_or(0);
                } else {
                    frames.push(c);
                }
            }
            ')' | ']' | '}' => {
                tokens += 1;
                frames.pop();
            }
            ',' if frames.last() != Some(&'{') => return false,
            _ => tokens += 1,
        }
        if tokens > MAX_TOKENS || iterations > 1 {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `values` together are small enough for a run in place (see the module's docs);
/// walks at most [`MAX_WEIGHT`] values, without recursing.
pub(super) fn is_small<'v>(values: impl IntoIterator<Item = &'v Value>) -> bool {
    let mut weight = 0usize;
    let mut pending: Vec<(&Value, usize)> = values.into_iter().map(|v| (v, 1)).collect();
    while let Some((value, depth)) = pending.pop() {
        weight += 1;
        if depth > MAX_DEPTH || weight > MAX_WEIGHT {
            return false;
        }
        match value {
            Value::String(s) => weight += s.len(),
            Value::Array(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => {
                for (key, v) in map {
                    weight += key.len();
                    pending.push((v, depth + 1));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    weight <= MAX_WEIGHT
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bounded_programs_are_quick() {
        for program in [
            ".",
            ".a.b",
            "{id: .id, name: (.name | ascii_upcase), lines: (.items | length), total: ((([.items[] | .qty * .price] | add) * 100 | round) / 100), tags: (.tags | join(\",\")), ok: true}",
            "map(.a) | add",
            "{a, $run, b: 1}",
            ".x // \"none\" # a comment, with a comma",
            "if .n > 1 then \"many\" else \"one\" end",
            "$params.env | ascii_downcase",
            ".items | sort_by(.n) | first",
        ] {
            assert!(is_quick(program), "{program}");
        }
    }

    #[test]
    fn unbounded_or_unknown_programs_are_not() {
        for program in [
            "def f: f; f",
            "..",
            "[range(10)]",
            "[.[] | .[]]",
            "map(.[])",
            ".a[] | .b[]",
            "(1, 2)",
            "[.a, .b]",
            ".a, .b | .c",
            "\"id \\(.id)\"",
            "reduce .[] as $x (0; . + $x)",
            ".a | test(\"x\")",
            "recurse",
            "limit(3; repeat(1))",
            "input",
            "{a: recurse}",
            ".a | split(\",\")",
        ] {
            assert!(!is_quick(program), "{program}");
        }
        let long = vec![".a"; MAX_TOKENS + 1].join(" | ");
        assert!(!is_quick(&long));
    }

    #[test]
    fn small_inputs_are_bounded_in_size_and_depth() {
        let body = json!({"id": 1, "items": [{"sku": "a", "qty": 2}], "tags": ["x"]});
        assert!(is_small([&body, &Value::Null]));
        let wide = Value::String("x".repeat(MAX_WEIGHT));
        assert!(!is_small([&wide]));
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(!is_small([&deep]));
        let many: Vec<Value> = (0..MAX_WEIGHT / 2).map(|i| json!(i)).collect();
        assert!(is_small([&json!(many[..100])]));
        assert!(!is_small([
            &Value::Array(many.clone()),
            &Value::Array(many)
        ]));
    }
}
