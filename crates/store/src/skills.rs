//! Installed skills: name, content hash and the needs an operator approved.
//! The files live under the state directory; the row says what they must
//! hash to.

use crate::error::Result;
use crate::{time, Store};
use rusqlite::{params, OptionalExtension, Row};

/// One approved skill.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillRecord {
    /// Skill name (the key).
    pub name: String,
    /// Its description, as approved.
    pub description: String,
    /// SHA-256 (hex) of the approved directory.
    pub hash: String,
    /// The approved needs, as JSON.
    pub needs: serde_json::Value,
    /// Where it came from (a directory or a URL), for people.
    pub source: String,
    /// The installed directory.
    pub dir: String,
    /// Who approved it (a user name, or `--yes`).
    pub approved_by: Option<String>,
    /// When (Unix ms); set by [`Store::put_skill`].
    pub approved_ms: i64,
}

fn row(r: &Row<'_>) -> rusqlite::Result<SkillRecord> {
    let needs: String = r.get("needs")?;
    Ok(SkillRecord {
        name: r.get("name")?,
        description: r.get("description")?,
        hash: r.get("hash")?,
        needs: serde_json::from_str(&needs).unwrap_or(serde_json::Value::Null),
        source: r.get("source")?,
        dir: r.get("dir")?,
        approved_by: r.get("approved_by")?,
        approved_ms: r.get("approved_ms")?,
    })
}

impl Store {
    /// Record (or replace) the approval of a skill; returns it as stored.
    pub fn put_skill(&self, skill: &SkillRecord) -> Result<SkillRecord> {
        let now = time::now_ms();
        let needs = skill.needs.to_string();
        self.write("put skill", |tx| {
            tx.execute(
                "INSERT INTO skills (name, description, hash, needs, source, dir, approved_by, approved_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET description = ?2, hash = ?3, needs = ?4, source = ?5,
                     dir = ?6, approved_by = ?7, approved_ms = ?8",
                params![
                    skill.name,
                    skill.description,
                    skill.hash,
                    needs,
                    skill.source,
                    skill.dir,
                    skill.approved_by,
                    now
                ],
            )
        })?;
        Ok(SkillRecord { approved_ms: now, ..skill.clone() })
    }

    /// The approved skill `name`, if any.
    pub fn skill(&self, name: &str) -> Result<Option<SkillRecord>> {
        self.conn()
            .query_row("SELECT * FROM skills WHERE name = ?1", params![name], row)
            .optional()
            .map_err(self.db("get skill"))
    }

    /// Every approved skill, by name.
    pub fn skills(&self) -> Result<Vec<SkillRecord>> {
        let mut st = self.conn().prepare("SELECT * FROM skills ORDER BY name").map_err(self.db("list skills"))?;
        let rows = st.query_map([], row).map_err(self.db("list skills"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.db("list skills"))
    }

    /// Forget the skill `name`; `false` when there was none.
    pub fn remove_skill(&self, name: &str) -> Result<bool> {
        let n = self.write("remove skill", |tx| tx.execute("DELETE FROM skills WHERE name = ?1", params![name]))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn skills_are_recorded_replaced_listed_and_removed() {
        let dir = std::env::temp_dir().join(format!("clawcage-store-skills-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), Store::latest_schema_version());
        let rec = SkillRecord {
            name: "demo".into(),
            description: "d".into(),
            hash: "a".repeat(64),
            needs: serde_json::json!({"network": ["api.example.com"]}),
            source: "/src/demo".into(),
            dir: "/state/skills/demo".into(),
            approved_by: Some("root".into()),
            approved_ms: 0,
        };
        store.put_skill(&rec).unwrap();
        let got = store.skill("demo").unwrap().unwrap();
        assert_eq!(got.needs, rec.needs);
        assert!(got.approved_ms > 0);
        store.put_skill(&SkillRecord { hash: "b".repeat(64), ..rec.clone() }).unwrap();
        assert_eq!(store.skills().unwrap().len(), 1);
        assert_eq!(store.skill("demo").unwrap().unwrap().hash, "b".repeat(64));
        assert!(store.put_skill(&SkillRecord { hash: "short".into(), ..rec }).is_err(), "hash length is checked");
        assert!(store.remove_skill("demo").unwrap());
        assert!(!store.remove_skill("demo").unwrap());
        assert!(store.skill("demo").unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
