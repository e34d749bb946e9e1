//! Markdown → [`Tutorial`]. Parsing never executes anything (DESIGN §2).

mod model;
pub use model::*;
