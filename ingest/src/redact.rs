//! Secrets out of what ingest logs and stores: the tokens robots' webhook URLs carry in their
//! query (`access_token=`, `key=`, `sign=`, `secret=`, `token=`…), passwords in a URL's
//! userinfo, and secrets known by value (an SMTP password, a signing secret). Applied to every
//! URL or error text before it reaches a log line, an error message or the notification
//! outbox; errors of HTTP clients quote the URL they failed on.

use std::borrow::Cow;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Whether a `name=value` pair's value (or a header's) is a secret, by its name.
pub fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const NAMES: [&str; 14] = [
        "key",
        "sign",
        "signature",
        "sig",
        "secret",
        "token",
        "password",
        "passwd",
        "pwd",
        "pass",
        "apikey",
        "auth",
        "authorization",
        "credential",
    ];
    NAMES.contains(&n.as_str())
        || ["_token", "-token", "_key", "-key", "_secret", "-secret", "_password", "-password"]
            .iter()
            .any(|s| n.ends_with(s))
}

fn name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// Where a value (of a query pair or a URL's userinfo) ends.
fn value_end(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(c, b'&' | b'#' | b'"' | b'\'' | b')' | b'>' | b'<' | b',' | b';' | b'`')
}

/// `text` with the values of secret `name=value` pairs and the passwords of URLs masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // Everything before `copied` is already in `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let mut start = i;
            while start > 0 && name_char(bytes[start - 1]) {
                start -= 1;
            }
            if start < i && secret_name(&text[start..i]) {
                let mut end = i + 1;
                while end < bytes.len() && !value_end(bytes[end]) {
                    end += 1;
                }
                if end > i + 1 {
                    out.push_str(&text[copied..=i]);
                    out.push_str(MASK);
                    copied = end;
                }
                i = end;
                continue;
            }
        } else if bytes[i..].starts_with(b"://") {
            // scheme://userinfo@host: keep the user, mask the password (or a lone token).
            let from = i + 3;
            let mut end = from;
            while end < bytes.len() && !value_end(bytes[end]) && !matches!(bytes[end], b'/' | b'?') {
                end += 1;
            }
            if let Some(at) = text[from..end].rfind('@') {
                let userinfo = &text[from..from + at];
                if !userinfo.is_empty() {
                    out.push_str(&text[copied..from]);
                    if let Some((user, _)) = userinfo.split_once(':') {
                        out.push_str(user);
                        out.push(':');
                    }
                    out.push_str(MASK);
                    copied = from + at;
                }
            }
            i = end;
            continue;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// [`redact`], and every one of `secrets` (known by value, at least 4 characters long, so
/// that a short one does not mask half the text) masked wherever it appears.
pub fn redact_with(text: &str, secrets: &[&str]) -> String {
    let mut out = redact(text).into_owned();
    for s in secrets.iter().filter(|s| s.chars().count() >= 4) {
        if out.contains(*s) {
            out = out.replace(*s, MASK);
        }
    }
    out
}

/// The secrets a URL carries by value: the values of its secret query pairs and the password
/// of its userinfo (percent-encoded as written), to mask wherever they appear.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
    for pair in query.split('#').next().unwrap_or("").split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            if secret_name(name) && !value.is_empty() {
                found.push(value.to_string());
            }
        }
    }
    let authority =
        before_query.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        if !password.is_empty() {
            found.push(password.to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_tokens_robots_carry_in_their_query() {
        let cases = [
            (
                "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1700000000000&sign=Zm9v%2Bbar",
                "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1700000000000&sign=***",
            ),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx",
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
            ),
            ("http://h/hook?secret=s3&token=t0k&id=7", "http://h/hook?secret=***&token=***&id=7"),
            ("http://h/hook?API_KEY=k&Auth_Token=t#frag", "http://h/hook?API_KEY=***&Auth_Token=***#frag"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want);
        }
    }

    #[test]
    fn masks_urls_inside_error_texts_and_keeps_the_rest() {
        let e = "error sending request for url (http://127.0.0.1:9/robot/send?access_token=t0ps3cret): \
                 connection refused";
        assert_eq!(
            redact(e),
            "error sending request for url (http://127.0.0.1:9/robot/send?access_token=***): connection refused"
        );
        let plain = "HTTP 500: {\"errcode\": 1, \"keys\": \"a=b\"} over 3 attempts";
        assert!(matches!(redact(plain), Cow::Borrowed(_)), "nothing to mask, nothing copied");
        assert_eq!(redact("key= and token="), "key= and token=", "empty values stay empty");
        assert_eq!(redact("monkey=1"), "monkey=1");
    }

    #[test]
    fn masks_passwords_in_userinfo() {
        assert_eq!(
            redact("smtps://alerts:hunter22@mail.example.com:465"),
            "smtps://alerts:***@mail.example.com:465"
        );
        assert_eq!(redact("http://tok3n@h:8086/api?x=1"), "http://***@h:8086/api?x=1");
        assert_eq!(redact("mqtt://u:p@w@broker:1883/x"), "mqtt://u:***@broker:1883/x", "the last @ ends it");
        assert_eq!(redact("see http://h/a@b for"), "see http://h/a@b for", "an @ in the path is no userinfo");
        assert_eq!(redact("a://b"), "a://b");
        assert_eq!(redact("://@"), "://@");
    }

    #[test]
    fn masks_secrets_known_by_value() {
        let e = "SMTP: authentication failed for hunter22 (sig abcd)";
        assert_eq!(
            redact_with(e, &["hunter22", "abc", ""]),
            "SMTP: authentication failed for *** (sig abcd)"
        );
    }

    #[test]
    fn finds_the_secrets_a_url_carries() {
        assert_eq!(
            url_secrets("https://u:pa%40ss@h/robot/send?access_token=abc&x=1&sign=&key=k1#f"),
            ["abc", "k1", "pa%40ss"]
        );
        assert!(url_secrets("http://h/hook?x=1").is_empty());
        assert_eq!(url_secrets("smtps://tok@mail:465"), ["tok"]);
    }

    proptest::proptest! {
        /// Any text, any secret: no panic, and a secret value after `token=` never survives.
        #[test]
        fn never_panics_and_never_lets_a_token_through(prefix in "\\PC{0,20}", secret in "[A-Za-z0-9%+/]{1,20}", suffix in "(&[a-z]{1,4}=[a-z]{0,4})?( \\PC{0,10})?") {
            let text = format!("{prefix} http://h/x?token={secret}{suffix}");
            let out = redact(&text);
            let masked = format!("token={secret}");
            proptest::prop_assert!(!out.contains(&masked), "{out}");
        }
    }
}
