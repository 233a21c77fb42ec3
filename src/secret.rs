//! [`Secret`]: the one string wrapper whose `Debug` never shows what it holds, for master
//! keys, passphrases and passwords. Domain newtypes (`users::Password`) wrap it rather
//! than redact on their own.
//!
//! Not here: zeroizing memory, or redacting database URLs (`config::DatabaseUrl` shows
//! everything but the password, which a plain `<redacted>` would hide too).

use std::fmt;

/// A secret string. `Debug` prints `<redacted>`; there is no `Display`, so the text
/// reaches output only through an explicit [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret text; handle with care.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret:#?}"), "<redacted>");
        assert_eq!(secret.clone().expose(), "hunter2");
    }
}
