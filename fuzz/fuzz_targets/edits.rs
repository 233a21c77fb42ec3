//! Edits of a genuine input, shared by the targets that mutate a real token: the fuzzer's
//! bytes say what to change, so a short input reaches deep into a long token.

/// `text` with the edits of `edits`, 4 bytes each: what (replace, insert or remove a
/// byte), where (2 bytes, little-endian, modulo the length), which byte.
pub fn edited(text: &str, edits: &[u8]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits.chunks_exact(4) {
        let at = usize::from(u16::from_le_bytes([edit[1], edit[2]]));
        match edit[0] % 3 {
            0 if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = edit[3];
            }
            1 => bytes.insert(at % (bytes.len() + 1), edit[3]),
            2 if !bytes.is_empty() => {
                bytes.remove(at % bytes.len());
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `BASE64URL(header) '.' BASE64URL(payload)` of a compact JWS, what its signature covers.
pub fn signed_part(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(signed, _)| signed)
}
