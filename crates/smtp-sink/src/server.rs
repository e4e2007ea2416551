//! The SMTP conversation: one task per connection.

use std::sync::Arc;

use chrono::Utc;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use crate::{ReceivedMessage, Reply, Shared, SmtpCommand};

/// Longest command line accepted (RFC 5321 says 512 octets; extensions make it more).
const MAX_COMMAND_LINE: usize = 4096;

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let connection_stop = stopped.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let number = shared.connection_opened();
                    debug!(%peer, number, "smtp-sink: connection accepted");
                    let shared = shared.clone();
                    let mut stopped = connection_stop.clone();
                    tokio::spawn(async move {
                        let (read, write) = stream.into_split();
                        tokio::select! {
                            result = converse(read, write, &shared, number) => {
                                if let Err(error) = result {
                                    debug!(%error, number, "smtp-sink: connection ended with an error");
                                }
                            }
                            _ = stopped.changed() => {}
                        }
                        shared.connection_closed();
                    });
                }
                Err(error) => {
                    debug!(%error, "smtp-sink: accept failed");
                    tokio::task::yield_now().await;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<String>,
}

enum AuthStep {
    None,
    PlainResponse,
    LoginUser,
    LoginPassword(String),
}

struct Session<W> {
    write: BufWriter<W>,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    async fn reply(&mut self, code: u16, text: &str) -> std::io::Result<()> {
        self.write
            .write_all(format!("{code} {text}\r\n").as_bytes())
            .await?;
        self.write.flush().await
    }

    async fn reply_with(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.reply(reply.code, &reply.text).await
    }
}

async fn converse<R, W>(
    read: R,
    write: W,
    shared: &Shared,
    connection: usize,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hostname = shared.options.hostname.clone();
    let mut reader = BufReader::new(read);
    let mut session = Session {
        write: BufWriter::new(write),
    };
    session
        .reply(220, &format!("{hostname} ESMTP smtp-sink ready"))
        .await?;

    let mut transaction = Transaction::default();
    let mut auth_user: Option<String> = None;
    let mut auth_step = AuthStep::None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_COMMAND_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            session.reply(500, "5.5.2 line too long").await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);

        // Continuation lines of AUTH.
        match std::mem::replace(&mut auth_step, AuthStep::None) {
            AuthStep::None => {}
            AuthStep::PlainResponse => {
                auth_user = finish_plain(text);
                session.reply(235, "2.7.0 authentication succeeded").await?;
                continue;
            }
            AuthStep::LoginUser => {
                let user = decode_text(text).unwrap_or_default();
                auth_step = AuthStep::LoginPassword(user);
                session.reply(334, "UGFzc3dvcmQ6").await?;
                continue;
            }
            AuthStep::LoginPassword(user) => {
                auth_user = Some(user);
                session.reply(235, "2.7.0 authentication succeeded").await?;
                continue;
            }
        }

        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        let command = match verb.as_str() {
            "EHLO" | "HELO" => Some(SmtpCommand::Hello),
            "MAIL" => Some(SmtpCommand::Mail),
            "RCPT" => Some(SmtpCommand::Rcpt),
            "DATA" => Some(SmtpCommand::Data),
            "RSET" => Some(SmtpCommand::Rset),
            "NOOP" => Some(SmtpCommand::Noop),
            "AUTH" => Some(SmtpCommand::Auth),
            _ => None,
        };
        if let Some(command) = command
            && let Some(reply) = shared.take_fault(command)
        {
            session.reply_with(&reply).await?;
            continue;
        }

        match verb.as_str() {
            "EHLO" => {
                transaction = Transaction::default();
                let lines = [
                    format!("250-{hostname} greets {argument}"),
                    "250-8BITMIME".to_owned(),
                    "250-SMTPUTF8".to_owned(),
                    "250-AUTH PLAIN LOGIN".to_owned(),
                    format!("250 SIZE {}", shared.options.max_message_bytes),
                ];
                session
                    .write
                    .write_all((lines.join("\r\n") + "\r\n").as_bytes())
                    .await?;
                session.write.flush().await?;
            }
            "HELO" => {
                transaction = Transaction::default();
                session.reply(250, &hostname).await?;
            }
            "AUTH" => {
                let mut words = argument.split_whitespace();
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next();
                match (mechanism.as_str(), initial) {
                    ("PLAIN", Some(response)) => {
                        auth_user = finish_plain(response);
                        session.reply(235, "2.7.0 authentication succeeded").await?;
                    }
                    ("PLAIN", None) => {
                        auth_step = AuthStep::PlainResponse;
                        session.reply(334, "").await?;
                    }
                    ("LOGIN", Some(user)) => {
                        auth_step = AuthStep::LoginPassword(decode_text(user).unwrap_or_default());
                        session.reply(334, "UGFzc3dvcmQ6").await?;
                    }
                    ("LOGIN", None) => {
                        auth_step = AuthStep::LoginUser;
                        session.reply(334, "VXNlcm5hbWU6").await?;
                    }
                    _ => {
                        session
                            .reply(504, "5.5.4 unrecognized authentication type")
                            .await?
                    }
                }
            }
            "MAIL" => match path_argument(argument, "FROM:") {
                Some(from) => {
                    transaction = Transaction {
                        from: Some(from),
                        recipients: Vec::new(),
                    };
                    session.reply(250, "2.1.0 sender ok").await?;
                }
                None => {
                    session
                        .reply(501, "5.5.4 syntax: MAIL FROM:<address>")
                        .await?
                }
            },
            "RCPT" => {
                if transaction.from.is_none() {
                    session.reply(503, "5.5.1 need MAIL before RCPT").await?;
                } else {
                    match path_argument(argument, "TO:") {
                        Some(to) if !to.is_empty() => {
                            transaction.recipients.push(to);
                            session.reply(250, "2.1.5 recipient ok").await?;
                        }
                        _ => {
                            session
                                .reply(501, "5.5.4 syntax: RCPT TO:<address>")
                                .await?
                        }
                    }
                }
            }
            "DATA" => {
                if transaction.recipients.is_empty() {
                    session.reply(503, "5.5.1 need RCPT before DATA").await?;
                    continue;
                }
                session
                    .reply(354, "end data with <CR><LF>.<CR><LF>")
                    .await?;
                let data = read_data(&mut reader, shared.options.max_message_bytes).await?;
                let envelope = std::mem::take(&mut transaction);
                let Some(data) = data else {
                    session.reply(552, "5.3.4 message too big").await?;
                    continue;
                };
                if let Some(reply) = shared.take_fault(SmtpCommand::MessageEnd) {
                    session.reply_with(&reply).await?;
                    continue;
                }
                shared.record(ReceivedMessage {
                    envelope_from: envelope.from.unwrap_or_default(),
                    recipients: envelope.recipients,
                    data,
                    auth_user: auth_user.clone(),
                    connection,
                    received_at: Utc::now(),
                });
                session.reply(250, "2.0.0 queued").await?;
            }
            "RSET" => {
                transaction = Transaction::default();
                session.reply(250, "2.0.0 reset").await?;
            }
            "NOOP" => session.reply(250, "2.0.0 ok").await?,
            "QUIT" => {
                session.reply(221, "2.0.0 bye").await?;
                return Ok(());
            }
            "" => session.reply(500, "5.5.2 empty command").await?,
            _ => session.reply(502, "5.5.1 command not implemented").await?,
        }
    }
}

/// Reads message data up to the line holding a single `.`, undoing dot-stuffing.
/// `None` when it is larger than `max` bytes (the data is still read to its end).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed inside DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let unstuffed = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        if data.len() + unstuffed.len() > max {
            too_big = true;
        }
        if !too_big {
            data.extend_from_slice(unstuffed);
        }
    }
    Ok((!too_big).then(|| String::from_utf8_lossy(&data).into_owned()))
}

/// The address of `FROM:<a@b>` / `TO:<a@b>` (parameters after it ignored).
fn path_argument(argument: &str, prefix: &str) -> Option<String> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

/// The user of an `AUTH PLAIN` response (`authzid NUL authcid NUL password`).
fn finish_plain(response: &str) -> Option<String> {
    let decoded = crate::mime::decode_base64(response.trim())?;
    let text = String::from_utf8_lossy(&decoded).into_owned();
    text.split('\0').nth(1).map(str::to_owned)
}

fn decode_text(encoded: &str) -> Option<String> {
    crate::mime::decode_base64(encoded.trim())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_paths() {
        assert_eq!(
            path_argument("FROM:<a@b.c> SIZE=10", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(
            path_argument("from: <a@b.c>", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(path_argument("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_argument("TO:a@b.c", "TO:"), None);
    }
}
