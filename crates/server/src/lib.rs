//! clawcage serve: agent groups, the task queue, the scheduler, the HTTP API
//! and the web UI (DESIGN.md "Shape"). The binary only wires
//! `clawcage serve` to [`config::load`] and [`Server`].

pub mod config;

#[cfg(test)]
mod config_tests;
