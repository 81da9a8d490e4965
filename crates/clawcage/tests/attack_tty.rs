//! Terminal attacks under a real pseudo-terminal (the test holds its master):
//! keystroke injection with TIOCSTI and TIOCLINUX, with and without `--tty`,
//! and the host terminal never handed in. This machine has
//! `dev.tty.legacy_tiocsti = 1`, so only the sandbox stands in the way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn probe_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c_cached("probe", include_str!("c/probe.c")))
}

const INJECT_PY: &str = "import fcntl, termios\n\
    try:\n    fcntl.ioctl(0, termios.TIOCSTI, b'X'); print('py_tiocsti=ok')\n\
    except OSError as e:\n    print('py_tiocsti=errno', e.errno)\n";

#[test]
fn keystroke_injection_fails_under_tty() {
    let fx = Fixture::new("tty-inject").run_arg("--tty");
    std::fs::copy(probe_bin(), fx.ws_path("probe")).unwrap();
    fx.write("inject.py", INJECT_PY);
    // The probe's ioctls, python's, and then a legitimate read of what the
    // test types: proof the terminal works and nothing injected came first.
    let script = "test -t 0 && echo isatty=yes; ./probe tiocsti tiocsti_highbits tioclinux; python3 inject.py; \
                  echo READY; read line; echo got=$line";
    let mut pty = Pty::spawn(fx.command(&["/bin/sh", "-c", script]), 24, 80);
    pty.wait_for("READY");
    pty.type_in("typed-by-user\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    let v = kv(&out);
    assert_eq!(v["isatty"], "yes", "{out}");
    for k in ["tiocsti", "tiocsti_highbits", "tioclinux"] {
        assert_eq!(v[k], "EPERM", "{k}\n{out}");
    }
    assert_eq!(v["py_tiocsti"], "errno 1", "{out}");
    assert_eq!(v["got"], "typed-by-user", "injected input reached the reader:\n{out}");
}

#[test]
fn without_tty_the_host_terminal_is_not_handed_in() {
    // clawcage itself runs on a terminal, but the command gets pipes.
    let fx = Fixture::new("tty-none");
    std::fs::copy(probe_bin(), fx.ws_path("probe")).unwrap();
    let script = "test -t 0 || echo stdin=notty; test -t 1 || echo stdout=notty; \
                  (exec 3</dev/tty) 2>/dev/null && echo devtty=open || echo devtty=none; \
                  ./probe tiocsti";
    let pty = Pty::spawn(fx.command(&["/bin/sh", "-c", script]), 24, 80);
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    let v = kv(&out);
    assert_eq!(v["stdin"], "notty", "{out}");
    assert_eq!(v["stdout"], "notty");
    assert_eq!(v["devtty"], "none", "the command has a controlling terminal:\n{out}");
    assert_eq!(v["tiocsti"], "EPERM");
    // No controlling terminal: the tty_nr field is 0 (field 7 of stat).
    let fx2 = Fixture::new("tty-none2");
    let run = fx2.sh("cut -d' ' -f7 /proc/self/stat");
    assert_eq!(run.stdout.trim(), "0", "tty_nr inside");
}
