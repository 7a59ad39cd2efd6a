//! Bounded text: titles, names, descriptions and reasons with a length cap counted in characters.

use crate::Invalid;

/// Trimmed, non-empty text of at most `max_chars` characters, without control characters.
pub fn bounded(field: &'static str, raw: &str, max_chars: usize) -> Result<String, Invalid> {
    bounded_str(field, raw, max_chars).map(str::to_owned)
}

/// [`bounded`] without the copy, for callers that only pass the text on (a flash purchase's address).
pub fn bounded_str<'a>(field: &'static str, raw: &'a str, max_chars: usize) -> Result<&'a str, Invalid> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(Invalid::new(field, "empty", "must not be empty"));
    }
    let n_chars = value.chars().count();
    if n_chars > max_chars {
        return Err(Invalid::new(field, "too_long", format!("must be at most {max_chars} characters, got {n_chars}")));
    }
    // Newlines and tabs are legitimate in descriptions; other control characters are not text.
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(Invalid::new(field, "invalid_characters", "must not contain control characters"));
    }
    Ok(value)
}

/// Like [`bounded`], but empty input is allowed and becomes the empty string.
pub fn bounded_or_empty(field: &'static str, raw: &str, max_chars: usize) -> Result<String, Invalid> {
    if raw.trim().is_empty() { Ok(String::new()) } else { bounded(field, raw, max_chars) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, max: usize, expected: Result<&str, &str>) {
        let got = bounded("f", raw, max);
        match expected {
            Ok(v) => assert_eq!(got.as_deref(), Ok(v)),
            Err(code) => assert_eq!(got.map_err(|e| e.code), Err(code)),
        }
    }

    #[test]
    fn bounded_text() {
        check("  延边大米  ", 4, Ok("延边大米"));
        check("延边大米5kg", 4, Err("too_long"));
        check("   ", 4, Err("empty"));
        check("a\u{0}b", 4, Err("invalid_characters"));
        check("a\nb", 4, Ok("a\nb"));
    }
}
