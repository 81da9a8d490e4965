//! clawcage store: SQLite state and the hash-chained audit log. Depends on
//! nothing of ours. See docs/ARCHITECTURE.md.
