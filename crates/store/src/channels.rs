//! State of the chat channels that must survive a restart: a small value
//! per channel and key (Telegram's `getUpdates` offset, the message each
//! pending task's answer replies to), and the events a
//! channel has taken (Telegram update ids, Slack `event_id`s), so that an
//! event seen again — replayed after a restart, or retried by the service —
//! never starts a second task.
//!
//! Taking an event is at most once: [`Store::take_channel_event`] commits
//! the event id before the channel acts on it, so a crash between the two
//! loses that one message rather than running it twice.

use crate::error::Result;
use crate::{time, Store};
use rusqlite::{params, OptionalExtension};

impl Store {
    /// The value stored for `channel` under `key`, if any.
    pub fn channel_value(&self, channel: &str, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM channel_state WHERE channel = ?1 AND key = ?2", params![channel, key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db("read channel state"))
    }

    /// Store `value` for `channel` under `key` (replacing what was there).
    pub fn set_channel_value(&self, channel: &str, key: &str, value: &str) -> Result<()> {
        self.write("write channel state", |tx| {
            tx.execute(
                "INSERT INTO channel_state (channel, key, value, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (channel, key) DO UPDATE SET value = ?3, updated_ms = ?4",
                params![channel, key, value, time::now_ms()],
            )
        })?;
        Ok(())
    }

    /// Remove the value stored for `channel` under `key` and return it (`None`
    /// when there was none).
    pub fn take_channel_value(&self, channel: &str, key: &str) -> Result<Option<String>> {
        self.write("take channel state", |tx| {
            tx.query_row(
                "DELETE FROM channel_state WHERE channel = ?1 AND key = ?2 RETURNING value",
                params![channel, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Take event `id` of `channel`: `true` the first time, `false` for
    /// every later call with the same id (a retry or a replay: drop it).
    pub fn take_channel_event(&self, channel: &str, id: &str) -> Result<bool> {
        let n = self.write("take channel event", |tx| {
            tx.execute(
                "INSERT INTO channel_events (channel, event_id, seen_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (channel, event_id) DO NOTHING",
                params![channel, id, time::now_ms()],
            )
        })?;
        Ok(n == 1)
    }

    /// Forget events taken before `before_ms` (services stop retrying long
    /// before); returns how many were forgotten.
    pub fn forget_channel_events(&self, before_ms: i64) -> Result<u64> {
        let n = self.write("forget channel events", |tx| {
            tx.execute("DELETE FROM channel_events WHERE seen_ms < ?1", [before_ms])
        })?;
        Ok(n as u64)
    }
}
