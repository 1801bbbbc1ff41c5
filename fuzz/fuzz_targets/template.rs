//! A template of any text, rendered with a scope like a step's: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use octoflow_core::expr::{Scope, render_str};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let scope = Scope::builder()
            .name("params", json!({"n": 3, "s": "text", "list": [1, 2, 3]}))
            .name("data", json!({"a": {"b": [1, {"c": null}]}}))
            .build();
        let _ = render_str(source, &scope);
    }
});
