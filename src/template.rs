//! minijinja environment (DESIGN §3).
