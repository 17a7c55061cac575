//! The health service (`pgsqlms health-server`) against real PostgreSQL 15
//! servers: what each check answers on a primary and a standby, the
//! promotion marker promote leaves and stop removes, and requests that must
//! be refused or cut off without hanging the service.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Status code and body of one request (raw HTTP/1.1, so that malformed
/// requests can be sent too). None: the server closed without answering.
fn request(port: u16, raw: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(raw.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

fn get(port: u16, path: &str) -> (u16, String) {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"))
        .unwrap_or_else(|| panic!("no answer to GET {path}"))
}

/// Starts the service for `inst` (as the system user, as its systemd unit
/// does) and waits until it listens.
fn serve(env: &TestEnv, inst: &Instance, extra: &[&str]) -> u16 {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let pgport = inst.port.to_string();
    let mut args =
        vec!["health-server", "--listen", &listen, "--pghost", env.sock.to_str().unwrap()];
    args.extend(["--pgport", &pgport, "--resource", "pgsqld"]);
    args.extend(extra);
    env.spawn_bg(&agent_bin(), &args);
    wait_until("the health service listens", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    port
}

#[test]
fn health_checks_on_a_primary_and_a_standby() {
    let Some(pg) = Pg::get(15) else { panic!("PostgreSQL 15 missing") };
    let env = TestEnv::new(&pg, "health");
    let primary = env.init_instance("srv1");
    env.start(&primary);
    let standby = env.clone_standby(&primary, "srv2");
    env.start_standby(&standby);
    env.wait_streaming(&primary, &standby);
    let rsctmp = env.dir.join("rsctmp");
    std::fs::create_dir_all(&rsctmp).unwrap();
    chown_pg(&rsctmp);
    let p = serve(&env, &primary, &["--rsctmp", rsctmp.to_str().unwrap()]);
    let s = serve(&env, &standby, &["--rsctmp", rsctmp.to_str().unwrap()]);

    // A writable primary that Pacemaker has not promoted gets no writes.
    let (code, body) = get(p, "/primary");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not promoted"), "{body}");
    // promote of a running primary leaves the marker (HA_RSCTMP).
    let rsc = rsctmp.to_str().unwrap();
    env.agent_env(&primary, "promote", &[("HA_RSCTMP", Some(rsc))]).expect(0, "promote");
    let (code, body) = get(p, "/primary");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"role\":\"primary\""), "{body}");
    assert_eq!(get(p, "/replica").0, 503);
    assert_eq!(get(p, "/health").0, 200);

    assert_eq!(get(s, "/primary").0, 503, "a standby is never the primary");
    let (code, body) = get(s, "/replica");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(s, "/replica?lag=1000000000");
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(s, "/health").0, 200);
    // The standby receives but does not replay: it falls behind.
    env.sql_ok(&standby, "SELECT pg_wal_replay_pause()");
    env.sql_ok(&primary, "CREATE TABLE t AS SELECT generate_series(1, 50000) AS i");
    wait_until("the standby reports its lag", Duration::from_secs(20), || {
        get(s, "/replica?lag=1000").0 == 503
    });
    let (_, body) = get(s, "/replica?lag=1000");
    assert!(body.contains("bytes behind"), "{body}");
    assert_eq!(get(s, "/replica?lag=1000000000").0, 200);
    assert_eq!(get(s, "/replica").0, 200, "no limit: any streaming standby");
    env.sql_ok(&standby, "SELECT pg_wal_replay_resume()");
    wait_until("the standby catches up", Duration::from_secs(20), || {
        get(s, "/replica?lag=0").0 == 200
    });

    // Refused requests: an answer, never a hang.
    assert_eq!(get(p, "/etc/passwd").0, 404);
    assert_eq!(get(p, "/replica?lag=lots").0, 400);
    let post = request(p, "POST /primary HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.map(|r| r.0), Some(405));
    let huge =
        format!("GET /health HTTP/1.1\r\nHost: lb\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let t = Instant::now();
    let answer = request(p, &huge);
    assert!(answer.as_ref().is_none_or(|(c, _)| *c == 431 || *c == 400), "{answer:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // A client that never finishes its headers is cut off.
    let mut slow = TcpStream::connect(("127.0.0.1", p)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: lb\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let _ = slow.read(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(12), "slow client held {:?}", t.elapsed());
    // ...and the service still answers others.
    assert_eq!(get(p, "/health").0, 200);

    // stop clears the marker first; PostgreSQL down is 503 everywhere.
    env.agent_env(&primary, "stop", &[("HA_RSCTMP", Some(rsc))]).expect(0, "stop");
    assert!(!rsctmp.join("pgsqlms-pgsqld.promoted").exists());
    let (code, body) = get(p, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"role\":\"down\""), "{body}");
    assert_eq!(get(p, "/primary").0, 503);
}

#[test]
fn health_checks_over_https() {
    let Some(pg) = Pg::get(15) else { panic!("PostgreSQL 15 missing") };
    let env = TestEnv::new(&pg, "health-tls");
    let primary = env.init_instance("srv1");
    env.start(&primary);
    let (cert, key) = (env.dir.join("cert.pem"), env.dir.join("key.pem"));
    run_ok(
        std::process::Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
        &env.dir,
    );
    chown_pg(&cert);
    chown_pg(&key);
    let port = serve(
        &env,
        &primary,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let out = run_ok(
        std::process::Command::new("curl").args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://127.0.0.1:{port}/health"),
        ]),
        Duration::from_secs(30),
        &env.dir,
    );
    assert_eq!(out.stdout.trim(), "200", "{out:?}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = request(port, "GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
    assert!(plain.as_ref().is_none_or(|(c, _)| *c != 200), "{plain:?}");
}
