//! Building request paths.

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters, so a
/// project named `Fabrikam Fiber/Web` or a file named `a b.txt` stays one segment.
///
/// ```
/// assert_eq!(workbridge_http::path_segment("Fabrikam Fiber/Web"), "Fabrikam%20Fiber%2FWeb");
/// assert_eq!(workbridge_http::path_segment("a-b_c.d~e"), "a-b_c.d~e");
/// ```
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
