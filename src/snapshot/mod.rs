//! See DESIGN §3.
