//! Just enough MIME to read back what a test sent: headers (unfolded, RFC 2047
//! words decoded), multipart bodies, base64 and quoted-printable.

use std::io::Write;

use crate::ReceivedMessage;

/// One leaf part of a message, decoded from its transfer encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MimePart {
    /// The `Content-Type` value (parameters included), empty when absent.
    pub content_type: String,
    /// The part's headers, unfolded.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from base64 or quoted-printable.
    pub body: String,
}

impl MimePart {
    /// True when the media type (before any `;`) is `media_type`, case-insensitive.
    pub fn is_type(&self, media_type: &str) -> bool {
        self.content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case(media_type)
    }
}

/// Splits at the first empty line: (headers, body).
pub(crate) fn split_head_body(data: &str) -> (&str, &str) {
    if let Some(index) = data.find("\r\n\r\n") {
        (&data[..index + 2], &data[index + 4..])
    } else if let Some(index) = data.find("\n\n") {
        (&data[..index + 1], &data[index + 2..])
    } else {
        (data, "")
    }
}

/// Header lines, continuation lines folded back into their header.
pub(crate) fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A parameter of a header value (`boundary="x"`).
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

pub(crate) fn parse_parts(data: &str) -> Vec<MimePart> {
    let (head, body) = split_head_body(data);
    let headers = parse_headers(head);
    let mut parts = Vec::new();
    collect_parts(headers, body, &mut parts, 0);
    parts
}

fn collect_parts(
    headers: Vec<(String, String)>,
    body: &str,
    parts: &mut Vec<MimePart>,
    depth: usize,
) {
    let content_type = header(&headers, "Content-Type")
        .unwrap_or_default()
        .to_owned();
    let is_multipart = content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/");
    if is_multipart
        && depth < 8
        && let Some(boundary) = parameter(&content_type, "boundary")
    {
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk
                .strip_prefix("\r\n")
                .or_else(|| chunk.strip_prefix('\n'))
                .unwrap_or(chunk);
            // The CRLF before the next delimiter belongs to the delimiter.
            let chunk = chunk
                .strip_suffix("\r\n")
                .or_else(|| chunk.strip_suffix('\n'))
                .unwrap_or(chunk);
            let (head, body) = split_head_body(chunk);
            collect_parts(parse_headers(head), body, parts, depth + 1);
        }
        return;
    }
    let encoding = header(&headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "base64" => decode_base64(body)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|| body.to_owned()),
        "quoted-printable" => String::from_utf8_lossy(&decode_quoted_printable(body)).into_owned(),
        _ => body.to_owned(),
    };
    parts.push(MimePart {
        content_type,
        headers,
        body,
    });
}

/// Decodes standard base64, ignoring whitespace; `None` on a bad character.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes quoted-printable: `=XX` escapes and `=` soft line breaks.
pub(crate) fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok());
            if let Some(byte) = hex.and_then(|pair| u8::from_str_radix(pair, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); the
/// whitespace between two adjacent encoded words is dropped, as the RFC says.
pub(crate) fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    loop {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            return out;
        };
        let (before, candidate) = rest.split_at(start);
        match decode_one_word(candidate) {
            Some((decoded, used)) => {
                if !(after_word && before.chars().all(|c| c == ' ' || c == '\t')) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = &candidate[used..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
}

/// One encoded word at the start of `text`: (decoded, bytes used).
fn decode_one_word(text: &str) -> Option<(String, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, after_charset) = inner.split_once('?')?;
    let (encoding, after_encoding) = after_charset.split_once('?')?;
    let end = after_encoding.find("?=")?;
    let payload = &after_encoding[..end];
    let bytes = match encoding {
        "B" | "b" => decode_base64(payload)?,
        "Q" | "q" => decode_quoted_printable(&payload.replace('_', " ")),
        _ => return None,
    };
    let used = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), used))
}

/// Appends one message in mboxrd format.
pub(crate) fn write_mbox(file: &mut impl Write, message: &ReceivedMessage) -> std::io::Result<()> {
    let from = if message.envelope_from.is_empty() {
        "MAILER-DAEMON"
    } else {
        &message.envelope_from
    };
    let mut text = format!(
        "From {from} {}\n",
        message.received_at.format("%a %b %e %H:%M:%S %Y")
    );
    for line in message.data.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start_matches('>').starts_with("From ") {
            text.push('>');
        }
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_quoted_printable() {
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(decode_base64("aGVs\r\nbG8=").unwrap(), b"hello");
        assert!(decode_base64("***").is_none());
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 =\r\nau lait"),
            "café au lait".as_bytes()
        );
    }

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(decode_encoded_words("=?utf-8?b?Y2Fmw6k=?="), "café");
        assert_eq!(
            decode_encoded_words("=?utf-8?q?caf=C3=A9_au?= =?utf-8?q?_lait?="),
            "café au lait"
        );
        assert_eq!(decode_encoded_words("plain subject"), "plain subject");
        assert_eq!(
            decode_encoded_words("Re: =?utf-8?b?Y2Fmw6k=?= ok"),
            "Re: café ok"
        );
    }

    #[test]
    fn reads_multipart_alternative() {
        let data = "Subject: x\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
            --b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo\r\n\
            --b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n\
            --b1--\r\n";
        let parts = parse_parts(data);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].is_type("text/plain"));
        assert_eq!(parts[0].body, "héllo");
        assert_eq!(parts[1].body, "<b>hi</b>");
    }

    #[test]
    fn unfolds_headers() {
        let headers = parse_headers("Subject: a\r\n b\r\nTo: x@y\r\n");
        assert_eq!(headers[0], ("Subject".to_owned(), "a b".to_owned()));
        assert_eq!(headers[1].0, "To");
    }
}
