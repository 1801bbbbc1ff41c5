//! Benchmarks of the octoflow engine; the benches themselves are in `benches/`.
