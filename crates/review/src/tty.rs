//! Asking on the invoking user's terminal (`/dev/tty`), whatever stdin and
//! stdout are: the command's input and output stay theirs.

use crate::approve::{Answer, Prompter, Request};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

/// Asks `y`/`n` on `/dev/tty`. No controlling terminal: denied (there is
/// nobody to ask). Keys typed before the question are thrown away, so only
/// an answer given after reading it counts.
#[derive(Debug, Default)]
pub struct TerminalPrompter;

impl TerminalPrompter {
    /// A prompter on the controlling terminal.
    pub fn new() -> TerminalPrompter {
        TerminalPrompter
    }
}

fn uid() -> u32 {
    // SAFETY: getuid has no arguments and cannot fail.
    unsafe { libc::getuid() }
}

impl Prompter for TerminalPrompter {
    fn ask(&self, req: &Request, deadline: Instant) -> Answer {
        let tty = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/dev/tty")
        {
            Ok(t) => t,
            Err(e) => return Answer::Unavailable(format!("no terminal to ask for approval on (/dev/tty: {e})")),
        };
        // SAFETY: tcflush on a descriptor we own; failure only means nothing is dropped.
        unsafe { libc::tcflush(tty.as_raw_fd(), libc::TCIFLUSH) };
        let rule = match &req.rule {
            Some(r) => format!("approval rule {r:?}"),
            None => "every approval rule (it cannot be read safely)".to_string(),
        };
        let mut text = format!("\r\nclawcage: approval needed for task {} (request {})\r\n", req.task, req.id);
        text.push_str(&format!("  {:<8} {}\r\n", kind_label(req), req.what));
        if let Some(cwd) = &req.cwd {
            text.push_str(&format!("  {:<8} {cwd}\r\n", "in:"));
        }
        text.push_str(&format!("  {:<8} {rule}\r\n  {:<8} {}\r\n", "matches:", "why:", req.reason));
        text.push_str(&format!("Allow? [y/N] (denied in {} s without an answer): ", req.timeout.as_secs()));
        let mut out = &tty;
        if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
            return Answer::Unavailable("cannot write to the terminal".into());
        }
        let by = format!("terminal (uid {})", uid());
        let mut line = Vec::new();
        loop {
            match read_some(&tty, deadline, &mut line) {
                Read_::Line => {
                    let answer = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
                    line.clear();
                    match answer.as_str() {
                        "y" | "yes" => {
                            let _ = out.write_all(b"approved\r\n");
                            return Answer::Approve { by };
                        }
                        "n" | "no" | "" => {
                            let _ = out.write_all(b"denied\r\n");
                            return Answer::Deny { by, reason: Some("denied at the terminal".into()) };
                        }
                        _ => {
                            let _ = out.write_all(b"please answer y or n: ");
                        }
                    }
                }
                Read_::Timeout => {
                    let _ = out.write_all(b"\r\nno answer: denied\r\n");
                    return Answer::NoAnswer;
                }
                Read_::Closed => return Answer::Unavailable("the terminal closed before an answer".into()),
            }
        }
    }
}

fn kind_label(req: &Request) -> &'static str {
    match req.kind.as_str() {
        "network" => "connect:",
        "write" => "write:",
        _ => "command:",
    }
}

enum Read_ {
    Line,
    Timeout,
    Closed,
}

/// Read into `line` until a newline, the deadline or the end.
fn read_some(tty: &File, deadline: Instant, line: &mut Vec<u8>) -> Read_ {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Read_::Timeout;
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd { fd: tty.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Read_::Closed;
        }
        if n == 0 {
            continue; // the loop head sees the deadline
        }
        let mut buf = [0u8; 256];
        let mut r = tty;
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return Read_::Closed,
            Ok(k) => {
                for &b in &buf[..k] {
                    if b == b'\n' || b == b'\r' {
                        return Read_::Line;
                    }
                    if line.len() < 64 {
                        line.push(b);
                    }
                }
            }
        }
    }
}
