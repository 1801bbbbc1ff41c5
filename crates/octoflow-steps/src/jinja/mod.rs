//! The `jinja` kind (being written).
