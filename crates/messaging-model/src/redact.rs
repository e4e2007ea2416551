//! One redaction for every URL the suite shows: connection strings in `Debug`
//! output, error messages and logs never carry a password or a token.

/// Query parameters whose values are secrets (compared without case).
const SECRET_PARAMETERS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "sslpassword",
    "secret",
    "token",
    "access_token",
    "auth_token",
    "api_key",
    "apikey",
    "key",
    "auth",
    "sig",
    "signature",
];

/// `url` with every secret replaced by `***`: the password of the userinfo
/// (`scheme://user:***@host`, the whole userinfo for `redis…://` schemes, where
/// a bare userinfo may be a password), and the values of query parameters such
/// as `password`, `pass` or `token`. The userinfo ends at the **last** `@`, so a
/// password holding an unencoded `/`, `?` or `@` is hidden too; anything that is
/// not a URL is returned as it is.
///
/// ```
/// use messaging_model::redact_url;
/// assert_eq!(
///     redact_url("redis://app:Zx9/Qm+kL2@127.0.0.1:6379/0"),
///     "redis://app:***@127.0.0.1:6379/0"
/// );
/// assert_eq!(
///     redact_url("postgres://db/app?user=app&password=s3cret"),
///     "postgres://db/app?user=app&password=***"
/// );
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?pass=pw"), "redis+unix:///run/redis.sock?pass=***");
/// assert_eq!(redact_url("postgres://postgres@127.0.0.1/test"), "postgres://postgres@127.0.0.1/test");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut shown = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => shown.push_str(&format!("{user}:***@")),
            None if scheme.starts_with("redis") => shown.push_str("***@"),
            None => shown.push_str(&format!("{userinfo}@")),
        }
    }
    shown.push_str(&redact_query(after));
    shown
}

/// `host/path?query#fragment` with the values of secret parameters redacted.
fn redact_query(text: &str) -> String {
    let Some((before, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, _))
                if SECRET_PARAMETERS
                    .iter()
                    .any(|secret| name.eq_ignore_ascii_case(secret)) =>
            {
                format!("{name}=***")
            }
            _ => parameter.to_owned(),
        })
        .collect();
    let mut shown = format!("{before}?{}", parameters.join("&"));
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn every_url_form_hides_its_secrets() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://user:pw@host:1/0", "redis://user:***@host:1/0"),
            ("rediss://:pw@host", "rediss://:***@host"),
            ("redis://pw@host", "redis://***@host"),
            // Unencoded `/` and `+` in the password once made it show (and the
            // URL be misread as an unreachable host).
            (
                "redis://app:Zx9/Qm+kL2@127.0.0.1:6379/0",
                "redis://app:***@127.0.0.1:6379/0",
            ),
            ("redis://app:a@b?c#d@host/0", "redis://app:***@host/0"),
            (
                "redis+unix:///run/redis.sock?db=0&pass=pw",
                "redis+unix:///run/redis.sock?db=0&pass=***",
            ),
            (
                "unix:///run/redis.sock?pass=pw",
                "unix:///run/redis.sock?pass=***",
            ),
            (
                "postgres://app:s3cret@db:5432/app?sslmode=require",
                "postgres://app:***@db:5432/app?sslmode=require",
            ),
            (
                "postgres://db/app?user=app&password=s3cret",
                "postgres://db/app?user=app&password=***",
            ),
            (
                "postgresql://db/app?PassWord=s3cret#x",
                "postgresql://db/app?PassWord=***#x",
            ),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            (
                "https://hooks:tok@sms.example/send?token=t0k&to=1",
                "https://hooks:***@sms.example/send?token=***&to=1",
            ),
            (
                "https://sms.example/send?api_key=k&x=1",
                "https://sms.example/send?api_key=***&x=1",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn no_secret_survives_in_any_position() {
        let secret = "Zx9/Qm+kL2";
        for url in [
            format!("redis://app:{secret}@127.0.0.1:6379/0"),
            format!("redis://:{secret}@h"),
            format!("redis+unix:///s.sock?pass={secret}"),
            format!("postgres://h/d?password={secret}"),
            format!("https://u:{secret}@h/p?token={secret}"),
        ] {
            assert!(!redact_url(&url).contains(secret), "{url}");
        }
    }
}
