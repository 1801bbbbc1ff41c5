//! Where each field of a YAML document is: field path → line and column.
//!
//! Built from the parser's event stream, so every problem found later on the parsed value
//! (a wrong type, an unknown field, a bad duration) can name its place in the file.
//!
//! Its memory is linear in the document: a path repeats its parents' keys, so a deep or
//! long-keyed document could otherwise ask for depth × keys bytes. Nodes deeper than
//! [`MAX_DEPTH`] are not mapped, nor any past a budget of path bytes proportional to the
//! text; a problem there is placed at its closest mapped ancestor.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The deepest node mapped.
const MAX_DEPTH: usize = 64;
/// Path bytes kept for each byte of the document (and a little for a short one).
const BYTES_PER_BYTE: usize = 8;
const BASE_BUDGET: usize = 64 * 1024;

/// Field paths (`steps[1].exec.timeout`) mapped to the places of their keys and values.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    keys: HashMap<String, Place>,
    values: HashMap<String, Place>,
    /// Path bytes held.
    bytes: usize,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

impl Frame {
    /// The bytes it holds.
    fn bytes(&self) -> usize {
        match self {
            Self::Map { path, key } => path.len() + key.as_ref().map_or(0, String::len),
            Self::Seq { path, .. } => path.len(),
        }
    }
}

impl SourceMap {
    /// Maps every node of the first document of `text`; a syntax error stops the walk there.
    pub fn build(text: &str) -> Self {
        let mut map = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        let budget = text.len().saturating_mul(BYTES_PER_BYTE) + BASE_BUDGET;
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let frames: usize = stack.iter().map(Frame::bytes).sum();
            if stack.len() > MAX_DEPTH || map.bytes + frames > budget {
                break;
            }
            let place = Place {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(text, ..) => {
                    if let Some(Frame::Map {
                        path,
                        key: key @ None,
                    }) = stack.last_mut()
                    {
                        let field = join_key(path, &text);
                        map.bytes += field.len();
                        map.keys.insert(field, place);
                        *key = Some(text.into_owned());
                    } else {
                        let path = Self::value_path(&mut stack);
                        map.bytes += path.len();
                        map.values.insert(path, place);
                    }
                }
                Event::Alias(_) => {
                    if let Some(Frame::Map {
                        key: key @ None, ..
                    }) = stack.last_mut()
                    {
                        *key = Some(String::from("*"));
                    } else {
                        let path = Self::value_path(&mut stack);
                        map.bytes += path.len();
                        map.values.insert(path, place);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = if let Some(Frame::Map {
                        key: key @ None, ..
                    }) = stack.last_mut()
                    {
                        // A complex key: give it a placeholder name.
                        *key = Some(String::from("?"));
                        String::from("?")
                    } else {
                        Self::value_path(&mut stack)
                    };
                    map.bytes += path.len();
                    map.values.insert(path.clone(), place);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { path, key: None }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        map
    }

    /// The path of the value that starts now, advancing the enclosing frame.
    fn value_path(stack: &mut [Frame]) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => {
                let name = key.take().unwrap_or_default();
                join_key(path, &name)
            }
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                p
            }
        }
    }

    /// The place of a field's key, else of its value, else of its closest ancestor.
    pub fn key_place(&self, path: &str) -> Option<Place> {
        self.lookup(path, true)
    }

    /// The place of a field's value, else of its key, else of its closest ancestor.
    pub fn value_place(&self, path: &str) -> Option<Place> {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &str, key_first: bool) -> Option<Place> {
        let mut path = path;
        loop {
            let (first, second) = if key_first {
                (&self.keys, &self.values)
            } else {
                (&self.values, &self.keys)
            };
            if let Some(place) = first.get(path).or_else(|| second.get(path)) {
                return Some(*place);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// `a.b` for a key `b` under `a`; keys that are not plain names are quoted.
pub(super) fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// The path one level up: `steps[1].exec` for `steps[1].exec.timeout`.
fn parent(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    path.get(..cut).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "name: x\nsteps:\n  - name: a\n    exec:\n      timeout: 10 minutes\n  - name: b\n";

    #[test]
    fn memory_stays_linear_in_the_document() {
        // Deep: 5,000 nested maps, each path repeating every key above it.
        let deep: String = (0..5000).map(|_| "{k123456789: ").collect::<String>() + "1";
        let map = SourceMap::build(&deep);
        assert!(
            map.bytes <= deep.len() * BYTES_PER_BYTE + BASE_BUDGET,
            "{}",
            map.bytes
        );
        // Long keys above many children: each child's path repeats the long key.
        let long = "k".repeat(1000);
        let wide = format!("{long}:\n{}", "  - 1\n".repeat(100_000));
        let map = SourceMap::build(&wide);
        assert!(
            map.bytes <= wide.len() * BYTES_PER_BYTE + BASE_BUDGET,
            "{}",
            map.bytes
        );
        // What was mapped still places problems.
        assert_eq!(
            map.value_place(&format!("{long}[0]")),
            Some(Place { line: 2, column: 5 })
        );
        let shallow = SourceMap::build(DOC);
        assert!(shallow.bytes < 200);
    }

    #[test]
    fn places_keys_and_values() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.key_place("name"), Some(Place { line: 1, column: 1 }));
        assert_eq!(map.value_place("name"), Some(Place { line: 1, column: 7 }));
        assert_eq!(
            map.value_place("steps[0].exec.timeout"),
            Some(Place {
                line: 5,
                column: 16
            })
        );
        assert_eq!(
            map.key_place("steps[0].exec.timeout"),
            Some(Place { line: 5, column: 7 })
        );
        assert_eq!(
            map.key_place("steps[1].name"),
            Some(Place { line: 6, column: 5 })
        );
    }

    #[test]
    fn falls_back_to_the_parent() {
        let map = SourceMap::build(DOC);
        assert_eq!(
            map.value_place("steps[1].exec"),
            Some(Place { line: 6, column: 5 })
        );
    }

    #[test]
    fn quotes_odd_keys() {
        assert_eq!(join_key("env", "LANG"), "env.LANG");
        assert_eq!(join_key("data", "a b"), "data[\"a b\"]");
    }
}
