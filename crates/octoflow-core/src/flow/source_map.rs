//! Where each field of a YAML document is: field path → line and column.
//!
//! Built from the parser's event stream, so every problem found later on the parsed value
//! (a wrong type, an unknown field, a bad duration) can name its place in the file.

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

/// Field paths (`steps[1].exec.timeout`) mapped to the places of their keys and values.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    keys: HashMap<String, Place>,
    values: HashMap<String, Place>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

impl SourceMap {
    /// Maps every node of the first document of `text`; a syntax error stops the walk there.
    pub fn build(text: &str) -> Self {
        let mut map = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
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
                        map.keys.insert(field, place);
                        *key = Some(text.into_owned());
                    } else {
                        let path = Self::value_path(&mut stack);
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
