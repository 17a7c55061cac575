//! Taking the password out of a libpq connection string, so that it travels
//! to a command in its environment (PGPASSWORD, readable by its owner only)
//! and never in its arguments (readable by anyone in /proc/<pid>/cmdline).

use crate::validate::percent_decode;

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
