//! The process lifecycle: the shutdown signals ([`signals`]), the one deadline every
//! shutdown step is capped by ([`deadline`]), and the shutdown sequence itself
//! ([`shutdown`]: pause, drain, commit, close).

pub mod deadline;
pub mod shutdown;
pub mod signals;

pub use deadline::Deadline;
pub use shutdown::Exit;
pub use signals::Signals;
