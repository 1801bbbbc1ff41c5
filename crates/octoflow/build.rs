//! The release binary's code layout: the linker places the functions a server runs to start,
//! answer requests and idle (`layout/hot-functions.txt`, made by `layout/generate.py`)
//! together, so that the kernel maps a few megabytes of code into an idle server instead of
//! most of the binary's 22 (BENCHMARKS.md, "Memory"). Only for release builds for x86-64
//! Linux linked by Rust's default linker there (LLD, since Rust 1.90); any other linker
//! gets no layout, and the binary is the same otherwise.

// Cargo tells a build script everything through its environment.
#![allow(clippy::disallowed_methods)]

use std::env;
use std::process::Command;

fn main() {
    let list = "layout/hot-functions.txt";
    println!("cargo:rerun-if-changed={list}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if env::var("PROFILE").is_ok_and(|p| p == "release") && default_lld() {
        let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/{list}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the binary is linked by LLD as Rust links x86-64 Linux binaries by default: the
/// target, a compiler from 1.90 on, and no linker chosen in the configuration or the flags.
fn default_lld() -> bool {
    let target = env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    let chosen = env::var_os("RUSTC_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|flags| flags.contains("link"));
    target && !chosen && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The compiler's minor version: 95 for `rustc 1.95.0 (…)`.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
