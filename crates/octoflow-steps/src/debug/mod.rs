//! The `debug` kind (being written).
