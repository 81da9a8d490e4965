//! clawcage egress proxy (part of the enforcement core).
//!
//! The sandbox's network namespace has loopback only; the proxy on the host
//! is the only way out. See docs/ARCHITECTURE.md.
#![deny(clippy::undocumented_unsafe_blocks)]
