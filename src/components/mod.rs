//! Leptos components: they render [`crate::call::State`] and dispatch [`crate::call::Event`]s;
//! no protocol or WebRTC logic lives here.

pub mod call_screen;
pub mod join;
pub mod text;

/// Percent-encodes a path segment (names may be non-ASCII, e.g. 张伟).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_non_ascii_names() {
        assert_eq!(super::encode_segment("bob_1.x-y"), "bob_1.x-y");
        assert_eq!(super::encode_segment("张伟"), "%E5%BC%A0%E4%BC%9F");
    }
}
