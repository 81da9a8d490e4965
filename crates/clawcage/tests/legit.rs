//! The legitimate work a sandbox exists for: compilers, interpreters, pipes,
//! large output, many files, exit statuses and signals, all under the
//! default profile with every layer on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::time::Duration;

#[test]
fn gcc_compiles_and_runs_a_c_program_inside() {
    let fx = Fixture::new("legit-gcc");
    fx.write("hello.c", "#include <stdio.h>\nint main(int c, char **v) { printf(\"hello %d\\n\", c); return 3; }\n");
    let run = fx.sh("gcc -O1 -o hello hello.c && ./hello a b");
    run.expect_code(3);
    assert_eq!(run.stdout, "hello 3\n", "{}", run.stderr);
    assert!(fx.ws_path("hello").exists(), "the binary is in the host workspace");
}

#[test]
fn python3_runs_with_its_standard_library() {
    let fx = Fixture::new("legit-py");
    let script = "import json, hashlib, sqlite3, subprocess\n\
                  db = sqlite3.connect('t.db'); db.execute('create table t(x)'); db.execute('insert into t values (42)'); db.commit()\n\
                  out = subprocess.run(['echo', 'sub'], capture_output=True, text=True).stdout.strip()\n\
                  print(json.dumps([db.execute('select x from t').fetchone()[0], hashlib.sha256(b'a').hexdigest()[:8], out]))\n";
    let run = fx.run(&["python3", "-c", script]);
    run.expect_code(0);
    assert_eq!(run.stdout, "[42, \"ca978112\", \"sub\"]\n", "{}", run.stderr);
}

#[test]
fn pipes_and_stdin_stream_through() {
    let fx = Fixture::new("legit-pipe");
    let mut cmd = fx.command(&["/bin/sh", "-c", "tr a-z A-Z | sort | uniq -c | sed 's/^ *//'"]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..1000 {
            stdin.write_all(b"b\na\n").unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000 A\n1000 B\n");
}

#[test]
fn fifty_mib_of_stdout_arrive_intact() {
    let fx = Fixture::new("legit-big");
    // Deterministic bytes of every value, compared byte for byte outside.
    let script = "import sys\n\
                  block = bytes(range(256)) * 4096\n\
                  for _ in range(50):\n    sys.stdout.buffer.write(block)\n";
    let mut cmd = fx.command(&["python3", "-c", script]);
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 50 << 20);
    let block: Vec<u8> = (0..4096).flat_map(|_| 0..=255u8).collect();
    let bad = out.stdout.chunks(block.len()).position(|c| c != block.as_slice());
    assert_eq!(bad, None, "stdout was altered in transit (first bad MiB)");
}

#[test]
fn ten_thousand_files_in_the_workspace() {
    let fx = Fixture::new("legit-files");
    for i in 0..10_000 {
        std::fs::write(fx.ws_path(&format!("in-{i:05}")), i.to_string()).unwrap();
    }
    let script = "ls | grep -c '^in-'; cat in-09999; echo; mkdir out; i=0; \
                  python3 -c \"import os\nfor i in range(10000): open(f'out/f{i}', 'w').write(str(i))\"; ls out | wc -l";
    let run = fx.sh(script);
    run.expect_code(0);
    assert_eq!(run.stdout, "10000\n9999\n10000\n", "{}", run.stderr);
    assert_eq!(std::fs::read_dir(fx.ws_path("out")).unwrap().count(), 10_000);
    assert_eq!(std::fs::read_to_string(fx.ws_path("out/f4321")).unwrap(), "4321");
}

#[test]
fn exit_codes_and_signals_come_back_as_the_contract_says() {
    let fx = Fixture::new("legit-exit");
    for (script, want) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
        ("kill -SEGV $$", 139),
        ("kill -INT $$", 130),
    ] {
        let run = fx.sh(script);
        assert_eq!(run.code, want, "{script}: {}", run.stderr);
    }
    let run = fx.run(&["/no/such/program"]);
    assert_eq!(run.code, 127, "{}", run.stderr);
    fx.write("not-exec", "data");
    let run = fx.run(&["./not-exec"]);
    assert_eq!(run.code, 126, "{}", run.stderr);
}

#[test]
fn background_work_and_a_busy_sandbox_finish_normally() {
    let fx = Fixture::new("legit-bg");
    let (run, _) = run_bounded(
        fx.command(&[
            "/bin/sh",
            "-c",
            "for i in 1 2 3 4 5; do (echo $i > f$i) & done; wait; cat f1 f2 f3 f4 f5 | tr -d '\\n'",
        ]),
        false,
        Duration::from_secs(60),
    );
    run.expect_code(0);
    assert_eq!(run.stdout, "12345");
}
