//! The JSON Schema of flow files (`octoflow schema flow`), made from the loader's own types:
//! the flow's fields ([`FlowFile`]), a step's common fields ([`StepFields`]) and each
//! registered kind's settings type. An editor with a YAML language server completes and
//! checks flow files with it; the loader stays the judge (it checks templates, names and
//! order, which a schema cannot).

use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::spec::{FlowFile, StepFields};
use crate::step::Registry;

/// The fields a flow file may have at its top level.
pub fn flow_fields() -> &'static [String] {
    static FIELDS: LazyLock<Vec<String>> = LazyLock::new(property_names::<FlowFile>);
    &FIELDS
}

/// The fields every step may have besides its kind block.
pub fn step_fields() -> &'static [String] {
    static FIELDS: LazyLock<Vec<String>> = LazyLock::new(property_names::<StepFields>);
    &FIELDS
}

/// The flow-file schema (JSON Schema draft 2020-12) for the kinds in `registry`.
pub fn flow_schema(registry: &Registry) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let step = step_schema(&mut generator, registry);
    let mut root = generator.into_root_schema_for::<FlowFile>().to_value();
    without_null(&mut root);
    if let Some(definitions) = root.get_mut("$defs").and_then(Value::as_object_mut) {
        definitions.insert("Step".to_owned(), step);
    }
    root
}

/// A step: the common fields and one block per kind, with `type` naming a kind or one kind
/// block present.
fn step_schema(generator: &mut SchemaGenerator, registry: &Registry) -> Value {
    let mut step = StepFields::json_schema(generator).to_value();
    without_null(&mut step);
    let kinds = registry.settings_schemas(generator);
    let names: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
    if let Some(properties) = step.get_mut("properties").and_then(Value::as_object_mut) {
        if let Some(kind) = properties.get_mut("type").and_then(Value::as_object_mut) {
            kind.remove("type");
            kind.insert("enum".to_owned(), json!(names));
        }
        // A block left empty (`debug:` alone) is read as no settings.
        for (name, settings) in kinds {
            let block = json!({"anyOf": [settings.to_value(), {"type": "null"}]});
            properties.insert(name.to_owned(), block);
        }
    }
    let one_kind: Vec<Value> = std::iter::once("type")
        .chain(names)
        .map(|field| json!({"required": [field]}))
        .collect();
    if let Some(object) = step.as_object_mut() {
        object.insert("anyOf".to_owned(), Value::Array(one_kind));
    }
    step
}

/// The checker refuses `null` for an optional flow or step field (it reads the field's own
/// type), so the schema does not offer it: `Option`'s `null` is taken out of each property.
fn without_null(object: &mut Value) {
    let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for property in properties.values_mut() {
        let Some(property) = property.as_object_mut() else {
            continue;
        };
        if let Some(Value::Array(types)) = property.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                property.insert("type".to_owned(), only);
            }
        }
        let Some(Value::Array(choices)) = property.get_mut("anyOf") else {
            continue;
        };
        choices.retain(|c| c != &json!({"type": "null"}));
        if let [only] = choices.as_slice()
            && let Some(only) = only.as_object().cloned()
        {
            property.remove("anyOf");
            property.extend(only);
        }
    }
}

/// The property names of a type's object schema, in declaration order.
fn property_names<T: JsonSchema>() -> Vec<String> {
    let schema = SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(Map::keys)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}
