//! # moonpool-transport-derive
//!
//! Procedural macros for `moonpool-transport`: `#[service]` on a trait generates a server (one
//! endpoint per method, with deterministic tokens derived from the interface id and method index)
//! and a typed client; `&mut self` methods generate virtual-actor references and dispatch.
//!
//! **Status:** a documented shell; the macros are built in a later issue. Misuse will be a compile
//! error pointing at the offending item, tested with trybuild.
