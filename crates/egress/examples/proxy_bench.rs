//! Benchmark of the egress proxy on loopback (run by bench/proxy.sh): small
//! requests over keep-alive and over new connections, and a bulk download,
//! each direct to the origin and through the proxy, in one run. The sink
//! keeps events in memory (the audit log's fsync is measured elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use clawcage_egress::{Config, Proxy, SecretTable};
use clawcage_policy::event::MemorySink;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

fn origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

fn serve(s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let chunk = vec![b'x'; 1 << 20];
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        let n: u64 = path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()).unwrap_or(2);
        if write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").is_err() {
            return;
        }
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..k]).is_err() {
                return;
            }
            left -= k as u64;
        }
    }
}

/// One request on `s`; returns the body length.
fn request(s: &mut BufReader<TcpStream>, target: &str, host: &str) -> u64 {
    write!(s.get_mut(), "GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut len = 0u64;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let k = s.read(&mut buf[..want]).unwrap();
        assert!(k > 0, "short body");
        left -= k as u64;
    }
    len
}

/// CPU time (user + system) of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own; RUSAGE_SELF is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU time (user + system) of the proxy's thread so far, in seconds.
fn proxy_cpu_seconds() -> f64 {
    let tick = 100.0; // USER_HZ
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        // pid (comm) state ... utime stime are fields 14 and 15.
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        if comm.ends_with("(clawcage-egress") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            return (ticks(11) + ticks(12)) / tick;
        }
    }
    0.0
}

/// (MiB/s, CPU seconds per GiB of the whole process, of the proxy's thread)
/// of one bulk transfer of `mib` MiB.
fn measure(mib: f64, f: &mut dyn FnMut()) -> (f64, f64, f64) {
    let (t, cpu, pcpu) = (Instant::now(), cpu_seconds(), proxy_cpu_seconds());
    f();
    let (wall, cpu, pcpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu, proxy_cpu_seconds() - pcpu);
    (mib / wall, cpu * 1024.0 / mib, pcpu * 1024.0 / mib)
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::with_capacity(1 << 20, s)
}

fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let bulk: u64 = std::env::var("BENCH_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let op = origin();
    let policy = clawcage_policy::parse_str(
        &format!("[network]\nallow = [\"origin.test:{op}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"origin.test\" = \"127.0.0.1\"\n"),
        "bench.toml",
    )
    .unwrap();
    let cfg = Config::new(&policy, "bench", "bench.toml", SecretTable::default(), None).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let pp = l.local_addr().unwrap().port();
    let proxy = Proxy::spawn(cfg, l, Arc::new(MemorySink::default())).unwrap();
    let host = format!("origin.test:{op}");
    let abs = |p: &str| format!("http://{host}{p}");

    // Warm up both paths.
    request(&mut connect(op), "/", &host);
    request(&mut connect(pp), &abs("/"), &host);

    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let us = |secs: f64| secs * 1e6 / n as f64;
    let (mut d, mut p) = (connect(op), connect(pp));
    let ka_direct = us(time(&mut || {
        (0..n).for_each(|_| {
            request(&mut d, "/", &host);
        })
    }));
    let ka_proxy = us(time(&mut || {
        (0..n).for_each(|_| {
            request(&mut p, &abs("/"), &host);
        })
    }));
    let nc_direct = us(time(&mut || {
        (0..n).for_each(|_| {
            request(&mut connect(op), "/", &host);
        })
    }));
    let nc_proxy = us(time(&mut || {
        (0..n).for_each(|_| {
            request(&mut connect(pp), &abs("/"), &host);
        })
    }));
    // Bulk: the three paths interleaved over several rounds (the machine is
    // shared, so a single pass mostly measures the neighbours); medians of
    // throughput, and the CPU time this process spent per GiB (client,
    // origin and proxy all run in it), which the neighbours disturb less.
    let target = format!("/bytes/{bulk}");
    let mib = bulk as f64 / (1 << 20) as f64;
    let mut runs: [Vec<(f64, f64, f64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    // BENCH_ONLY=connect runs the tunnel alone (e.g. under perf).
    let only_connect = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "connect");
    for _ in 0..rounds {
        if !only_connect || runs[0].is_empty() {
            runs[0].push(measure(mib, &mut || {
                request(&mut connect(op), &target, &host);
            }));
            runs[1].push(measure(mib, &mut || {
                request(&mut connect(pp), &abs(&target), &host);
            }));
        }
        runs[2].push(measure(mib, &mut || {
            let mut s = connect(pp);
            write!(s.get_mut(), "CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
            loop {
                let mut h = String::new();
                s.read_line(&mut h).unwrap();
                if h == "\r\n" {
                    break;
                }
            }
            request(&mut s, &target, &host);
        }));
    }
    let med = |v: Vec<f64>| -> f64 {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [d, h, c] = runs.map(|r| {
        (
            med(r.iter().map(|x| x.0).collect()),
            med(r.iter().map(|x| x.1).collect()),
            med(r.iter().map(|x| x.2).collect()),
        )
    });
    let (bulk_direct, bulk_proxy, bulk_tunnel) = (d.0, h.0, c.0);
    proxy.shutdown();

    let ka_added = ka_proxy - ka_direct;
    let nc_added = nc_proxy - nc_direct;
    let ratio = bulk_proxy / bulk_direct;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!("requests: {n} per case; bulk: {mib:.0} MiB x {rounds} rounds, medians; sink: in memory");
    println!("keep-alive      direct {ka_direct:8.1} us/req  proxy {ka_proxy:8.1} us/req  added {ka_added:7.1} us  ratio {:.2}  {} (<= 500 us added)", ka_proxy / ka_direct, verdict(ka_added <= 500.0));
    println!("new connection  direct {nc_direct:8.1} us/req  proxy {nc_proxy:8.1} us/req  added {nc_added:7.1} us  ratio {:.2}  {} (<= 500 us added)", nc_proxy / nc_direct, verdict(nc_added <= 500.0));
    println!("bulk http       direct {bulk_direct:8.0} MiB/s   proxy {bulk_proxy:8.0} MiB/s   ratio {ratio:.2}  {} (>= 0.80)", verdict(ratio >= 0.8));
    let tr = bulk_tunnel / bulk_direct;
    println!(
        "bulk CONNECT    direct {bulk_direct:8.0} MiB/s   proxy {bulk_tunnel:8.0} MiB/s   ratio {tr:.2}  {} (>= 0.80)",
        verdict(tr >= 0.8)
    );
    println!(
        "bulk CPU time   direct {:6.2} s/GiB  http proxy {:6.2} s/GiB  CONNECT {:6.2} s/GiB  (client + origin + proxy, this process)",
        d.1, h.1, c.1
    );
    println!("  of which the proxy's thread       http proxy {:6.2} s/GiB  CONNECT {:6.2} s/GiB", h.2, c.2);
    println!("(2 cores: direct runs client + origin, proxied adds a third busy thread)");
}
