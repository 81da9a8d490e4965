//! The audit head in the store: the last record (seq, hash) of each log,
//! so that a log that lost records at its end is detected.

use crate::error::{Result, StoreError};
use crate::{time, to_i64, Store};
use rusqlite::{params, OptionalExtension};

/// The head of one audit log as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The log's file name (`audit.jsonl`).
    pub log: String,
    /// Seq of its last record.
    pub seq: u64,
    /// Hash of its last record.
    pub hash: String,
    /// HMAC-SHA256 of (log, seq, hash) when a signing key was configured.
    pub mac: Option<String>,
    /// Id of that key.
    pub key_id: Option<String>,
    /// When the head last moved (Unix ms).
    pub updated_ms: i64,
}

impl Store {
    /// The head of the log named `log`, if it has one.
    pub fn audit_head(&self, log: &str) -> Result<Option<AuditHead>> {
        self.conn()
            .query_row("SELECT seq, hash, mac, key_id, updated_ms FROM audit_head WHERE log = ?1", [log], |r| {
                Ok(AuditHead {
                    log: log.to_string(),
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                    mac: r.get(2)?,
                    key_id: r.get(3)?,
                    updated_ms: r.get(4)?,
                })
            })
            .optional()
            .map_err(self.db("read audit head"))
    }

    /// Move the head of `head.log` forward to `head.seq`. The head only ever
    /// moves forward: a `seq` not above the stored one is refused, so no
    /// writer can hide the end of a log by moving the head back.
    pub fn advance_audit_head(&self, log: &str, seq: u64, hash: &str, mac: Option<(&str, &str)>) -> Result<()> {
        let seq_i = to_i64("seq", seq)?;
        let (mac, key_id) = (mac.map(|m| m.0), mac.map(|m| m.1));
        let n = self.write("advance audit head", |tx| {
            tx.execute(
                "INSERT INTO audit_head (log, seq, hash, mac, key_id, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (log) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, \
                 key_id = excluded.key_id, updated_ms = excluded.updated_ms WHERE excluded.seq > audit_head.seq",
                params![log, seq_i, hash, mac, key_id, time::now_ms()],
            )
        })?;
        if n == 0 {
            return Err(StoreError::Invalid {
                what: "audit head",
                detail: format!("{log}: seq {seq} is not past the stored head"),
            });
        }
        Ok(())
    }
}
