//! The `exec` kind (being written).
