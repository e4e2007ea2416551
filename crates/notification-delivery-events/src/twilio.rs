//! Twilio Programmable Messaging status callbacks (`StatusCallback`).
//!
//! Twilio posts `application/x-www-form-urlencoded` parameters and signs the
//! request: `X-Twilio-Signature` is the base64 HMAC-SHA1, keyed with the account's
//! auth token, of the full URL Twilio called (scheme, host, path and query string,
//! exactly as configured) followed by every POST parameter's name and value,
//! sorted by name. The URL is not in the request body, so the caller passes the
//! URL it configured (behind a proxy, the public URL, not the local one). As
//! Twilio's own libraries do, the URL is tried as given and with its default port
//! (`:443`/`:80`) added or removed.
//!
//! `MessageStatus` mapped: `delivered` → [`Delivered`](DeliveryKind::Delivered);
//! `undelivered` and `failed` → [`Failed`](DeliveryKind::Failed), the reason being
//! `ErrorCode` (and `ErrorMessage` when sent). `queued`, `accepted`, `scheduled`,
//! `sending`, `sent`, `receiving`, `received`, `read`, `canceled` … yield no event.
//! Status callbacks carry no event time: `occurred_at` is the time of parsing.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::util::{base64_decode, malformed};
use crate::{
    DeliveryEvent, DeliveryEventError, DeliveryKind, Headers, Provider, Result, required_header,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Verifies and parses Twilio status callbacks.
///
/// ```
/// use notification_delivery_events::{DeliveryKind, twilio::TwilioVerifier};
///
/// let verifier = TwilioVerifier::new("12345");
/// let url = "https://example.com/twilio/status";
/// let body = b"MessageSid=SM1234567890abcdef&MessageStatus=delivered&To=%2B15558675310";
/// let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
/// let signature = TwilioVerifier::sign("12345", url, &params);
/// let headers = [("X-Twilio-Signature", signature.as_str())];
/// let events = verifier.parse(url, body, &headers[..])?;
/// assert_eq!(events[0].kind, DeliveryKind::Delivered);
/// assert_eq!(events[0].recipient.as_deref(), Some("+15558675310"));
/// # Ok::<(), notification_delivery_events::DeliveryEventError>(())
/// ```
#[derive(Clone)]
pub struct TwilioVerifier {
    auth_token: Vec<u8>,
}

impl std::fmt::Debug for TwilioVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioVerifier").finish_non_exhaustive()
    }
}

impl TwilioVerifier {
    /// A verifier for the account's auth token.
    pub fn new(auth_token: impl AsRef<[u8]>) -> Self {
        TwilioVerifier {
            auth_token: auth_token.as_ref().to_vec(),
        }
    }

    /// The base64 signature Twilio computes for `url` and POST `params`.
    ///
    /// ```
    /// # use notification_delivery_events::twilio::TwilioVerifier;
    /// // Twilio's documented example (api-snippets, security/signature_validation).
    /// let params = [
    ///     ("CallSid", "CA1234567890ABCDE"),
    ///     ("Caller", "+14158675310"),
    ///     ("Digits", "1234"),
    ///     ("From", "+14158675310"),
    ///     ("To", "+18005551212"),
    /// ];
    /// assert_eq!(
    ///     TwilioVerifier::sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
    ///     "GvWf1cFY/Q7PnoempGyD5oXAezc="
    /// );
    /// ```
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(
        auth_token: impl AsRef<[u8]>,
        url: &str,
        params: &[(K, V)],
    ) -> String {
        crate::util::base64_encode(
            &mac(auth_token.as_ref(), url, params)
                .finalize()
                .into_bytes(),
        )
    }

    /// Verifies the signature of a callback to `url` (the full URL Twilio was
    /// given, query string included) with form body `body`.
    pub fn verify<H: Headers + ?Sized>(&self, url: &str, body: &[u8], headers: &H) -> Result<()> {
        let params = parse_form(body)?;
        self.verify_params(url, &params, headers)
    }

    fn verify_params<H: Headers + ?Sized>(
        &self,
        url: &str,
        params: &[(String, String)],
        headers: &H,
    ) -> Result<()> {
        let signature = required_header(headers, SIGNATURE_HEADER)?;
        let expected = base64_decode(signature).ok_or(DeliveryEventError::BadSignature)?;
        for candidate in url_variants(url) {
            if mac(&self.auth_token, &candidate, params)
                .verify_slice(&expected)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(DeliveryEventError::BadSignature)
    }

    /// Verifies and parses a status callback; `occurred_at` is now.
    pub fn parse<H: Headers + ?Sized>(
        &self,
        url: &str,
        body: &[u8],
        headers: &H,
    ) -> Result<Vec<DeliveryEvent>> {
        self.parse_at(url, body, headers, Utc::now())
    }

    /// As [`parse`](Self::parse), with the time of receipt given.
    pub fn parse_at<H: Headers + ?Sized>(
        &self,
        url: &str,
        body: &[u8],
        headers: &H,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<DeliveryEvent>> {
        let params = parse_form(body)?;
        self.verify_params(url, &params, headers)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        // SMS/MMS callbacks say MessageStatus; older ones SmsStatus.
        let status = get("MessageStatus")
            .or_else(|| get("SmsStatus"))
            .ok_or_else(|| malformed("no MessageStatus"))?;
        let kind = match status {
            "delivered" => DeliveryKind::Delivered,
            "undelivered" | "failed" => DeliveryKind::Failed,
            _ => return Ok(Vec::new()),
        };
        let provider_message_id = get("MessageSid")
            .or_else(|| get("SmsSid"))
            .ok_or_else(|| malformed("no MessageSid"))?
            .to_owned();
        let reason = match (get("ErrorCode"), get("ErrorMessage")) {
            (Some(code), Some(msg)) => Some(format!("ErrorCode {code}: {msg}")),
            (Some(code), None) => Some(format!("ErrorCode {code}")),
            (None, msg) => msg.map(str::to_owned),
        };
        Ok(vec![DeliveryEvent {
            provider: Provider::Twilio,
            provider_message_id,
            notification_id: None,
            recipient: get("To").map(str::to_owned),
            kind,
            reason,
            occurred_at: received_at,
        }])
    }
}

fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).map_err(|e| malformed(format!("invalid form body: {e}")))
}

fn mac<K: AsRef<str>, V: AsRef<str>>(key: &[u8], url: &str, params: &[(K, V)]) -> Hmac<Sha1> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// `url` as given, then with its scheme's default port added (when it has none) or
/// removed (when it has the default one).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Ok(parsed) = url::Url::parse(url) else {
        return out;
    };
    let default = match parsed.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return out,
    };
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return out;
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let suffix = format!(":{default}");
    let variant = if let Some(stripped) = authority.strip_suffix(&suffix) {
        format!("{}{stripped}{tail}", &url[..scheme_end])
    } else if parsed.port().is_none() {
        format!("{}{authority}{suffix}{tail}", &url[..scheme_end])
    } else {
        return out;
    };
    out.push(variant);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("https://a.example:443/x"),
            ["https://a.example:443/x", "https://a.example/x"]
        );
        assert_eq!(
            url_variants("https://a.example:8443/x"),
            ["https://a.example:8443/x"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }
}
