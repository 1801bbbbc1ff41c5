//! Engine behaviour through the test harness, with small test kinds defined here — which
//! also shows that a kind can live outside the engine's crates.

mod chain;
mod compose;
mod kinds;
mod load;
mod order;
mod outcomes;
mod scheduler;
mod service;
mod tracker;
mod trigger_load;
mod trigger_node;
mod watch;
