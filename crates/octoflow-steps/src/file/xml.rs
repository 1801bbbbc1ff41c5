//! Reading `xml`: one document to a JSON value, the way xmltodict does it. The root element
//! is the one key of the result; an element is a string (text only), `null` (empty) or an
//! object of `@attributes`, child elements and `#text`; a child name that repeats becomes a
//! list. Every value is a string. A DOCTYPE is skipped and its entities are not expanded.

use quick_xml::errors::IllFormedError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

/// How deep elements may nest (the depth `serde_json` parses to), so a hostile document
/// cannot exhaust the stack of whoever handles the value later.
const MAX_DEPTH: usize = 128;

/// Why a document cannot be read, and where.
#[derive(Debug, thiserror::Error)]
#[error("{problem} at line {line}, column {column}")]
pub(super) struct XmlError {
    problem: Problem,
    line: usize,
    column: usize,
}

/// What is wrong with a document.
#[derive(Debug, thiserror::Error)]
enum Problem {
    /// The parser refused it.
    #[error("{0}")]
    Syntax(quick_xml::Error),
    /// A reference to an entity a DOCTYPE would define.
    #[error(
        "unknown entity `&{0};` (only `&lt;`, `&gt;`, `&amp;`, `&apos;`, `&quot;` and character references are read)"
    )]
    UnknownEntity(String),
    /// Nothing but a prolog, comments or whitespace.
    #[error("no root element")]
    NoRoot,
    /// An element after the root element.
    #[error("a second root element `<{0}>`; a document has one")]
    SecondRoot(String),
    /// Text before or after the root element.
    #[error("text outside the root element")]
    TextOutside,
    /// Elements nest past [`MAX_DEPTH`].
    #[error("elements nest more than {MAX_DEPTH} levels deep")]
    TooDeep,
}

impl From<quick_xml::Error> for Problem {
    fn from(err: quick_xml::Error) -> Self {
        Self::Syntax(err)
    }
}

/// An element being read: its name, attributes and children so far, and its own text.
struct Element {
    name: String,
    fields: Map<String, Value>,
    text: String,
}

impl Element {
    /// An element with its attributes as `@name` fields.
    fn open(start: &BytesStart<'_>) -> Result<Self, Problem> {
        let mut fields = Map::new();
        for attr in start.attributes() {
            let attr = attr.map_err(quick_xml::Error::from)?;
            let value = attr.normalized_value(XmlVersion::Implicit1_0)?;
            let key = String::from_utf8_lossy(attr.key.as_ref());
            fields.insert(format!("@{key}"), Value::String(value.into_owned()));
        }
        Ok(Self {
            name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
            fields,
            text: String::new(),
        })
    }

    /// The element as a value: `null`, its text, or an object with `#text` last.
    fn close(self) -> (String, Value) {
        let text = self.text.trim();
        let value = match (self.fields.is_empty(), text.is_empty()) {
            (true, true) => Value::Null,
            (true, false) => Value::String(text.to_owned()),
            (false, _) => {
                let mut fields = self.fields;
                if !text.is_empty() {
                    fields.insert("#text".to_owned(), Value::String(text.to_owned()));
                }
                Value::Object(fields)
            }
        };
        (self.name, value)
    }

    /// Adds a child element; a second child of the same name turns the field into a list.
    fn add(&mut self, name: String, value: Value) {
        match self.fields.get_mut(&name) {
            None => {
                self.fields.insert(name, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
}

/// Reads one XML document (UTF-8) into a value: `{"<root name>": <root element>}`.
pub(super) fn decode(text: &str) -> Result<Value, XmlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Value> = None;
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            let position = reader.error_position();
            locate(text, position, Problem::Syntax(e))
        })?;
        let step = match event {
            Event::Eof => break,
            Event::Start(_) if open.len() >= MAX_DEPTH => Err(Problem::TooDeep),
            Event::Start(start) | Event::Empty(start) if open.is_empty() && root.is_some() => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                Err(Problem::SecondRoot(name))
            }
            Event::Start(start) => Element::open(&start).map(|element| open.push(element)),
            Event::Empty(start) => Element::open(&start).map(|element| {
                finish(&mut open, &mut root, element);
            }),
            Event::End(_) => {
                if let Some(element) = open.pop() {
                    finish(&mut open, &mut root, element);
                }
                Ok(())
            }
            Event::Text(content) => content
                .xml10_content()
                .map_err(|e| Problem::Syntax(e.into()))
                .and_then(|content| push_text(&mut open, &content)),
            Event::CData(content) => content
                .xml10_content()
                .map_err(|e| Problem::Syntax(e.into()))
                .and_then(|content| push_text(&mut open, &content)),
            Event::GeneralRef(reference) => {
                resolve(&reference).and_then(|resolved| push_text(&mut open, &resolved))
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => Ok(()),
        };
        step.map_err(|problem| locate(text, at, problem))?;
    }
    let end = reader.buffer_position();
    if let Some(element) = open.pop() {
        let missing = IllFormedError::MissingEndTag(element.name);
        return Err(locate(text, end, Problem::Syntax(missing.into())));
    }
    root.ok_or_else(|| locate(text, end, Problem::NoRoot))
}

/// Hands a closed element to its parent, or makes it the root.
fn finish(open: &mut [Element], root: &mut Option<Value>, element: Element) {
    let (name, value) = element.close();
    match open.last_mut() {
        Some(parent) => parent.add(name, value),
        None => *root = Some(Value::Object(Map::from_iter([(name, value)]))),
    }
}

/// Adds text to the open element; outside the root only whitespace may stand.
fn push_text(open: &mut [Element], content: &str) -> Result<(), Problem> {
    match open.last_mut() {
        Some(element) => {
            element.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None => Err(Problem::TextOutside),
    }
}

/// The text of `&name;`: a character reference or one of the five predefined entities.
fn resolve(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, Problem> {
    if let Some(ch) = reference.resolve_char_ref()? {
        return Ok(ch.to_string());
    }
    let name = reference
        .decode()
        .map_err(|e| Problem::Syntax(e.into()))?
        .into_owned();
    resolve_predefined_entity(&name)
        .map(ToOwned::to_owned)
        .ok_or(Problem::UnknownEntity(name))
}

/// The problem at a byte offset of the text, as a line and column (both from 1).
fn locate(text: &str, offset: u64, problem: Problem) -> XmlError {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    XmlError {
        problem,
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn reads(xml: &str, expected: &Value) {
        assert_eq!(&decode(xml).unwrap(), expected, "{xml}");
    }

    #[track_caller]
    fn refuses(xml: &str, message: &str) {
        assert_eq!(decode(xml).unwrap_err().to_string(), message, "{xml}");
    }

    #[test]
    fn a_task_report_becomes_an_object_of_strings() {
        let report = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- written by the preflight CLI -->
<TaskReport config="profiles/SMP.xml" file="book.pdf">
  <ExitCode>0</ExitCode>
  <Errors>0</Errors>
  <Fixes>2</Fixes>
</TaskReport>
"#;
        reads(
            report,
            &json!({"TaskReport": {
                "@config": "profiles/SMP.xml",
                "@file": "book.pdf",
                "ExitCode": "0",
                "Errors": "0",
                "Fixes": "2",
            }}),
        );
    }

    #[test]
    fn repeated_names_become_lists_and_text_beside_fields_is_text() {
        reads(
            "<r><i>1</i><i>2</i><one>x</one><i>3</i></r>",
            &json!({"r": {"i": ["1", "2", "3"], "one": "x"}}),
        );
        reads(
            r#"<r><a n="1">  text  </a><b/><c></c><d n="2"/></r>"#,
            &json!({"r": {"a": {"@n": "1", "#text": "text"}, "b": null, "c": null, "d": {"@n": "2"}}}),
        );
        reads(
            "<r><p>a <b>bold</b> c</p></r>",
            &json!({"r": {"p": {"b": "bold", "#text": "a  c"}}}),
        );
        reads("<empty/>", &json!({"empty": null}));
    }

    #[test]
    fn references_cdata_and_whitespace_are_read() {
        reads(
            "\u{feff}<r a='x &amp; y&#10;z'>&lt;&#x41;&gt; <![CDATA[<raw> & ]]></r>",
            &json!({"r": {"@a": "x & y\nz", "#text": "<A> <raw> &"}}),
        );
        reads(
            "<r a=\"one\ntwo\">\r\nline\r\nnext\r\n</r>",
            &json!({"r": {"@a": "one two", "#text": "line\nnext"}}),
        );
        reads(
            "<x:r xmlns:x='urn:a'><x:i>1</x:i></x:r>",
            &json!({"x:r": {"@xmlns:x": "urn:a", "x:i": "1"}}),
        );
    }

    #[test]
    fn malformed_documents_name_the_place() {
        refuses("", "no root element at line 1, column 1");
        refuses(
            "<a>\n<b></a>",
            "ill-formed document: expected `</b>`, but `</a>` was found at line 2, column 4",
        );
        refuses(
            "<a>\n  <b>",
            "ill-formed document: start tag not closed: `</b>` not found before end of input at line 2, column 6",
        );
        refuses(
            "<a/><b/>",
            "a second root element `<b>`; a document has one at line 1, column 5",
        );
        refuses(
            "hello <a/>",
            "text outside the root element at line 1, column 1",
        );
        refuses(
            "<a x='1' x='2'/>",
            "error while parsing attribute: position 8: duplicated attribute, previous declaration at position 2 at line 1, column 1",
        );
        refuses(
            "<!DOCTYPE a [<!ENTITY e 'boom'>]><a>&e;</a>",
            "unknown entity `&e;` (only `&lt;`, `&gt;`, `&amp;`, `&apos;`, `&quot;` and character references are read) at line 1, column 37",
        );
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        refuses(
            &deep,
            "elements nest more than 128 levels deep at line 1, column 385",
        );
    }
}
