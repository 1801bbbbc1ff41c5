//! A flow file of any bytes: loaded and checked as the server and `octoflow validate` do.
//! Any answer is fine — a flow or problems — but never a panic, a hang or a blow-up.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use octoflow_core::flow::FlowLoader;
use octoflow_core::step::Registry;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    registry
});

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = FlowLoader::new(&REGISTRY).load_str(text, "fuzz.yml", Some("fuzz"));
    }
});
