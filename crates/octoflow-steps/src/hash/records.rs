//! The records a `hash` step works on: reading the values of its fields (each distinct text
//! once), and putting the digests in their place.

use std::collections::HashMap;

use octoflow_core::step::prelude::*;

use super::settings::FieldPath;

/// The input of a step: one record or a list of them.
#[derive(Debug)]
pub(super) struct Records {
    items: Vec<Value>,
    /// The input was one record, not a list.
    single: bool,
}

/// Where one value to hash sits, and which distinct text it is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    record: usize,
    field: usize,
    text: usize,
}

/// The values to hash, found in the records.
#[derive(Debug, Default)]
pub(super) struct Values {
    /// The distinct texts, in the order first found: each is hashed once.
    pub(super) texts: Vec<String>,
    slots: Vec<Slot>,
    /// For each field, how many records lack it.
    pub(super) missing: Vec<usize>,
}

impl Values {
    /// How many values are hashed (repeated ones counted each time).
    pub(super) fn count(&self) -> usize {
        self.slots.len()
    }
}

impl Records {
    /// The records of `input`, the value at `data_key`.
    pub(super) fn from_input(input: Value, data_key: &str) -> Result<Self, StepError> {
        match input {
            Value::Object(_) => Ok(Self {
                items: vec![input],
                single: true,
            }),
            Value::Array(items) => {
                if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
                    return Err(StepError::fatal(format!(
                        "record {i} at `data_key` `{data_key}` is {}, not a record (an object)",
                        value_kind(item)
                    )));
                }
                Ok(Self {
                    items,
                    single: false,
                })
            }
            other => Err(StepError::fatal(format!(
                "`data_key` `{data_key}` holds {}; `hash` needs a record (an object) or a list of records",
                value_kind(&other)
            ))),
        }
    }

    /// How many records there are.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// The record's place, for messages: `record 3` (counted from 0), or `the record`.
    fn place(&self, record: usize) -> String {
        if self.single {
            "the record".to_owned()
        } else {
            format!("record {record}")
        }
    }

    /// The values of `fields` in every record: a string as it is, a number or a boolean as
    /// its JSON text. Nulls and absent fields are skipped; a list or an object, or a text
    /// longer than `max_bytes` (with the algorithm's name), is an error naming the record and
    /// the field, never the value.
    pub(super) fn values(
        &self,
        fields: &[FieldPath],
        max_bytes: Option<(usize, &str)>,
    ) -> Result<Values, StepError> {
        let mut values = Values {
            missing: vec![0; fields.len()],
            ..Values::default()
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        let pointers: Vec<String> = fields.iter().map(FieldPath::pointer).collect();
        for (record, item) in self.items.iter().enumerate() {
            for (field, pointer) in pointers.iter().enumerate() {
                let Some(value) = item.pointer(pointer) else {
                    values.missing[field] += 1;
                    continue;
                };
                let text = match value {
                    Value::Null => continue,
                    Value::String(text) => text.clone(),
                    Value::Number(_) | Value::Bool(_) => value.to_string(),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(StepError::fatal(format!(
                            "cannot hash `{}` of {}: it is {}; only text, numbers and booleans are hashed",
                            fields[field].as_str(),
                            self.place(record),
                            value_kind(value)
                        )));
                    }
                };
                if let Some((most, algorithm)) = max_bytes
                    && text.len() > most
                {
                    return Err(StepError::fatal(format!(
                        "cannot hash `{}` of {}: it is {} bytes long and `{algorithm}` takes at most {most}",
                        fields[field].as_str(),
                        self.place(record),
                        text.len()
                    )));
                }
                let index = if let Some(&index) = seen.get(&text) {
                    index
                } else {
                    let index = values.texts.len();
                    seen.insert(text.clone(), index);
                    values.texts.push(text);
                    index
                };
                values.slots.push(Slot {
                    record,
                    field,
                    text: index,
                });
            }
        }
        Ok(values)
    }

    /// The records with each value replaced by the digest of its text (`digests` follows
    /// `values.texts`): a list, or one record when the input was one.
    pub(super) fn replace(
        mut self,
        fields: &[FieldPath],
        values: &Values,
        digests: &[String],
    ) -> Value {
        let pointers: Vec<String> = fields.iter().map(FieldPath::pointer).collect();
        for slot in &values.slots {
            if let Some(place) = self.items[slot.record].pointer_mut(&pointers[slot.field]) {
                *place = Value::String(digests[slot.text].clone());
            }
        }
        if self.single {
            self.items.pop().unwrap_or_default()
        } else {
            Value::Array(self.items)
        }
    }
}
