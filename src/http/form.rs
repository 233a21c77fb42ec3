//! The parameters of a form body or a query string
//! (`application/x-www-form-urlencoded`), as the OAuth 2.0 and OpenID Connect endpoints
//! read them: a fixed set of names, each at most once (RFC 6749 §3.1, §3.2), a name
//! without a value treated as omitted (§3.1), any other name ignored. What a repeat
//! means (an error, a page, a redirect) is the caller's business.

use std::borrow::Cow;

/// The values of the names asked for, and the first one given twice.
#[derive(Debug)]
pub(super) struct Fields<'a, const N: usize> {
    /// Each name's value, in the order the names were given; `None` when absent or
    /// empty. A repeated name keeps its first value.
    pub(super) values: [Option<Cow<'a, str>>; N],
    /// The first name given more than once, if any.
    pub(super) repeated: Option<&'static str>,
}

/// Reads the fields of struct `$ty` (each an `Option<Cow<str>>`) from `$input`, each
/// under its own name: `($ty { .. }, repeated)`, or with `repeated: FIELD` the struct
/// alone, the first name given twice in that field. One list names the parameter, the
/// field and its place, so they cannot drift apart.
macro_rules! read_fields {
    ($input:expr, $ty:ident { $($field:ident),+ $(,)? }, repeated: $repeated:ident) => {{
        let form = $crate::http::form::fields($input, [$(stringify!($field)),+]);
        let [$($field),+] = form.values;
        $ty {
            $($field,)+
            $repeated: form.repeated,
        }
    }};
    ($input:expr, $ty:ident { $($field:ident),+ $(,)? }) => {{
        let form = $crate::http::form::fields($input, [$(stringify!($field)),+]);
        let [$($field),+] = form.values;
        ($ty { $($field),+ }, form.repeated)
    }};
}
pub(super) use read_fields;

/// Reads `names` from `input`.
pub(super) fn fields<'a, const N: usize>(
    input: &'a [u8],
    names: [&'static str; N],
) -> Fields<'a, N> {
    let mut values = [const { None }; N];
    let mut seen = [false; N];
    let mut repeated = None;
    for (key, value) in form_urlencoded::parse(input) {
        let Some(i) = names.iter().position(|name| *name == key) else {
            continue;
        };
        if seen[i] {
            repeated.get_or_insert(names[i]);
            continue;
        }
        seen[i] = true;
        if !value.is_empty() {
            values[i] = Some(value);
        }
    }
    Fields { values, repeated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_once_empty_values_omitted_and_others_ignored() {
        let f = fields(b"b=2&a=x+y%21&other=1&c=&b=3&other=2", ["a", "b", "c", "d"]);
        let [a, b, c, d] = f.values;
        assert_eq!(a.as_deref(), Some("x y!"));
        assert_eq!(b.as_deref(), Some("2"));
        assert_eq!((c, d), (None, None));
        assert_eq!(f.repeated, Some("b"));
        let f = fields(b"a=&a=", ["a"]);
        assert_eq!(f.repeated, Some("a"));
        assert_eq!(fields(b"", ["a"]).repeated, None);
    }
}
