//! clawcage agent runtime: the model loop on the host, every tool call in the
//! task's sandbox. See docs/ARCHITECTURE.md.
