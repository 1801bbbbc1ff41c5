//! The `exit` kind (being written).
