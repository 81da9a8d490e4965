//! Starting one command from init, posix_spawn style: a clone that shares
//! init's memory and suspends init until the child has exec'd (no page
//! tables copied, no error pipe). The child makes only raw system calls on
//! data prepared before the clone: it must not allocate or take locks.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// Everything the child needs, built (and allocated) before the clone.
pub struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    candidates: Vec<CString>,
    cwd: CString,
    /// stdin, stdout, stderr; all three the same pty slave with `tty`.
    stdio: [RawFd; 3],
    tty: bool,
}

fn c(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument or environment"))
}

impl Prepared {
    /// Prepare `argv` (looked up in the `PATH` of `env`) to run in `cwd`.
    pub fn new(argv: &[String], env: &[(String, String)], cwd: &str, stdio: [RawFd; 3], tty: bool) -> io::Result<Self> {
        let prog = argv.first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let path = env.iter().find(|(k, _)| k == "PATH").map_or(clawcage_policy::DEFAULT_PATH, |(_, v)| v.as_str());
        // PATH lookup as a shell does it, with the command's own PATH.
        let candidates = if prog.contains('/') {
            vec![c(prog)?]
        } else {
            path.split(':').filter(|d| !d.is_empty()).map(|d| c(&format!("{d}/{prog}"))).collect::<io::Result<_>>()?
        };
        let argv = argv.iter().map(|a| c(a)).collect::<io::Result<Vec<_>>>()?;
        let envp = env.iter().map(|(k, v)| c(&format!("{k}={v}"))).collect::<io::Result<Vec<_>>>()?;
        let ptrs = |v: &[CString]| v.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
        let (argv_ptrs, envp_ptrs) = (ptrs(&argv), ptrs(&envp));
        Ok(Prepared { argv, envp, argv_ptrs, envp_ptrs, candidates, cwd: c(cwd)?, stdio, tty })
    }
}

struct Shared<'a> {
    p: &'a Prepared,
    errno: i32,
}

/// Start the prepared command; returns its pid once it has exec'd.
pub fn spawn(p: &Prepared) -> io::Result<libc::pid_t> {
    const STACK: usize = 64 * 1024;
    let mut stack = vec![0u8; STACK];
    let mut shared = Shared { p, errno: 0 };
    // The stack grows down: hand clone the 16-byte aligned top.
    let top = ((stack.as_mut_ptr() as usize + STACK) & !15) as *mut libc::c_void;
    // The child runs `child_main` on its own stack and only makes raw system
    // calls (no allocation, no locks).
    // SAFETY: CLONE_VM|CLONE_VFORK suspends this (single-threaded) process
    // until the child execs or exits, so `shared`, `p` and `stack` outlive
    // every use the child makes of them (see above for what it does).
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut shared as *mut Shared<'_> as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the child wrote `errno` through the pointer before we resumed;
    // a volatile read makes the compiler look at memory again.
    let errno = unsafe { std::ptr::read_volatile(&shared.errno) };
    drop(stack);
    if errno != 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` of the suspended parent (see spawn()).
    let shared = unsafe { &mut *(arg as *mut Shared<'_>) };
    shared.errno = exec(shared.p);
    // SAFETY: _exit ends the child without touching the shared memory's state.
    unsafe { libc::_exit(127) }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// In the child: signals, session, stdio, cwd, exec. Returns errno on failure.
fn exec(p: &Prepared) -> i32 {
    // SAFETY: every call below is a plain system call on descriptors and
    // NUL-terminated strings/arrays that `Prepared` owns and keeps alive; the
    // sigset is a local value initialised by sigemptyset.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 || libc::setsid() < 0 {
            return errno();
        }
        if p.tty && libc::ioctl(p.stdio[0], libc::TIOCSCTTY, 0) != 0 {
            return errno();
        }
        // Move all three above 2 first so that dup2 cannot clobber a source.
        let mut high = [0; 3];
        for (h, fd) in high.iter_mut().zip(p.stdio) {
            *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            if *h < 0 {
                return errno();
            }
        }
        for (target, fd) in high.into_iter().enumerate() {
            if libc::dup2(fd, target as RawFd) < 0 {
                return errno();
            }
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            return errno();
        }
        let mut last = libc::ENOENT;
        for cand in &p.candidates {
            libc::execve(cand.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr());
            let e = errno();
            // Keep the most telling error, as shells do: EACCES beats ENOENT.
            if e != libc::ENOENT || last == libc::ENOENT {
                last = e;
            }
            if e != libc::ENOENT && e != libc::EACCES && e != libc::ENOTDIR {
                break;
            }
        }
        let _ = (&p.argv, &p.envp);
        last
    }
}
