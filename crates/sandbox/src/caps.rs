//! Capabilities, securebits and no_new_privs: after this step the sandbox's
//! root user is an ordinary user with no way to regain privileges.

use crate::sys;
use std::io;

/// Lock the "root is special" rules off and keep them off across exec.
const SECUREBITS: libc::c_ulong = (1 << 0) // SECBIT_NOROOT
    | (1 << 1) // SECBIT_NOROOT_LOCKED
    | (1 << 2) // SECBIT_NO_SETUID_FIXUP
    | (1 << 3) // SECBIT_NO_SETUID_FIXUP_LOCKED
    | (1 << 5) // SECBIT_KEEP_CAPS_LOCKED
    | (1 << 6) // SECBIT_NO_CAP_AMBIENT_RAISE
    | (1 << 7); // SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED

/// Highest capability number the kernel knows (falls back to a generous 63).
fn last_cap() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63)
}

/// Empty the bounding and ambient sets, lock the securebits, then clear the
/// effective, permitted and inheritable sets.
pub fn drop_all() -> io::Result<()> {
    for cap in 0..=last_cap() {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap, 0) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break, // beyond the kernel's last cap
            Err(e) => return Err(e),
        }
    }
    sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)?;
    sys::prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0)?;
    sys::capset_zero()
}

/// Set no_new_privs: exec can never grant privileges (setuid bits, file caps).
pub fn no_new_privs() -> io::Result<()> {
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// Check from inside, as the kernel reports it, that every capability set is
/// empty, no_new_privs is on and a seccomp filter is installed.
pub fn verify(status: &str) -> Result<(), String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or_else(|| format!("/proc/self/status lacks {name}"))
    };
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        let v = field(cap)?;
        if !v.trim_start_matches('0').is_empty() {
            return Err(format!("{cap} is {v}, expected 0"));
        }
    }
    match field("NoNewPrivs:")?.as_str() {
        "1" => {}
        v => return Err(format!("NoNewPrivs is {v}, expected 1")),
    }
    match field("Seccomp:")?.as_str() {
        "2" => Ok(()),
        v => Err(format!("Seccomp is {v}, expected 2 (filter)")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_reads_status() {
        let good = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        assert!(super::verify(good).is_ok());
        let bad = good.replace("CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff");
        assert!(super::verify(&bad).unwrap_err().contains("CapBnd"));
        assert!(super::verify(&good.replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")).is_err());
        assert!(super::verify(&good.replace("Seccomp:\t2", "Seccomp:\t0")).is_err());
    }
}
