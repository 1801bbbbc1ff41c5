//! A jq program of any text, compiled as a step's is (size limits first): never a panic or a
//! stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use octoflow_core::expr::JqProgram;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let _ = JqProgram::compile(source);
    }
});
