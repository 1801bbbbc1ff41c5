//! The `jq` kind (being written).
