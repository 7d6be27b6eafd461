//! Trace context in request headers: W3C `traceparent`
//! (`00-<trace id>-<parent id>-<flags>`) and B3 (`x-b3-traceid`,
//! `x-b3-spanid`, `x-b3-sampled`, or the single `b3` header). A context is
//! written back in the format it came in (W3C when the proxy starts one).

use http::HeaderMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    W3c,
    B3Multi,
    B3Single,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub(crate) trace_id: [u8; 16],
    /// The caller's span: the parent of the next one.
    pub(crate) span_id: [u8; 8],
    pub(crate) sampled: bool,
    pub(crate) format: Format,
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // B3 trace ids may be 64-bit: left-pad to the width.
    if s.len() > 2 * N || !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let padded = format!("{s:0>width$}", width = 2 * N);
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(padded.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // All-zero ids are invalid.
    (out.iter().any(|b| *b != 0)).then_some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn extract(headers: &HeaderMap) -> Option<TraceContext> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if let Some(tp) = get("traceparent") {
        let mut parts = tp.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        return Some(TraceContext {
            trace_id: hex(trace)?,
            span_id: hex(span)?,
            sampled: u8::from_str_radix(flags, 16).ok()? & 1 == 1,
            format: Format::W3c,
        });
    }
    if let Some(b3) = get("b3") {
        let mut parts = b3.trim().split('-');
        let (trace, span) = (parts.next()?, parts.next()?);
        let sampled = matches!(parts.next(), Some("1") | Some("d") | None);
        return Some(TraceContext {
            trace_id: hex(trace)?,
            span_id: hex(span)?,
            sampled,
            format: Format::B3Single,
        });
    }
    let (trace, span) = (get("x-b3-traceid")?, get("x-b3-spanid")?);
    Some(TraceContext {
        trace_id: hex(trace)?,
        span_id: hex(span)?,
        sampled: matches!(get("x-b3-sampled"), Some("1") | Some("true") | None)
            || get("x-b3-flags") == Some("1"),
        format: Format::B3Multi,
    })
}

/// Writes `ctx` (its span as the next hop's parent) in its format.
pub(crate) fn inject(headers: &mut HeaderMap, ctx: &TraceContext) {
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    let sampled = if ctx.sampled { "1" } else { "0" };
    match ctx.format {
        Format::W3c => set(
            headers,
            "traceparent",
            format!(
                "00-{}-{}-{}",
                to_hex(&ctx.trace_id),
                to_hex(&ctx.span_id),
                if ctx.sampled { "01" } else { "00" }
            ),
        ),
        Format::B3Single => set(
            headers,
            "b3",
            format!(
                "{}-{}-{sampled}",
                to_hex(&ctx.trace_id),
                to_hex(&ctx.span_id)
            ),
        ),
        Format::B3Multi => {
            set(headers, "x-b3-traceid", to_hex(&ctx.trace_id));
            set(headers, "x-b3-spanid", to_hex(&ctx.span_id));
            set(headers, "x-b3-sampled", sampled.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn extract_table() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cases: Vec<(Vec<(&str, &str)>, Option<(Format, bool)>)> = vec![
            (vec![("traceparent", tp)], Some((Format::W3c, true))),
            (
                vec![(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
                )],
                Some((Format::W3c, false)),
            ),
            (
                vec![(
                    "traceparent",
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                )],
                None,
            ),
            (
                vec![(
                    "traceparent",
                    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )],
                None,
            ),
            (vec![("traceparent", "garbage")], None),
            (
                vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
                Some((Format::B3Single, true)),
            ),
            (
                vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")],
                Some((Format::B3Single, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", "463ac35c9f6413ad"),
                    ("x-b3-spanid", "a2fb4a1d1a96d312"),
                    ("x-b3-sampled", "1"),
                ],
                Some((Format::B3Multi, true)),
            ),
            (vec![("x-b3-traceid", "463ac35c9f6413ad")], None),
            (vec![], None),
        ];
        for (h, want) in cases {
            let got = extract(&headers(&h)).map(|c| (c.format, c.sampled));
            assert_eq!(got, want, "{h:?}");
        }
        // A 64-bit B3 trace id is left-padded.
        let c = extract(&headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ]))
        .unwrap();
        assert_eq!(&c.trace_id[..8], &[0; 8]);
    }

    #[test]
    fn inject_round_trips_every_format() {
        for format in [Format::W3c, Format::B3Single, Format::B3Multi] {
            let ctx = TraceContext {
                trace_id: [7; 16],
                span_id: [9; 8],
                sampled: true,
                format,
            };
            let mut h = HeaderMap::new();
            inject(&mut h, &ctx);
            assert_eq!(extract(&h), Some(ctx), "{format:?}");
        }
    }
}
