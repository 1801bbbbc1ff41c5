//! The recorder of a node's metrics, as `/metrics` shows them. Durations are histograms
//! with fixed buckets, from half a millisecond to an hour: a sample costs a few comparisons
//! (a summary's sketch cost thousands of instructions, paid for every request and run), and
//! the buckets of the nodes sharing a store add up, which quantiles do not.

use metrics_exporter_prometheus::PrometheusBuilder;

/// The bucket bounds of every duration, in seconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 3600.0,
];

/// The Prometheus recorder's builder, set up as `octoflow serve` installs it.
///
/// # Panics
/// Never: the buckets are not empty.
pub fn prometheus() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(&DURATION_BUCKETS)
        .expect("the buckets are not empty")
}
