//! The `file` kind (being written).
