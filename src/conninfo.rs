//! Reading a libpq connection string: its password taken out, so that it
//! travels to a command in its environment (PGPASSWORD, readable by its
//! owner only) and never in its arguments (readable by anyone in
//! /proc/<pid>/cmdline); and the addresses it leads to.

use crate::validate::percent_decode;
use std::path::PathBuf;

/// One place a connection string leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// The socket file in a socket directory.
    Unix(PathBuf),
}

/// The addresses libpq would try for `conninfo`, in order: one per entry
/// of `host` (an entry of `hostaddr` replaces the host's address; a host
/// starting with `/` is a socket directory), with `port`'s single value or
/// its entry of the same rank (5432 when empty). None when libpq would look
/// elsewhere (no host: its compiled-in socket directory or PGHOST; a
/// service file; an abstract socket) or the lists do not match: the caller
/// cannot tell where it leads.
pub fn endpoints(conninfo: &str) -> Option<Vec<Endpoint>> {
    let params = crate::validate::conninfo_params(conninfo);
    let get = |k: &str| params.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get("service").is_some() {
        return None;
    }
    let hosts: Vec<&str> = get("host").filter(|h| !h.is_empty())?.split(',').collect();
    let addrs: Vec<&str> = get("hostaddr").map(|a| a.split(',').collect()).unwrap_or_default();
    let ports: Vec<&str> = get("port").map(|p| p.split(',').collect()).unwrap_or_default();
    if (!addrs.is_empty() && addrs.len() != hosts.len())
        || (ports.len() > 1 && ports.len() != hosts.len())
    {
        return None;
    }
    let mut out = Vec::with_capacity(hosts.len());
    for (i, host) in hosts.iter().enumerate() {
        let port = match ports.get(if ports.len() == 1 { 0 } else { i }).map(|p| p.trim()) {
            None | Some("") => 5432,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        };
        let addr = addrs.get(i).map(|a| a.trim()).filter(|a| !a.is_empty());
        out.push(match addr {
            Some(a) => Endpoint::Tcp { host: a.to_string(), port },
            None if host.starts_with('/') => {
                Endpoint::Unix(PathBuf::from(host).join(format!(".s.PGSQL.{port}")))
            }
            None if host.is_empty() || host.starts_with('@') => return None,
            None => Endpoint::Tcp { host: host.to_string(), port },
        });
    }
    Some(out)
}

/// `conninfo` without its password, and the password. Both libpq forms:
/// `key=value` pairs (values optionally single-quoted, `\` escapes) and
/// URIs (`postgresql://user:password@host/...?password=...`).
pub fn take_password(conninfo: &str) -> (String, Option<String>) {
    let t = conninfo.trim_start();
    if t.starts_with("postgresql://") || t.starts_with("postgres://") {
        take_from_uri(t)
    } else {
        take_from_pairs(conninfo)
    }
}

fn take_from_pairs(s: &str) -> (String, Option<String>) {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut password = None;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // Not a pair (libpq would reject it): keep the text as it is.
            // The key consumed at least one byte, so the loop advances.
            out.push_str(&s[start..i]);
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        if key == "password" {
            password = Some(String::from_utf8_lossy(&value).into_owned());
        } else {
            out.push_str(&s[start..i]);
        }
    }
    (out.trim().to_string(), password)
}

fn take_from_uri(s: &str) -> (String, Option<String>) {
    let (scheme, rest) = s.split_once("://").unwrap_or(("postgresql", s));
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let mut password = None;
    let main = match main.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (main, None),
    };
    let authority = match main.0.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, pw)) => {
                password = Some(percent_decode(pw));
                format!("{user}@{hosts}")
            }
            None => main.0.to_string(),
        },
        None => main.0.to_string(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = main.1 {
        out.push('/');
        out.push_str(path);
    }
    if let Some(q) = query {
        let kept: Vec<&str> = q
            .split('&')
            .filter(|kv| match kv.split_once('=') {
                Some(("password", v)) => {
                    password = Some(percent_decode(v));
                    false
                }
                _ => true,
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    (out, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_taken_out() {
        // (connection string, what is left, the password)
        let table = [
            (
                "host=vip port=5432 user=rep password=s3cret application_name=srv1",
                "host=vip port=5432 user=rep application_name=srv1",
                Some("s3cret"),
            ),
            ("password = 'a b\\'c' host=vip", "host=vip", Some("a b'c")),
            ("host='/run/pg sock' password=x\\ y", "host='/run/pg sock'", Some("x y")),
            ("host=vip", "host=vip", None),
            ("", "", None),
            // URIs: in the user info or as a query parameter.
            (
                "postgresql://rep:p%40ss@vip:5432/db?application_name=srv1",
                "postgresql://rep@vip:5432/db?application_name=srv1",
                Some("p@ss"),
            ),
            (
                "postgres://vip/?password=x&application_name=srv1",
                "postgres://vip/?application_name=srv1",
                Some("x"),
            ),
            ("postgresql://rep@vip", "postgresql://rep@vip", None),
        ];
        for (conninfo, rest, password) in table {
            let want = (rest.to_string(), password.map(str::to_string));
            assert_eq!(take_password(conninfo), want, "{conninfo}");
        }
    }

    #[test]
    fn endpoints_as_libpq_reads_them() {
        let tcp = |h: &str, p: u16| Endpoint::Tcp { host: h.to_string(), port: p };
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        let table: Vec<(&str, Option<Vec<Endpoint>>)> = vec![
            ("host=10.0.0.9 user=replicator", Some(vec![tcp("10.0.0.9", 5432)])),
            ("host=vip port=5433", Some(vec![tcp("vip", 5433)])),
            ("host='a,b' port=6000", Some(vec![tcp("a", 6000), tcp("b", 6000)])),
            ("host=a,b port=6000,6001", Some(vec![tcp("a", 6000), tcp("b", 6001)])),
            ("host=a,b port=6000,", Some(vec![tcp("a", 6000), tcp("b", 5432)])),
            ("host=a,b port=1,2,3", None),
            ("host=name hostaddr=10.1.1.1", Some(vec![tcp("10.1.1.1", 5432)])),
            ("host=a,b hostaddr=,10.1.1.2", Some(vec![tcp("a", 5432), tcp("10.1.1.2", 5432)])),
            ("host=a,b hostaddr=10.1.1.1", None),
            ("host=/run/postgresql port=5434", Some(vec![unix("/run/postgresql/.s.PGSQL.5434")])),
            (
                "postgresql://u@h1:5000,h2/db?application_name=x",
                Some(vec![tcp("h1", 5000), tcp("h2", 5432)]),
            ),
            ("postgresql://%2Ftmp%2Fs:5999/db", Some(vec![unix("/tmp/s/.s.PGSQL.5999")])),
            ("user=replicator", None),
            ("host='' port=5432", None),
            ("host=a,", None),
            ("host=@abstract", None),
            ("host=a service=primary", None),
            ("host=a port=0", None),
            ("host=a port=70000", None),
            ("host=a port=x", None),
            ("host=a host=b", Some(vec![tcp("b", 5432)])),
        ];
        for (conninfo, want) in table {
            assert_eq!(endpoints(conninfo), want, "{conninfo}");
        }
    }

    proptest::proptest! {
        /// Any text: an answer, never a panic; every port it gives is real.
        #[test]
        fn endpoints_of_any_text(s in "[ -~]{0,60}", t in "(host|port|hostaddr)=[a-z0-9,/:. ]{0,20}( (host|port|hostaddr)=[a-z0-9,/:. ]{0,20}){0,3}") {
            for text in [s, t] {
                if let Some(eps) = endpoints(&text) {
                    for e in eps {
                        if let Endpoint::Tcp { host, port } = e {
                            proptest::prop_assert!(port > 0 && !host.is_empty());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_input_panics_and_no_password_survives() {
        let samples = [
            "password=abc host=h",
            "host=h password='abc",
            "password=",
            "=x password=abc",
            "postgresql://u:abc@h?password=abc",
            "postgresql://:abc@",
            "'password=abc",
            "password\\=abc",
            "é password=abc é",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                for j in (i..=s.len()).filter(|j| s.is_char_boundary(*j)) {
                    let _ = take_password(&s[i..j]);
                }
            }
            let (rest, pw) = take_password(s);
            if pw.as_deref() == Some("abc") {
                assert!(!rest.contains("abc"), "{s} -> {rest}");
            }
        }
    }
}
