//! The step-kind extension point: implement [`StepKind`], add one line to a [`Registry`].

mod context;
mod error;
mod kind;
mod log;
mod registry;

pub use context::{Control, RunInfo, StepCx, StepServices, value_kind};
pub use error::StepError;
pub use kind::{CheckCx, StepKind};
pub use log::StepLog;
pub(crate) use registry::clean_serde_message;
pub use registry::{PreparedStep, Registry};

/// What a kind author needs in scope.
pub mod prelude {
    pub use super::{CheckCx, StepCx, StepError, StepKind, value_kind};
    pub use crate::expr::Tpl;
    pub use crate::flow::{Dur, Problem};
    pub use crate::store::LogStream;
    pub use serde::Deserialize;
    pub use serde_json::{Value, json};
}
