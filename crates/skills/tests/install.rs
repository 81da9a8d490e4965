#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Staging, hashing, installing and verifying skills on a real file system,
//! and fetching an archive from a real HTTP server on 127.0.0.1.

use clawcage_skills::hash::hash_dir;
use clawcage_skills::install::{self, stage_dir, stage_tarball, verify};
use clawcage_skills::SkillError;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn tmp(tag: &str) -> PathBuf {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("clawcage-skills-{tag}-{}-{t}", std::process::id()));
    fs::create_dir_all(&d).unwrap();
    d
}

const SKILL_MD: &str = "---\nname: demo\ndescription: A demo skill.\nclawcage:\n  read: [data]\n---\n# Demo\n";

fn make_skill(root: &Path) -> PathBuf {
    let dir = root.join("src-demo");
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(dir.join("SKILL.md"), SKILL_MD).unwrap();
    fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(dir.join("scripts/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    dir
}

#[test]
fn the_hash_covers_paths_contents_modes_and_empty_directories() {
    let root = tmp("hash");
    let dir = make_skill(&root);
    let h0 = hash_dir(&dir).unwrap();
    assert_eq!(h0.len(), 64);
    assert_eq!(hash_dir(&dir).unwrap(), h0, "stable");

    fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho HI\n").unwrap();
    let h1 = hash_dir(&dir).unwrap();
    assert_ne!(h1, h0, "content");
    fs::set_permissions(dir.join("scripts/run.sh"), fs::Permissions::from_mode(0o600)).unwrap();
    let h2 = hash_dir(&dir).unwrap();
    assert_ne!(h2, h1, "execute bit");
    fs::set_permissions(dir.join("scripts/run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(hash_dir(&dir).unwrap(), h2, "only the execute bit counts");
    fs::rename(dir.join("scripts/run.sh"), dir.join("scripts/run2.sh")).unwrap();
    assert_ne!(hash_dir(&dir).unwrap(), h2, "name");
    fs::create_dir(dir.join("empty/more")).unwrap();
    let h3 = hash_dir(&dir).unwrap();
    fs::remove_dir(dir.join("empty/more")).unwrap();
    assert_ne!(hash_dir(&dir).unwrap(), h3, "directories");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn symlinks_and_special_files_are_refused() {
    let root = tmp("links");
    let dir = make_skill(&root);
    std::os::unix::fs::symlink("/etc/shadow", dir.join("scripts/secret")).unwrap();
    let e = hash_dir(&dir).unwrap_err();
    assert!(matches!(e, SkillError::Content { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = stage_dir(&dir, &root.join("installed")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    fs::remove_file(dir.join("scripts/secret")).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(hash_dir(&dir).unwrap_err().to_string().contains("not a regular file"));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn staged_copies_are_installed_and_verified_and_tampering_is_caught() {
    let root = tmp("install");
    let src = make_skill(&root);
    let skills = root.join("skills");
    let staged = stage_dir(&src, &skills).unwrap();
    assert_eq!(staged.loaded.hash, hash_dir(&src).unwrap(), "a copy hashes like its source");
    assert_eq!(staged.loaded.manifest.name, "demo");
    let hash = staged.loaded.hash.clone();
    let dest = staged.commit(&skills).unwrap();
    assert_eq!(dest, skills.join("demo"));
    // Only the install remains: no staging directories left behind.
    let names: Vec<String> =
        fs::read_dir(&skills).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, vec!["demo"]);
    // Readable by anyone (the sandbox's user), executable bit kept.
    let mode = fs::metadata(dest.join("scripts/run.sh")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert_eq!(fs::metadata(dest.join("SKILL.md")).unwrap().permissions().mode() & 0o777, 0o644);

    let ok = verify(&skills, "demo", &hash).unwrap();
    assert_eq!(ok.manifest.body, "# Demo\n");

    // Tampering with the installed copy.
    fs::write(dest.join("scripts/run.sh"), "#!/bin/sh\ncat /etc/shadow\n").unwrap();
    let e = verify(&skills, "demo", &hash).unwrap_err();
    assert!(matches!(e, SkillError::Tampered { .. }), "{e}");
    assert!(e.to_string().contains("changed since it was approved"), "{e}");

    // A bad skill leaves nothing behind.
    fs::write(src.join("SKILL.md"), "no front matter").unwrap();
    assert!(stage_dir(&src, &skills).is_err());
    let names: Vec<String> =
        fs::read_dir(&skills).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, vec!["demo"]);
    install::remove(&skills, "demo").unwrap();
    assert!(!skills.join("demo").exists());
    assert!(install::remove(&skills, "../etc").is_err(), "names are checked");
    fs::remove_dir_all(&root).unwrap();
}

/// One archive entry: path, kind, data (or link target).
type TarEntry<'a> = (&'a str, char, &'a str);

/// A .tar.gz of `entries` (path, kind, data): kind 'f' file, 'x' executable, 'd' dir, 'l' symlink, 'h' hard link.
fn tarball(entries: &[TarEntry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        // Raw name bytes: the builder's own checks would refuse `..`.
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        let (ty, mode, body): (tar::EntryType, u32, &[u8]) = match kind {
            'f' => (tar::EntryType::Regular, 0o644, data.as_bytes()),
            'x' => (tar::EntryType::Regular, 0o755, data.as_bytes()),
            'd' => (tar::EntryType::Directory, 0o755, b""),
            'l' => (tar::EntryType::Symlink, 0o777, b""),
            _ => (tar::EntryType::Link, 0o644, b""),
        };
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(body.len() as u64);
        if matches!(kind, 'l' | 'h') {
            h.set_link_name(data).unwrap();
        }
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn archives_install_like_directories_and_hostile_entries_are_refused() {
    let root = tmp("tar");
    let src = make_skill(&root);
    let skills = root.join("skills");
    let good = tarball(&[
        ("demo-1.0/", 'd', ""),
        ("demo-1.0/SKILL.md", 'f', SKILL_MD),
        ("demo-1.0/scripts/run.sh", 'x', "#!/bin/sh\necho hi\n"),
        ("demo-1.0/empty/", 'd', ""),
    ]);
    let staged = stage_tarball(&good, "demo.tar.gz", &skills).unwrap();
    assert_eq!(staged.loaded.hash, hash_dir(&src).unwrap(), "the top directory is stripped; same content, same hash");
    drop(staged);
    assert_eq!(fs::read_dir(&skills).unwrap().count(), 0, "dropping a staged copy removes it");

    let cases: &[(&[TarEntry<'_>], &str)] = &[
        (&[("SKILL.md", 'f', SKILL_MD), ("../evil", 'f', "x")], "climbs out"),
        (&[("SKILL.md", 'f', SKILL_MD), ("/etc/evil", 'f', "x")], "absolute"),
        (&[("SKILL.md", 'f', SKILL_MD), ("link", 'l', "/etc/shadow")], "a link"),
        (&[("SKILL.md", 'f', SKILL_MD), ("hard", 'h', "/etc/shadow")], "a link"),
        (&[("SKILL.md", 'f', SKILL_MD), ("SKILL.md", 'f', SKILL_MD)], "twice"),
    ];
    for (entries, want) in cases {
        let e = stage_tarball(&tarball(entries), "bad.tar.gz", &skills).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
        assert!(!root.join("evil").exists() && !Path::new("/etc/evil").exists());
    }
    let e = stage_tarball(b"not gzip at all", "junk.tar.gz", &skills).unwrap_err().to_string();
    assert!(e.contains("not a tar.gz archive"), "{e}");
    assert_eq!(fs::read_dir(&skills).unwrap().count(), 0, "nothing left behind");
    fs::remove_dir_all(&root).unwrap();
}

/// One HTTP/1.1 response per connection, from a thread: the real wire format.
fn serve_once(body: Vec<u8>, status: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let status = status.to_string();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = [0u8; 4096];
        let _ = conn.read(&mut req).unwrap();
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body).unwrap();
    });
    format!("http://{addr}/demo.tar.gz")
}

#[tokio::test(flavor = "current_thread")]
async fn archives_are_fetched_over_http_from_loopback_only() {
    let body = tarball(&[("SKILL.md", 'f', SKILL_MD)]);
    let url = serve_once(body.clone(), "200 OK");
    assert_eq!(install::fetch(&url).await.unwrap(), body);

    let url = serve_once(Vec::new(), "404 Not Found");
    let e = install::fetch(&url).await.unwrap_err().to_string();
    assert!(e.contains("404"), "{e}");

    let e = install::fetch("http://example.com/x.tar.gz").await.unwrap_err().to_string();
    assert!(e.contains("plain http is accepted only from 127.0.0.1"), "{e}");
    let e = install::fetch("file:///etc/passwd").await.unwrap_err().to_string();
    assert!(e.contains("unsupported scheme"), "{e}");
}
