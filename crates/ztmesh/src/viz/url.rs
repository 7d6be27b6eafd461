//! Query strings of the viz API: [`query`] reads `key=value` pairs,
//! percent-decoded; [`escape`] writes a value. Pure.

/// The query's `key=value` pairs, percent-decoded.
pub(crate) fn query(q: Option<&str>) -> std::collections::HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` as a query value (what [`query`] decodes).
pub(crate) fn escape(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (c as char).to_string()
            }
            c => format!("%{c:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        // (value, as escaped)
        let cases = [
            ("po/authors", "po/authors"),
            ("/a b&c=d", "/a%20b%26c%3Dd"),
            ("authors:7001", "authors:7001"),
            ("é", "%C3%A9"),
        ];
        for (value, escaped) in cases {
            assert_eq!(escape(value), escaped);
            let q = query(Some(&format!("k={}&n=1", escape(value))));
            assert_eq!(q.get("k").map(String::as_str), Some(value), "{value}");
        }
        assert_eq!(query(Some("a=1+2&bad%zz=x"))["a"], "1 2");
        assert!(query(None).is_empty());
    }
}
