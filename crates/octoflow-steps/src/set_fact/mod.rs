//! The `set_fact` kind (being written).
