//! SSL listeners, from a rustls client: the handshake and ApiVersions bytes over TLS, the
//! principal of a client certificate, `ssl.client.auth=required`, a client that trusts another
//! CA, garbage and plaintext clients on a TLS port (each closes its own connection only), a
//! handshake that never finishes, and the start-up errors of keystores sprat cannot read.
//! Certificates are made per test by scripts/gen-test-certs (openssl).

use crate::harness::{TestBroker, decode_response, request_frame, temp_dir};
use crate::listeners::refused_start;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sprat::protocol::messages::{
    api_versions as av, sasl_authenticate as sa, sasl_handshake as sh,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory of fresh test certificates (see scripts/gen-test-certs).
fn certificates(name: &str) -> PathBuf {
    let dir = temp_dir(&format!("{name}-certs"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-test-certs");
    let status = Command::new(script).arg(&dir).status().unwrap();
    assert!(status.success(), "gen-test-certs failed");
    dir
}

/// A broker with a PLAINTEXT listener (the harness's) and an SSL one using `certs`'s broker
/// keystore; returns the SSL listener's address.
fn ssl_broker(name: &str, certs: &Path, extra: &[&str]) -> (TestBroker, SocketAddr) {
    let port = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}");
    let keystore = format!(
        "ssl.keystore.location={}",
        certs.join("broker.pem").display()
    );
    let truststore = format!("ssl.truststore.location={}", certs.join("ca.pem").display());
    let mut lines = vec![
        listeners.as_str(),
        "ssl.keystore.type=PEM",
        keystore.as_str(),
        "ssl.truststore.type=PEM",
        truststore.as_str(),
    ];
    lines.extend_from_slice(extra);
    let broker = TestBroker::start_with(name, |_| {}, &lines);
    (broker, format!("127.0.0.1:{port}").parse().unwrap())
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects over TLS, trusting `ca` and presenting `identity` (a key + certificate PEM) if
/// given, and completes the handshake.
fn tls_connect(addr: SocketAddr, ca: &Path, identity: Option<&Path>) -> io::Result<TlsStream> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket)?;
    }
    Ok(StreamOwned::new(conn, socket))
}

/// Sends ApiVersions v3 over `stream` and returns the response frame (without its size).
fn api_versions_frame(stream: &mut impl ReadWrite) -> io::Result<Vec<u8>> {
    let request = av::ApiVersionsRequest {
        client_software_name: "sprat-tls-test".into(),
        client_software_version: "1".into(),
    };
    let frame = request_frame(av::API_KEY, 3, 7, |e| request.encode(e, 3));
    stream.write_all(&frame)?;
    stream.flush()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn assert_api_versions(frame: &[u8]) {
    let response = decode_response(frame, 7, false, 3, av::ApiVersionsResponse::decode);
    assert_eq!(response.error_code, 0);
    assert!(
        response
            .api_keys
            .iter()
            .any(|k| k.api_key == av::API_KEY && k.max_version >= 3)
    );
}

/// The broker's log so far, read until it contains `needle`.
fn log_until(broker: &TestBroker, needle: &str) -> String {
    let mut log = String::new();
    for _ in 0..100 {
        for line in broker.drain_log() {
            log.push_str(&line);
            log.push('\n');
        }
        if log.contains(needle) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the broker never logged {needle:?}:\n{log}");
}

/// Whether a TLS connection is refused: the handshake fails, or (TLS 1.3 sends the server's
/// verdict on the client certificate after the client's handshake ends) the first request does.
fn refused(result: io::Result<TlsStream>) -> bool {
    match result {
        Err(_) => true,
        Ok(mut stream) => api_versions_frame(&mut stream).is_err(),
    }
}

/// Reads until the broker closes `stream`: it may first send a TLS alert record (type 21),
/// nothing else.
fn assert_closed_after_alert(stream: &mut TcpStream, sent: &[u8]) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {sent:02x?}: not closed ({e}); got {received:02x?}"),
        }
    }
    assert!(
        received.is_empty() || received[0] == 21,
        "after {sent:02x?}: got {received:02x?}"
    );
}

#[test]
fn api_versions_over_tls_and_the_client_certificate_principal() {
    let certs = certificates("tls_api_versions");
    let (broker, addr) = ssl_broker("tls_api_versions", &certs, &["ssl.client.auth=requested"]);
    let mut anonymous = tls_connect(addr, &certs.join("ca.pem"), None).unwrap();
    assert_api_versions(&api_versions_frame(&mut anonymous).unwrap());
    // Two requests on one connection: the stream keeps its framing across TLS records.
    assert_api_versions(&api_versions_frame(&mut anonymous).unwrap());
    let mut client =
        tls_connect(addr, &certs.join("ca.pem"), Some(&certs.join("client.pem"))).unwrap();
    assert_api_versions(&api_versions_frame(&mut client).unwrap());
    log_until(
        &broker,
        "authenticated as User:CN=client,OU=eng,O=acme by its certificate",
    );
    broker.assert_no_panics();
}

#[test]
fn client_auth_required_refuses_a_client_without_a_trusted_certificate() {
    let certs = certificates("tls_client_auth");
    let (broker, addr) = ssl_broker("tls_client_auth", &certs, &["ssl.client.auth=required"]);
    let ca = certs.join("ca.pem");
    assert!(refused(tls_connect(addr, &ca, None)), "no certificate");
    assert!(
        refused(tls_connect(addr, &ca, Some(&certs.join("stranger.pem")))),
        "a certificate of another CA"
    );
    let mut client = tls_connect(addr, &ca, Some(&certs.join("client.pem"))).unwrap();
    assert_api_versions(&api_versions_frame(&mut client).unwrap());
    broker.assert_no_panics();
}

#[test]
fn a_client_trusting_another_ca_refuses_the_broker() {
    let certs = certificates("tls_other_ca");
    let (broker, addr) = ssl_broker("tls_other_ca", &certs, &[]);
    assert!(tls_connect(addr, &certs.join("other-ca.pem"), None).is_err());
    let mut client = tls_connect(addr, &certs.join("ca.pem"), None).unwrap();
    assert_api_versions(&api_versions_frame(&mut client).unwrap());
    broker.assert_no_panics();
}

#[test]
fn garbage_and_plaintext_clients_close_only_their_own_connection() {
    let certs = certificates("tls_garbage");
    let (broker, addr) = ssl_broker("tls_garbage", &certs, &[]);
    let mut established = tls_connect(addr, &certs.join("ca.pem"), None).unwrap();
    // Random-looking bytes, a TLS record header with an absurd length, and a plaintext Kafka
    // request.
    let plaintext = request_frame(av::API_KEY, 2, 1, |e| {
        av::ApiVersionsRequest::default().encode(e, 2)
    });
    let inputs: [&[u8]; 3] = [
        b"\x8f\x01garbage that is not TLS at all\r\n\r\n",
        b"\x16\x03\x01\xff\xff\x01\x00\xff\xfb",
        &plaintext,
    ];
    for bytes in inputs {
        let mut raw = crate::harness::Client::connect(addr);
        raw.send_raw(bytes);
        assert_closed_after_alert(&mut raw.stream, bytes);
    }
    assert_api_versions(&api_versions_frame(&mut established).unwrap());
    let plain = broker.connect();
    let mut plain_stream = plain.stream.try_clone().unwrap();
    assert_api_versions(&api_versions_frame(&mut plain_stream).unwrap());
    broker.assert_no_panics();
}

#[test]
fn a_handshake_that_never_finishes_is_closed() {
    let certs = certificates("tls_stalled");
    let (broker, addr) = ssl_broker("tls_stalled", &certs, &["connections.max.idle.ms=1000"]);
    // Half a ClientHello, then silence.
    let mut raw = crate::harness::Client::connect(addr);
    raw.send_raw(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03");
    raw.assert_closed();
    let mut silent = crate::harness::Client::connect(addr);
    silent.assert_closed();
    broker.assert_no_panics();
}

#[test]
fn an_encrypted_key_is_read_with_ssl_key_password() {
    let certs = certificates("tls_encrypted_key");
    let keystore = format!(
        "listener.name.ssl.ssl.keystore.location={}",
        certs.join("broker-encrypted.pem").display()
    );
    let (broker, addr) = ssl_broker(
        "tls_encrypted_key",
        &certs,
        &[&keystore, "ssl.key.password=key-secret"],
    );
    let mut client = tls_connect(addr, &certs.join("ca.pem"), None).unwrap();
    assert_api_versions(&api_versions_frame(&mut client).unwrap());
    let log = log_until(&broker, "SSL");
    assert!(!log.contains("key-secret"), "{log}");
}

/// Sends one request over `stream` and decodes its response (header v0 or v1 as the API says).
fn call<T>(
    stream: &mut TlsStream,
    api_key: i16,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut sprat::protocol::wire::Encoder),
    decode: impl FnOnce(
        &mut sprat::protocol::wire::Decoder<'_>,
        i16,
    ) -> sprat::protocol::wire::DecodeResult<T>,
) -> T {
    stream
        .write_all(&request_frame(api_key, version, correlation_id, body))
        .unwrap();
    stream.flush().unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame).unwrap();
    let tagged = sprat::protocol::response_header_is_flexible(api_key, version);
    decode_response(&frame, correlation_id, tagged, version, decode)
}

#[test]
fn sasl_ssl_authenticates_inside_tls_and_its_principal_wins_over_the_certificate() {
    let certs = certificates("tls_sasl_ssl");
    let port = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{port}");
    let keystore = format!(
        "ssl.keystore.location={}",
        certs.join("broker.pem").display()
    );
    let truststore = format!("ssl.truststore.location={}", certs.join("ca.pem").display());
    let jaas = r#"listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;
    let lines = [
        listeners.as_str(),
        &keystore,
        &truststore,
        "ssl.client.auth=required",
        "sasl.enabled.mechanisms=PLAIN",
        jaas,
    ];
    let broker = TestBroker::start_with("tls_sasl_ssl", |_| {}, &lines);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut stream =
        tls_connect(addr, &certs.join("ca.pem"), Some(&certs.join("client.pem"))).unwrap();
    let handshake = sh::SaslHandshakeRequest {
        mechanism: "PLAIN".into(),
    };
    let response = call(
        &mut stream,
        sh::API_KEY,
        1,
        1,
        |e| handshake.encode(e, 1),
        sh::SaslHandshakeResponse::decode,
    );
    assert_eq!(
        (response.error_code, response.mechanisms),
        (0, vec!["PLAIN".to_string()])
    );
    let token = sa::SaslAuthenticateRequest {
        auth_bytes: b"\0alice\0alice-secret".to_vec(),
    };
    let response = call(
        &mut stream,
        sa::API_KEY,
        2,
        2,
        |e| token.encode(e, 2),
        sa::SaslAuthenticateResponse::decode,
    );
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    assert_api_versions(&api_versions_frame(&mut stream).unwrap());
    let log = log_until(&broker, "authenticated as User:alice with PLAIN");
    assert!(!log.contains("by its certificate"), "{log}");
    // Without SASL, nothing but ApiVersions and SaslHandshake is served, certificate or not.
    let mut unauthenticated =
        tls_connect(addr, &certs.join("ca.pem"), Some(&certs.join("client.pem"))).unwrap();
    let metadata = request_frame(3, 12, 9, |e| {
        sprat::protocol::messages::metadata::MetadataRequest::default().encode(e, 12)
    });
    unauthenticated.write_all(&metadata).unwrap();
    unauthenticated.flush().unwrap();
    let mut byte = [0u8; 1];
    assert!(
        !matches!(unauthenticated.read(&mut byte), Ok(1)),
        "a request before SASL was answered"
    );
    broker.assert_no_panics();
}

/// A PEM file as a server.properties value: its lines joined by `\` continuations.
fn inline(key: &str, pem_file: &Path) -> String {
    let text = std::fs::read_to_string(pem_file).unwrap();
    format!(
        "{key}={}",
        text.trim().lines().collect::<Vec<_>>().join("\\\n")
    )
}

#[test]
fn inline_keys_and_certificates_are_read_and_listener_keys_win() {
    let certs = certificates("tls_inline");
    let port = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}");
    let key = inline(
        "listener.name.ssl.ssl.keystore.key",
        &certs.join("broker-key.pem"),
    );
    let chain = inline(
        "listener.name.ssl.ssl.keystore.certificate.chain",
        &certs.join("broker-cert.pem"),
    );
    let trusted = inline("ssl.truststore.certificates", &certs.join("ca.pem"));
    let lines = [
        listeners.as_str(),
        "ssl.client.auth=none",
        "listener.name.ssl.ssl.keystore.type=PEM",
        &key,
        &chain,
        &trusted,
        "listener.name.ssl.ssl.client.auth=required",
    ];
    let broker = TestBroker::start_with("tls_inline", |_| {}, &lines);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ca = certs.join("ca.pem");
    assert!(
        refused(tls_connect(addr, &ca, None)),
        "client auth is required"
    );
    let mut client = tls_connect(addr, &ca, Some(&certs.join("client.pem"))).unwrap();
    assert_api_versions(&api_versions_frame(&mut client).unwrap());
    let log = log_until(&broker, "by its certificate");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn keystores_sprat_cannot_read_are_refused_at_start_up_naming_the_key() {
    let certs = certificates("tls_refused");
    let listeners = "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0";
    let pem = format!(
        "ssl.keystore.location={}",
        certs.join("broker.pem").display()
    );
    let encrypted = format!(
        "ssl.keystore.location={}",
        certs.join("broker-encrypted.pem").display()
    );
    let inline_key = inline("ssl.keystore.key", &certs.join("broker-key.pem"));
    let binary = certs.join("store.jks");
    std::fs::write(&binary, b"\xfe\xed\xfe\xed\x00\x00\x00\x02 not PEM").unwrap();
    let untyped_jks = format!("ssl.keystore.location={}", binary.display());
    let cases: [(&[&str], &str); 7] = [
        (&[&untyped_jks], "not JKS or PKCS12"),
        (
            &[&pem, &inline_key],
            "both ssl.keystore.location and ssl.keystore.key",
        ),
        (&["ssl.keystore.type=JKS", &pem], "ssl.keystore.type=JKS"),
        (
            &["ssl.keystore.location=/nonexistent/keystore.pem"],
            "ssl.keystore.location=/nonexistent/keystore.pem",
        ),
        (&[&encrypted], "ssl.key.password"),
        (
            &[&encrypted, "ssl.key.password=wrong-secret"],
            "ssl.key.password",
        ),
        (
            &[&pem, "ssl.client.auth=required"],
            "ssl.truststore.location",
        ),
    ];
    for (lines, expected) in cases {
        let mut all = vec![listeners];
        all.extend_from_slice(lines);
        let stderr = refused_start("tls_refused", &all);
        assert!(stderr.contains(expected), "{lines:?}: {stderr}");
        assert!(!stderr.contains("wrong-secret"), "{stderr}");
    }
}

#[test]
fn a_connection_the_broker_closes_ends_with_close_notify() {
    let certs = certificates("tls_close_notify");
    let (broker, addr) = ssl_broker("tls_close_notify", &certs, &[]);
    let mut client = tls_connect(addr, &certs.join("ca.pem"), None).unwrap();
    // An unknown API key: Kafka, and sprat, close the connection.
    client.write_all(&request_frame(999, 0, 1, |_| {})).unwrap();
    client.flush().unwrap();
    let mut byte = [0u8; 1];
    // rustls reports a clean end (0 bytes) only after close_notify; a bare TCP close is an
    // UnexpectedEof error.
    assert_eq!(client.read(&mut byte).unwrap(), 0);
    broker.assert_no_panics();
}
