//! The `sleep` kind (being written).
