//! One audit record, its line in `audit.jsonl`, and the hash that chains it.
//!
//! # The line
//! Each record is one line, in exactly this form (no spaces, this member
//! order, a final `\n`):
//! ```text
//! {"seq":7,"ts":"2025-06-01T12:34:56.789012Z","task":"3f9a2c1b4d5e","kind":"exec","data":{...},"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//! - `seq`: 1 for the first record, then +1 per record.
//! - `ts`: UTC time of the append, RFC 3339 with 6 fractional digits and `Z`.
//! - `task`: the task id, or `null`.
//! - `kind`: `[a-z0-9_]+`, 1 to 64 characters.
//! - `data`: a JSON object in canonical form (below).
//! - `prev`: the `hash` of the record before; 64 `0`s for seq 1.
//! - `hash`: see below. Hex digits are lowercase.
//!
//! # Canonical JSON
//! No whitespace outside strings. Object members sorted by the UTF-8 bytes
//! of their keys (recursively; the record's own top-level members keep the
//! fixed order above). Numbers are integers only (`-?[0-9]+`, no fraction or
//! exponent, within i64/u64): a producer that has a fractional value writes
//! it as a string. Strings are UTF-8 with `"` → `\"`, `\` → `\\`, U+0008 →
//! `\b`, U+000C → `\f`, U+000A → `\n`, U+000D → `\r`, U+0009 → `\t`, any
//! other character below U+0020 → `\u00xx` (lowercase hex), and every other
//! character as itself (no `\u` escapes, no escaped `/`). This is what
//! serde_json writes for such values, so `serde_json::to_string` of the data
//! with keys sorted reproduces it.
//!
//! # The hash
//! `hash = SHA-256( prev ‖ body )` in lowercase hex, where `prev` is the 64
//! ASCII hex digits of the previous hash and `body` is the line without its
//! `,"hash":"…"` member and without the newline, i.e.
//! `{"seq":…,"ts":…,"task":…,"kind":…,"data":…,"prev":"…"}`. A verifier may
//! rebuild `body` from the parsed fields or cut it out of the line: a line
//! that is not byte-for-byte canonical is itself invalid, so both agree.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// `prev` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// UTC time of the append (RFC 3339, microseconds).
    pub ts: String,
    /// The task the record belongs to, if any.
    pub task: Option<String>,
    /// What kind of record (`exec`, `network`, `recovered`, ...).
    pub kind: String,
    /// The record's details (a JSON object).
    pub data: Value,
    /// Hash of the record before (hex); [`GENESIS`] for the first.
    pub prev: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// Why a value cannot be put in a record, or a line is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl Record {
    /// Build the record that follows `prev` (seq, hash) with a fresh hash.
    pub(crate) fn new(
        seq: u64,
        ts: String,
        task: Option<&str>,
        kind: &str,
        data: Value,
        prev: &str,
    ) -> Result<Record, FormatError> {
        check_kind(kind)?;
        if !data.is_object() {
            return Err(FormatError(format!("data of a {kind:?} record must be a JSON object")));
        }
        let mut rec = Record {
            seq,
            ts,
            task: task.map(str::to_string),
            kind: kind.to_string(),
            data,
            prev: prev.to_string(),
            hash: String::new(),
        };
        rec.hash = rec.compute_hash()?;
        Ok(rec)
    }

    /// The body the hash covers: the canonical line without `hash`.
    pub fn body(&self) -> Result<String, FormatError> {
        let mut out = String::with_capacity(256);
        write!(out, "{{\"seq\":{},\"ts\":", self.seq).map_err(fmt_err)?;
        write_str(&mut out, &self.ts);
        out.push_str(",\"task\":");
        match &self.task {
            Some(t) => write_str(&mut out, t),
            None => out.push_str("null"),
        }
        out.push_str(",\"kind\":");
        write_str(&mut out, &self.kind);
        out.push_str(",\"data\":");
        write_canonical(&mut out, &self.data)?;
        out.push_str(",\"prev\":");
        write_str(&mut out, &self.prev);
        out.push('}');
        Ok(out)
    }

    /// SHA-256 over `prev ‖ body` (see the module docs), as hex.
    pub fn compute_hash(&self) -> Result<String, FormatError> {
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(self.body()?.as_bytes());
        Ok(hex::encode(h.finalize()))
    }

    /// The record's line in `audit.jsonl`, with its newline.
    pub fn to_line(&self) -> Result<String, FormatError> {
        let mut body = self.body()?;
        body.pop(); // the closing brace
        body.push_str(",\"hash\":");
        write_str(&mut body, &self.hash);
        body.push_str("}\n");
        Ok(body)
    }

    /// Parse one line (without its newline) strictly: the seven members with
    /// the right types, and the line byte-for-byte canonical. The hash is
    /// *not* checked here (see [`Record::compute_hash`]).
    pub fn parse_line(line: &[u8]) -> Result<Record, FormatError> {
        let text = std::str::from_utf8(line).map_err(|_| FormatError("not UTF-8".into()))?;
        let v: Value = serde_json::from_str(text).map_err(|e| FormatError(format!("not JSON: {e}")))?;
        let Value::Object(mut m) = v else { return Err(FormatError("not a JSON object".into())) };
        let mut take = |k: &str| m.remove(k).ok_or_else(|| FormatError(format!("member {k:?} missing")));
        let seq = take("seq")?.as_u64().ok_or_else(|| FormatError("seq is not a positive integer".into()))?;
        let ts = as_string(take("ts")?, "ts")?;
        let task = match take("task")? {
            Value::Null => None,
            v => Some(as_string(v, "task")?),
        };
        let kind = as_string(take("kind")?, "kind")?;
        let data = take("data")?;
        let prev = as_string(take("prev")?, "prev")?;
        let hash = as_string(take("hash")?, "hash")?;
        if let Some(extra) = m.keys().next() {
            return Err(FormatError(format!("unexpected member {extra:?}")));
        }
        check_kind(&kind)?;
        if seq == 0 {
            return Err(FormatError("seq 0 (records are numbered from 1)".into()));
        }
        if !data.is_object() {
            return Err(FormatError("data is not a JSON object".into()));
        }
        for (name, h) in [("prev", &prev), ("hash", &hash)] {
            if !is_hex64(h) {
                return Err(FormatError(format!("{name} is not 64 lowercase hex digits")));
            }
        }
        let rec = Record { seq, ts, task, kind, data, prev, hash };
        let canonical = rec.to_line()?;
        if canonical.as_bytes()[..canonical.len() - 1] != *line {
            return Err(FormatError(
                "not in canonical form (reformatted, reordered members, or a duplicate key)".into(),
            ));
        }
        Ok(rec)
    }
}

fn fmt_err(e: std::fmt::Error) -> FormatError {
    FormatError(e.to_string())
}

fn as_string(v: Value, name: &str) -> Result<String, FormatError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(FormatError(format!("{name} is not a string"))),
    }
}

/// Whether `s` is 64 lowercase hex digits.
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_kind(kind: &str) -> Result<(), FormatError> {
    let ok =
        !kind.is_empty() && kind.len() <= 64 && kind.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(FormatError(format!("kind {kind:?}: expected 1 to 64 of [a-z0-9_]")))
    }
}

/// Append the canonical form of `v` (see the module docs).
pub(crate) fn write_canonical(out: &mut String, v: &Value) -> Result<(), FormatError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write!(out, "{u}").map_err(fmt_err)?;
            } else if let Some(i) = n.as_i64() {
                write!(out, "{i}").map_err(fmt_err)?;
            } else {
                return Err(FormatError(format!("number {n} is not an integer (write fractions as strings)")));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_canonical(out, &m[k])?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Append `s` as a canonical JSON string.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn rec(data: Value) -> Record {
        Record::new(1, "2025-01-01T00:00:00.000000Z".into(), Some("t1"), "exec", data, GENESIS).unwrap()
    }

    #[test]
    fn line_has_the_documented_shape_and_hash() {
        let r = rec(json!({"b": 1, "a": ["x", -2, true, null], "c": {"z": "", "y": "é\u{1}\"\\"}}));
        let line = r.to_line().unwrap();
        let body = "{\"seq\":1,\"ts\":\"2025-01-01T00:00:00.000000Z\",\"task\":\"t1\",\"kind\":\"exec\",\
                    \"data\":{\"a\":[\"x\",-2,true,null],\"b\":1,\"c\":{\"y\":\"é\\u0001\\\"\\\\\",\"z\":\"\"}},\
                    \"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";
        assert_eq!(r.body().unwrap(), body);
        let want = hex::encode(Sha256::digest(format!("{GENESIS}{body}").as_bytes()));
        assert_eq!(r.hash, want);
        assert_eq!(line, format!("{},\"hash\":\"{want}\"}}\n", &body[..body.len() - 1]));
    }

    #[test]
    fn canonical_strings_match_serde_json_for_sorted_data() {
        // serde_json (BTreeMap objects) writes the same bytes, so third-party
        // verifiers can use an ordinary JSON library with sorted keys.
        let data = json!({"k": "tab\tnl\nbs\u{8}ff\u{c}cr\r\u{1f}\u{7f}\u{2028}/ü😀", "n": [u64::MAX, i64::MIN]});
        let mut ours = String::new();
        write_canonical(&mut ours, &data).unwrap();
        let theirs = serde_json::to_string(&data).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn lines_round_trip_through_the_strict_parser() {
        let r = rec(json!({"argv": ["sh", "-c", "echo \"hi\""], "exit": 0}));
        let line = r.to_line().unwrap();
        let parsed = Record::parse_line(&line.as_bytes()[..line.len() - 1]).unwrap();
        assert_eq!(parsed, r);
        assert_eq!(parsed.compute_hash().unwrap(), r.hash);
    }

    #[test]
    fn non_canonical_lines_are_rejected() {
        let r = rec(json!({"a": 1, "b": 2}));
        let line = r.to_line().unwrap();
        let line = line.trim_end();
        let cases = [
            line.replacen("{\"seq\"", "{ \"seq\"", 1),                  // whitespace
            line.replacen("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}", 1), // data key order
            line.replacen("\"kind\":\"exec\"", "\"kind\":\"exec\",\"kind\":\"exec\"", 1), // duplicate key
            line.replacen("\"a\":1", "\"a\":1.0", 1),                   // a float
            line.replacen("\"hash\":", "\"extra\":1,\"hash\":", 1),     // an extra member
            line.replacen("\"task\":\"t1\",", "", 1),                   // a missing member
            line.replacen("\"kind\":\"exec\"", "\"kind\":\"Exec\"", 1), // a bad kind
        ];
        for c in cases {
            assert!(Record::parse_line(c.as_bytes()).is_err(), "accepted: {c}");
        }
    }

    #[test]
    fn floats_and_non_objects_cannot_be_recorded() {
        let ts = || "2025-01-01T00:00:00.000000Z".to_string();
        assert!(Record::new(1, ts(), None, "x", json!({"cost": 0.5}), GENESIS).is_err());
        assert!(Record::new(1, ts(), None, "x", json!(["a"]), GENESIS).is_err());
        assert!(Record::new(1, ts(), None, "Bad-Kind", json!({}), GENESIS).is_err());
        assert!(Record::new(1, ts(), None, "ok_kind_2", json!({"n": -1}), GENESIS).is_ok());
    }
}
