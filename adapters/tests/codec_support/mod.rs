//! Helpers shared by the codec tests.

#![allow(dead_code)]

/// Bytes from the spec's hex notation: two-digit hex bytes and `"text"` for UTF-8 runs,
/// separated by whitespace (e.g. `a4 "uuid" c0`).
pub fn spec_bytes(notation: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = notation.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        } else {
            let hi = chars
                .next()
                .and_then(|c| c.to_digit(16))
                .expect("hex digit");
            let lo = chars
                .next()
                .and_then(|c| c.to_digit(16))
                .expect("hex digit");
            out.push((hi * 16 + lo) as u8);
        }
    }
    out
}

/// Bytes from a `hexdump -C`-style listing (offset, 16 hex bytes, comment): the offset column
/// and everything after the hex bytes are ignored.
pub fn hexdump_bytes(listing: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        if fields.next().is_none() {
            continue;
        }
        for f in fields.take(16) {
            if f.len() == 2 && f.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(u8::from_str_radix(f, 16).expect("hex"));
            } else {
                break;
            }
        }
    }
    out
}

/// Lowercase hex for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
