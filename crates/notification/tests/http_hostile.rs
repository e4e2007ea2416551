//! HTTP providers against hostile answers on loopback: a redirect to another
//! host, and bodies far larger than any provider sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notification::channel::{
    HttpClientConfig, PhoneNumber, ProviderRetryPolicy, SmsChannel, SmsMessage, TwilioConfig,
    TwilioSmsProvider, WebhookConfig, WebhookSmsProvider,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn one_attempt() -> HttpClientConfig {
    HttpClientConfig::default()
        .with_timeout(Duration::from_secs(20))
        .with_retry(ProviderRetryPolicy::none())
}

fn sms() -> SmsMessage {
    SmsMessage::new(PhoneNumber::parse("+14155550100").unwrap(), "code 123456")
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_nothing_reaches_the_other_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"sid": "SM1"}"#))
        .mount(&elsewhere)
        .await;
    let provider_host = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/steal", elsewhere.uri())),
        )
        .mount(&provider_host)
        .await;

    let webhook = WebhookSmsProvider::new(
        WebhookConfig::new(format!("{}/sms", provider_host.uri())).with_http(one_attempt()),
    )
    .unwrap();
    let twilio = TwilioSmsProvider::new(
        TwilioConfig::new("AC1", "token", PhoneNumber::parse("+15005550006").unwrap())
            .with_base_url(provider_host.uri())
            .with_http(one_attempt()),
    )
    .unwrap();
    // Once: both POSTed the text and the numbers to the other host and
    // recorded a success.
    assert!(webhook.send_sms(&sms()).await.is_err());
    assert!(twilio.send_sms(&sms()).await.is_err());
    let stolen = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        stolen.is_empty(),
        "{} requests reached the other host",
        stolen.len()
    );
}

/// A server that answers every request with `status` and a body of `claimed`
/// bytes, streamed until the client stops reading; counts what it wrote.
async fn flood(status: u16, claimed: u64) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                // One read holds the small request line, headers and body.
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {claimed}\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                while sent < claimed {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (format!("http://{address}"), written)
}

#[tokio::test]
async fn huge_answers_are_read_only_as_far_as_a_bounded_prefix() {
    const GIB: u64 = 1024 * 1024 * 1024;
    for status in [200, 500] {
        let (url, written) = flood(status, GIB).await;
        let provider = WebhookSmsProvider::new(
            WebhookConfig::new(format!("{url}/sms")).with_http(one_attempt()),
        )
        .unwrap();
        let result = provider.send_sms(&sms()).await;
        assert_eq!(result.is_ok(), status == 200, "{status}: {result:?}");
        if let Err(error) = result {
            // The error keeps a short prefix of the body, not a gigabyte.
            assert!(format!("{error}").len() < 4096, "{status}");
        }
        // The client stopped reading: the server could write at most what
        // the socket buffers held, far from the gigabyte it offered (once
        // read whole, 2.1 GB of RSS).
        let wrote = written.load(Ordering::Relaxed);
        assert!(
            wrote < 64 * 1024 * 1024,
            "{status}: the server wrote {wrote} bytes"
        );
    }
}
