//! A problem found in a flow file, with its place.

use std::fmt;

/// One thing wrong with a flow: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The field path, such as `steps[1].exec.timeout`; empty for a YAML syntax error.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, lowercase, with a hint when one is known.
    pub message: String,
}

impl Problem {
    /// A problem at a field path; its place is filled in from the source map later.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// The problem as one line, prefixed by the file name: `file:line:column: path: message`.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        InFile {
            file,
            problem: self,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

struct InFile<'a> {
    file: &'a str,
    problem: &'a Problem,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.problem.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.problem.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.problem)
    }
}

/// Every problem found in one flow file.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems {
    /// The file (or source name) the problems are in.
    pub file: String,
    /// The problems, in document order.
    pub items: Vec<Problem>,
}

impl Problems {
    /// The problems as lines `file:line:column: path: message`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.items
            .iter()
            .map(|p| p.display_in(&self.file).to_string())
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&line)?;
        }
        Ok(())
    }
}

/// Suggests the closest of `candidates` to `given`, when one is close enough.
pub fn suggest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The message for an unknown key, with a suggestion when one is close.
pub(super) fn unknown_field<'a>(
    what: &str,
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    match suggest(given, candidates) {
        Some(s) => format!("unknown field `{given}` in {what}; did you mean `{s}`?"),
        None => format!("unknown field `{given}` in {what}"),
    }
}
