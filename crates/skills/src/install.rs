//! Bringing a skill into the state directory and checking it at use.
//!
//! `skill add` stages a copy first ([`stage_dir`] or [`stage_tarball`]):
//! what is parsed, hashed, shown and approved is the staged copy, never the
//! source again, so the source cannot change between approval and install.
//! [`Staged::commit`] then moves it into place under `<skills root>/<name>`.
//! Copies hold only directories (0755) and regular files (0644, or 0755 when
//! the source had an execute bit), so the sandbox's user can read them.
//! At use, [`verify`] rehashes the installed copy against the approved hash.

use crate::error::SkillError;
use crate::hash::{self, Entry, MAX_BYTES, MAX_DEPTH, MAX_FILES};
use crate::manifest::{self, Manifest, MAX_SKILL_FILE, SKILL_FILE};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest `.tar.gz` fetched for `skill add URL`.
pub const MAX_ARCHIVE: u64 = 32 * 1024 * 1024;

/// A skill directory with its parsed manifest and content hash.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The directory.
    pub dir: PathBuf,
    /// Its `SKILL.md`.
    pub manifest: Manifest,
    /// SHA-256 (hex) of the whole directory ([`hash::hash_dir`]).
    pub hash: String,
}

/// Parse and hash the skill at `dir`.
pub fn load(dir: &Path) -> Result<Loaded, SkillError> {
    load_as(dir, &dir.join(SKILL_FILE).display().to_string())
}

/// [`load`], naming its `SKILL.md` `origin` in errors (the source of a staged copy).
fn load_as(dir: &Path, origin: &str) -> Result<Loaded, SkillError> {
    let hash = hash::hash_dir(dir)?;
    let file = dir.join(SKILL_FILE);
    let mut text = String::new();
    hash::open_entry(&file)?
        .take(MAX_SKILL_FILE as u64 + 1)
        .read_to_string(&mut text)
        .map_err(SkillError::io("read", &file))?;
    let manifest = manifest::parse(&text, origin)?;
    Ok(Loaded { dir: dir.to_path_buf(), manifest, hash })
}

/// The installed skill `name` under `root`, checked against `approved`
/// (its hash at approval): a changed skill is refused.
pub fn verify(root: &Path, name: &str, approved: &str) -> Result<Loaded, SkillError> {
    manifest::check_name(name).map_err(|reason| SkillError::Content { path: root.join(name), reason })?;
    let dir = root.join(name);
    let actual = hash::hash_dir(&dir)?;
    if actual != approved {
        return Err(SkillError::Tampered { name: name.into(), approved: approved.into(), actual });
    }
    let loaded = load(&dir)?;
    if loaded.hash != approved {
        // Changed between the two reads.
        return Err(SkillError::Tampered { name: name.into(), approved: approved.into(), actual: loaded.hash });
    }
    if loaded.manifest.name != name {
        return Err(SkillError::Content {
            path: dir,
            reason: format!("SKILL.md names the skill {:?}, installed as {name:?}", loaded.manifest.name),
        });
    }
    Ok(loaded)
}

/// A staged copy, parsed and hashed, not yet installed. Dropping it removes it.
#[derive(Debug)]
pub struct Staged {
    /// What was staged.
    pub loaded: Loaded,
    staging: PathBuf,
    done: bool,
}

impl Staged {
    /// Move the staged copy to `<root>/<name>`, replacing an older install.
    /// Returns the installed directory.
    pub fn commit(mut self, root: &Path) -> Result<PathBuf, SkillError> {
        let dest = root.join(&self.loaded.manifest.name);
        let old = root.join(format!(".old-{}-{}", self.loaded.manifest.name, unique()));
        let had_old = match fs::rename(&dest, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(SkillError::io("move aside", &dest)(e)),
        };
        fs::rename(&self.loaded.dir, &dest).map_err(SkillError::io("install", &dest))?;
        self.done = true;
        let _ = fs::remove_dir_all(&self.staging);
        if had_old {
            fs::remove_dir_all(&old).map_err(SkillError::io("remove old copy", &old))?;
        }
        Ok(dest)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Remove the installed skill `name` under `root`.
pub fn remove(root: &Path, name: &str) -> Result<(), SkillError> {
    manifest::check_name(name).map_err(|reason| SkillError::Content { path: root.join(name), reason })?;
    let dir = root.join(name);
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SkillError::io("remove", &dir)(e)),
    }
}

fn unique() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

impl Staged {
    /// A fresh, empty staging tree under `root` (created, mode 0755, if
    /// missing); removed again unless committed.
    fn new(root: &Path) -> Result<Staged, SkillError> {
        fs::DirBuilder::new().recursive(true).mode(0o755).create(root).map_err(SkillError::io("create", root))?;
        let staging = root.join(format!(".staging-{}", unique()));
        fs::DirBuilder::new().mode(0o755).create(&staging).map_err(SkillError::io("create", &staging))?;
        let tree = staging.join("skill");
        let staged = Staged {
            loaded: Loaded { dir: tree.clone(), manifest: placeholder_manifest(), hash: String::new() },
            staging,
            done: false,
        };
        fs::DirBuilder::new().mode(0o755).create(&tree).map_err(SkillError::io("create", &tree))?;
        Ok(staged)
    }

    /// Parse and hash the staged tree (on error, dropping `self` removes it);
    /// `origin` names its `SKILL.md` in errors.
    fn finish(mut self, origin: &str) -> Result<Staged, SkillError> {
        self.loaded = load_as(&self.loaded.dir, origin)?;
        Ok(self)
    }
}

fn placeholder_manifest() -> Manifest {
    Manifest {
        name: String::new(),
        description: String::new(),
        license: None,
        compatibility: None,
        metadata: Default::default(),
        allowed_tools: None,
        needs: Default::default(),
        body: String::new(),
    }
}

/// Stage a copy of the skill directory `src` under `root`.
pub fn stage_dir(src: &Path, root: &Path) -> Result<Staged, SkillError> {
    let entries = hash::walk(src)?;
    let staged = Staged::new(root)?;
    let tree = staged.loaded.dir.clone();
    for Entry { rel, dir, exec } in &entries {
        let to = tree.join(rel);
        if *dir {
            fs::DirBuilder::new().mode(0o755).create(&to).map_err(SkillError::io("create", &to))?;
        } else {
            let mut from = hash::open_entry(&src.join(rel))?;
            write_file(&to, *exec, &mut from)?;
        }
    }
    staged.finish(&src.join(SKILL_FILE).display().to_string())
}

fn write_file(to: &Path, exec: bool, from: &mut impl Read) -> Result<u64, SkillError> {
    let mode = if exec { 0o755 } else { 0o644 };
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .map_err(SkillError::io("create", to))?;
    let n = std::io::copy(&mut from.take(MAX_BYTES + 1), &mut out).map_err(SkillError::io("copy", to))?;
    if n > MAX_BYTES {
        return Err(SkillError::Content { path: to.into(), reason: format!("more than {MAX_BYTES} bytes") });
    }
    out.flush().map_err(SkillError::io("write", to))?;
    Ok(n)
}

/// Stage the skill in a gzip-compressed tar archive. Only directories and
/// regular files are accepted, under relative paths without `..`; when every
/// entry sits under one top-level directory, that directory is the skill.
pub fn stage_tarball(archive: &[u8], origin: &str, root: &Path) -> Result<Staged, SkillError> {
    let bad = |reason: String| SkillError::Content { path: origin.into(), reason };
    let files = read_tarball(archive, origin)?;
    // Strip a single common top-level directory.
    let top: Option<String> = files.first().and_then(|f| f.rel.split('/').next().map(str::to_string));
    let strip = top.filter(|t| {
        files.iter().all(|f| f.rel == *t && f.dir || f.rel.starts_with(&format!("{t}/")))
            && !files.iter().any(|f| f.rel == *t && !f.dir)
    });
    let staged = Staged::new(root)?;
    let tree = staged.loaded.dir.clone();
    let mut made: Vec<String> = Vec::new();
    for f in &files {
        let rel = match &strip {
            Some(t) if f.rel == *t => continue,
            Some(t) => f.rel[t.len() + 1..].to_string(),
            None => f.rel.clone(),
        };
        // Parents that the archive did not list come first.
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if !made.contains(&parent) {
                let p = tree.join(&parent);
                fs::DirBuilder::new().mode(0o755).create(&p).map_err(SkillError::io("create", &p))?;
                made.push(parent);
            }
        }
        if made.contains(&rel) {
            if f.dir {
                continue;
            }
            return Err(bad(format!("{rel} appears twice in the archive")));
        }
        let to = tree.join(&rel);
        if f.dir {
            fs::DirBuilder::new().mode(0o755).create(&to).map_err(SkillError::io("create", &to))?;
        } else {
            write_file(&to, f.exec, &mut f.data.as_slice()).map_err(|e| match e {
                SkillError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                    bad(format!("{rel} appears twice in the archive"))
                }
                other => other,
            })?;
        }
        made.push(rel);
    }
    staged.finish(&format!("{origin}: {SKILL_FILE}"))
}

struct TarFile {
    rel: String,
    dir: bool,
    exec: bool,
    data: Vec<u8>,
}

fn read_tarball(archive: &[u8], origin: &str) -> Result<Vec<TarFile>, SkillError> {
    let bad = |reason: String| SkillError::Content { path: origin.into(), reason };
    let gz = flate2::read::GzDecoder::new(archive);
    // Bound the decompressed stream: headers plus at most MAX_BYTES of content.
    let limit = MAX_BYTES + (MAX_FILES as u64 + 16) * 1024;
    let mut tar = tar::Archive::new(gz.take(limit));
    let mut out: Vec<TarFile> = Vec::new();
    let mut total = 0u64;
    let entries = tar.entries().map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
        let kind = entry.header().entry_type();
        let path = entry.path().map_err(|e| bad(format!("bad entry name: {e}")))?.into_owned();
        let rel = relative(&path).ok_or_else(|| {
            bad(format!("entry {:?} is absolute or climbs out with `..`: refused", path.display().to_string()))
        })?;
        if rel.is_empty() {
            continue; // "./"
        }
        if rel.split('/').count() > MAX_DEPTH + 1 {
            return Err(bad(format!("{rel}: nested deeper than {MAX_DEPTH} directories")));
        }
        if out.len() >= MAX_FILES {
            return Err(bad(format!("more than {MAX_FILES} entries")));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        if kind.is_dir() {
            out.push(TarFile { rel, dir: true, exec: false, data: Vec::new() });
        } else if kind.is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| bad(format!("{rel}: {e}")))?;
            total += data.len() as u64;
            if total > MAX_BYTES {
                return Err(bad(format!("more than {MAX_BYTES} bytes of content")));
            }
            out.push(TarFile { rel, dir: false, exec: mode & 0o111 != 0, data });
        } else {
            let what =
                if kind.is_symlink() || kind.is_hard_link() { "a link" } else { "not a regular file or directory" };
            return Err(bad(format!("{rel} is {what}: skills may hold only regular files and directories")));
        }
    }
    if out.is_empty() {
        return Err(bad("the archive is empty".into()));
    }
    Ok(out)
}

/// A relative path of normal UTF-8 components (`a/b`), or `None`.
fn relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Fetch a skill archive: `https://` anywhere, `http://` only from the loopback
/// interface (a local mirror; plain HTTP elsewhere could be swapped on the way).
/// At most [`MAX_ARCHIVE`] bytes.
pub async fn fetch(url: &str) -> Result<Vec<u8>, SkillError> {
    let err = |reason: String| SkillError::Fetch { url: url.to_string(), reason };
    let parsed = reqwest::Url::parse(url).map_err(|e| err(e.to_string()))?;
    let loopback = parsed.host_str().is_some_and(is_loopback);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(err("plain http is accepted only from 127.0.0.1/localhost; use https".into())),
        other => return Err(err(format!("unsupported scheme {other:?} (expected https)"))),
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut resp = client.get(parsed).send().await.map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    if !(resp.url().scheme() == "https" || resp.url().host_str().is_some_and(is_loopback)) {
        return Err(err(format!("redirected to {}, which is not https", resp.url())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_ARCHIVE {
            return Err(err(format!("larger than {MAX_ARCHIVE} bytes")));
        }
    }
    Ok(body)
}

fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || ip.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A private, verified copy of an installed skill for one run: what the
/// sandbox sees is this copy, hashed after it was made, so a change to the
/// installed files after the check cannot reach the run. Removed on drop.
#[derive(Debug)]
pub struct Snapshot {
    staged: Option<Staged>,
    base: PathBuf,
}

impl Snapshot {
    /// The copy (its `dir` is what to bind read-only).
    pub fn loaded(&self) -> Option<&Loaded> {
        self.staged.as_ref().map(|s| &s.loaded)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.staged = None;
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Verify the installed skill `name` under `root` against `approved` and
/// copy it into a fresh directory under `tmp` (created here, mode 0755, so
/// that the sandbox's user can read it; refused if the name exists).
pub fn snapshot(root: &Path, name: &str, approved: &str, tmp: &Path) -> Result<Snapshot, SkillError> {
    let installed = verify(root, name, approved)?;
    let base = tmp.join(format!("clawcage-skill-{name}-{}", unique()));
    fs::DirBuilder::new().mode(0o755).create(&base).map_err(SkillError::io("create", &base))?;
    let mut snap = Snapshot { staged: None, base: base.clone() };
    let staged = stage_dir(&installed.dir, &base)?;
    if staged.loaded.hash != approved {
        return Err(SkillError::Tampered {
            name: name.into(),
            approved: approved.into(),
            actual: staged.loaded.hash.clone(),
        });
    }
    snap.staged = Some(staged);
    Ok(snap)
}
