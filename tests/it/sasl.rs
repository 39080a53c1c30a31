//! SASL on a SASL_PLAINTEXT listener, from raw bytes: SaslHandshake v0/v1, SaslAuthenticate
//! v0-2 with PLAIN and SCRAM-SHA-256/512, the errors Kafka gives, connections closed before
//! authentication, and SCRAM credentials (AlterUserScramCredentials,
//! DescribeUserScramCredentials) surviving a restart.

use crate::harness::{Client, TestBroker, temp_dir};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use sprat::protocol::messages::alter_user_scram_credentials as alter;
use sprat::protocol::messages::describe_user_scram_credentials as describe;
use sprat::protocol::messages::{
    api_versions as av, metadata as md, sasl_authenticate as sa, sasl_handshake as sh,
};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

const JAAS: &str = r#"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker with a PLAINTEXT listener (the harness's) and a SASL_PLAINTEXT one; returns the
/// SASL listener's address.
fn sasl_broker(name: &str, extra: &[&str]) -> (TestBroker, SocketAddr) {
    let port = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}");
    let mut lines = vec![
        listeners.as_str(),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        JAAS,
    ];
    lines.extend_from_slice(extra);
    let broker = TestBroker::start_with(name, |_| {}, &lines);
    (broker, format!("127.0.0.1:{port}").parse().unwrap())
}

fn handshake(client: &mut Client, version: i16, mechanism: &str) -> sh::SaslHandshakeResponse {
    let request = sh::SaslHandshakeRequest {
        mechanism: mechanism.into(),
    };
    client.call(
        sh::API_KEY,
        version,
        |e| request.encode(e, version),
        sh::SaslHandshakeResponse::decode,
    )
}

fn authenticate(client: &mut Client, version: i16, token: &[u8]) -> sa::SaslAuthenticateResponse {
    let request = sa::SaslAuthenticateRequest {
        auth_bytes: token.to_vec(),
    };
    client.call(
        sa::API_KEY,
        version,
        |e| request.encode(e, version),
        sa::SaslAuthenticateResponse::decode,
    )
}

fn metadata(client: &mut Client) -> md::MetadataResponse {
    client.call(
        md::API_KEY,
        12,
        |e| md::MetadataRequest::default().encode(e, 12),
        md::MetadataResponse::decode,
    )
}

fn api_versions(client: &mut Client) -> av::ApiVersionsResponse {
    client.call(
        av::API_KEY,
        2,
        |e| av::ApiVersionsRequest::default().encode(e, 2),
        av::ApiVersionsResponse::decode,
    )
}

/// Sends a bare token (SaslHandshake v0) and reads the bare answer.
fn raw_token(client: &mut Client, token: &[u8]) -> Vec<u8> {
    let mut frame = (token.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    client.send_raw(&frame);
    client.receive()
}

/// The broker's log so far, read until it contains `needle` (the lines arrive through a pipe).
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
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the broker never logged {needle:?}:\n{log}");
}

#[test]
fn plain_over_sasl_authenticate_then_requests_are_served() {
    let (broker, addr) = sasl_broker("sasl_plain_v1", &[]);
    for version in [0, 1, 2] {
        let mut client = Client::connect(addr);
        let advertised = api_versions(&mut client);
        assert_eq!(advertised.error_code, 0);
        let keys: Vec<i16> = advertised.api_keys.iter().map(|k| k.api_key).collect();
        assert!(keys.contains(&sh::API_KEY) && keys.contains(&sa::API_KEY));
        let response = handshake(&mut client, 1, "PLAIN");
        assert_eq!(response.error_code, 0);
        assert_eq!(
            response.mechanisms,
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        let response = authenticate(&mut client, version, b"\0alice\0alice-secret");
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        assert_eq!(response.session_lifetime_ms, 0);
        let brokers = metadata(&mut client).brokers;
        assert_eq!(brokers[0].port, i32::from(addr.port()));
    }
    let log = log_until(&broker, "authenticated as User:alice with PLAIN");
    assert!(!log.contains("alice-secret"), "a password was logged");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn plain_with_handshake_v0_uses_bare_tokens() {
    let (_broker, addr) = sasl_broker("sasl_plain_v0", &[]);
    let mut client = Client::connect(addr);
    assert_eq!(handshake(&mut client, 0, "PLAIN").error_code, 0);
    assert_eq!(raw_token(&mut client, b"admin\0admin\0admin-secret"), b"");
    assert_eq!(metadata(&mut client).brokers.len(), 1);

    let mut wrong = Client::connect(addr);
    assert_eq!(handshake(&mut wrong, 0, "PLAIN").error_code, 0);
    wrong.send_raw(b"\0\0\0\x0d\0alice\0wrong!");
    assert!(
        wrong.is_closed(),
        "a failed v0 authentication closes the connection"
    );
}

#[test]
fn wrong_password_is_sasl_authentication_failed_then_close() {
    let (broker, addr) = sasl_broker("sasl_plain_wrong", &[]);
    for token in [
        &b"\0alice\0not-her-password"[..],
        b"\0nobody\0alice-secret",
        b"bob\0alice\0alice-secret",
        b"no separators",
    ] {
        let mut client = Client::connect(addr);
        assert_eq!(handshake(&mut client, 1, "PLAIN").error_code, 0);
        let response = authenticate(&mut client, 2, token);
        assert_eq!(response.error_code, 58, "{token:?}");
        assert!(response.error_message.is_some_and(|m| !m.is_empty()));
        assert!(client.is_closed(), "{token:?}");
    }
    let log = log_until(&broker, "failed PLAIN authentication");
    assert!(!log.contains("not-her-password"), "a password was logged");
}

#[test]
fn unsupported_mechanism_lists_the_enabled_ones_then_closes() {
    let (_broker, addr) = sasl_broker("sasl_unsupported", &[]);
    let mut client = Client::connect(addr);
    let response = handshake(&mut client, 1, "GSSAPI");
    assert_eq!(response.error_code, 33);
    assert_eq!(
        response.mechanisms,
        ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    );
    assert!(client.is_closed());
}

#[test]
fn requests_before_authentication_close_the_connection() {
    let (broker, addr) = sasl_broker("sasl_before_auth", &[]);
    // Metadata straight away.
    let mut client = Client::connect(addr);
    client.send(md::API_KEY, 12, |e| {
        md::MetadataRequest::default().encode(e, 12)
    });
    assert!(client.is_closed());
    // Metadata after the handshake but before the token.
    let mut client = Client::connect(addr);
    assert_eq!(handshake(&mut client, 1, "PLAIN").error_code, 0);
    client.send(md::API_KEY, 12, |e| {
        md::MetadataRequest::default().encode(e, 12)
    });
    assert!(client.is_closed());
    // SaslAuthenticate without a handshake.
    let mut client = Client::connect(addr);
    client.send(sa::API_KEY, 2, |e| {
        sa::SaslAuthenticateRequest::default().encode(e, 2)
    });
    assert!(client.is_closed());
    // A frame larger than sasl.server.max.receive.size before authentication.
    let mut client = Client::connect(addr);
    client.send_raw(&(600_000u32).to_be_bytes());
    assert!(client.is_closed());
    // The plaintext listener is unaffected, and answers SASL requests with ILLEGAL_SASL_STATE.
    let mut plain = broker.connect();
    assert_eq!(handshake(&mut plain, 1, "PLAIN").error_code, 34);
    assert_eq!(authenticate(&mut plain, 2, b"x").error_code, 34);
    assert_eq!(metadata(&mut plain).brokers.len(), 1);
    broker.assert_no_panics();
}

#[test]
fn session_lifetime_comes_from_connections_max_reauth_ms() {
    let (_broker, addr) = sasl_broker("sasl_reauth", &["connections.max.reauth.ms=3600000"]);
    let mut client = Client::connect(addr);
    assert_eq!(handshake(&mut client, 1, "PLAIN").error_code, 0);
    let response = authenticate(&mut client, 1, b"\0admin\0admin-secret");
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_lifetime_ms, 3_600_000);
    // Re-authentication on the same connection (KIP-368).
    assert_eq!(handshake(&mut client, 1, "PLAIN").error_code, 0);
    assert_eq!(
        authenticate(&mut client, 1, b"\0alice\0alice-secret").error_code,
        0
    );
    assert_eq!(metadata(&mut client).brokers.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// SCRAM
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }
    fn type_number(self) -> i8 {
        match self {
            Hash::Sha256 => 1,
            Hash::Sha512 => 2,
        }
    }
    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key).unwrap();
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
    fn hash(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(bytes).to_vec(),
            Hash::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
            Hash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
        }
    }
}

fn alter_credentials(
    client: &mut Client,
    request: &alter::AlterUserScramCredentialsRequest,
) -> Vec<(String, i16)> {
    let response = client.call(
        alter::API_KEY,
        0,
        |e| request.encode(e, 0),
        alter::AlterUserScramCredentialsResponse::decode,
    );
    response
        .results
        .into_iter()
        .map(|r| (r.user, r.error_code))
        .collect()
}

fn upsertion(
    user: &str,
    hash: Hash,
    password: &str,
    iterations: i32,
) -> alter::ScramCredentialUpsertion {
    let salt = format!("salt-of-{user}").into_bytes();
    alter::ScramCredentialUpsertion {
        name: user.into(),
        mechanism: hash.type_number(),
        iterations,
        salted_password: hash.salted_password(password, &salt, iterations.max(1) as u32),
        salt,
    }
}

fn describe_credentials(
    client: &mut Client,
    users: Option<&[&str]>,
) -> describe::DescribeUserScramCredentialsResponse {
    let request = describe::DescribeUserScramCredentialsRequest {
        users: users.map(|u| {
            u.iter()
                .map(|name| describe::UserName {
                    name: name.to_string(),
                })
                .collect()
        }),
    };
    client.call(
        describe::API_KEY,
        0,
        |e| request.encode(e, 0),
        describe::DescribeUserScramCredentialsResponse::decode,
    )
}

/// Runs a SCRAM exchange over SaslAuthenticate; returns the error code of the final step.
fn scram_login(addr: SocketAddr, hash: Hash, user: &str, password: &str) -> (Client, i16) {
    let mut client = Client::connect(addr);
    assert_eq!(handshake(&mut client, 1, hash.mechanism()).error_code, 0);
    let client_nonce = "fyko+d2lbbFgONRv9qkxdawL";
    let client_first_bare = format!("n={user},r={client_nonce}");
    let first = authenticate(&mut client, 2, format!("n,,{client_first_bare}").as_bytes());
    if first.error_code != 0 {
        return (client, first.error_code);
    }
    let server_first = String::from_utf8(first.auth_bytes).unwrap();
    let mut nonce = "";
    let mut salt = Vec::new();
    let mut iterations = 0;
    for attribute in server_first.split(',') {
        match attribute.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = BASE64.decode(v).unwrap(),
            ("i=", v) => iterations = v.parse().unwrap(),
            _ => {}
        }
    }
    assert!(nonce.starts_with(client_nonce), "{server_first}");
    let salted = hash.salted_password(password, &salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored_key = hash.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hash.hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let last = authenticate(
        &mut client,
        2,
        format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes(),
    );
    if last.error_code == 0 {
        let server_key = hash.hmac(&salted, b"Server Key");
        let expected = hash.hmac(&server_key, auth_message.as_bytes());
        assert_eq!(
            last.auth_bytes,
            format!("v={}", BASE64.encode(expected)).into_bytes(),
            "the server proves it knows the credential"
        );
    }
    (client, last.error_code)
}

#[test]
fn scram_users_are_created_used_described_deleted_and_survive_a_restart() {
    let (mut broker, addr) = sasl_broker("sasl_scram", &[]);
    let mut admin = broker.connect();
    let request = alter::AlterUserScramCredentialsRequest {
        deletions: vec![],
        upsertions: vec![
            upsertion("carol", Hash::Sha256, "carol-pw", 4096),
            upsertion("dave", Hash::Sha512, "dave-pw", 8192),
        ],
    };
    assert_eq!(
        alter_credentials(&mut admin, &request),
        [("carol".to_string(), 0), ("dave".to_string(), 0)]
    );
    for (hash, user, password) in [
        (Hash::Sha256, "carol", "carol-pw"),
        (Hash::Sha512, "dave", "dave-pw"),
    ] {
        let (mut client, code) = scram_login(addr, hash, user, password);
        assert_eq!(code, 0, "{user}");
        assert_eq!(metadata(&mut client).brokers.len(), 1);
        let (mut client, code) = scram_login(addr, hash, user, "wrong");
        assert_eq!(code, 58, "{user} with a wrong password");
        assert!(client.is_closed());
    }
    // A mechanism the user has no credential for, and an unknown user.
    assert_eq!(scram_login(addr, Hash::Sha512, "carol", "carol-pw").1, 58);
    assert_eq!(scram_login(addr, Hash::Sha256, "nobody", "x").1, 58);

    let described = describe_credentials(&mut admin, None);
    let summary: Vec<(String, Vec<(i8, i32)>)> = described
        .results
        .iter()
        .map(|r| {
            (
                r.user.clone(),
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("carol".to_string(), vec![(1, 4096)]),
            ("dave".to_string(), vec![(2, 8192)])
        ]
    );

    broker.kill_and_restart();
    let mut admin = broker.connect();
    assert_eq!(
        describe_credentials(&mut admin, Some(&["carol"])).results[0].error_code,
        0
    );
    assert_eq!(scram_login(addr, Hash::Sha256, "carol", "carol-pw").1, 0);

    let delete = alter::AlterUserScramCredentialsRequest {
        deletions: vec![alter::ScramCredentialDeletion {
            name: "carol".into(),
            mechanism: 1,
        }],
        upsertions: vec![],
    };
    assert_eq!(
        alter_credentials(&mut admin, &delete),
        [("carol".to_string(), 0)]
    );
    assert_eq!(scram_login(addr, Hash::Sha256, "carol", "carol-pw").1, 58);
    let missing = describe_credentials(&mut admin, Some(&["carol", "dave"]));
    assert_eq!(missing.results[0].error_code, 91);
    assert_eq!(missing.results[1].error_code, 0);
    // The metadata log holds salted hashes, never the password.
    let metadata_log = crate::harness::read_partition_log(&broker.log_dir, "__cluster_metadata", 0);
    assert!(!metadata_log.windows(7).any(|w| w == b"dave-pw"));
    broker.assert_no_panics();
}

#[test]
fn alter_user_scram_credentials_refusals() {
    let broker = TestBroker::start("scram_refusals");
    let mut admin = broker.connect();
    let mut unknown_mechanism = upsertion("erin", Hash::Sha256, "pw", 4096);
    unknown_mechanism.mechanism = 3;
    let request = alter::AlterUserScramCredentialsRequest {
        deletions: vec![alter::ScramCredentialDeletion {
            name: "frank".into(),
            mechanism: 1,
        }],
        upsertions: vec![
            unknown_mechanism,
            upsertion("gina", Hash::Sha256, "pw", 1000),
            upsertion("hal", Hash::Sha256, "pw", 20000),
            upsertion("", Hash::Sha256, "pw", 4096),
            upsertion("ivy", Hash::Sha256, "pw", 4096),
            upsertion("ivy", Hash::Sha512, "pw", 4096),
        ],
    };
    assert_eq!(
        alter_credentials(&mut admin, &request),
        [
            ("frank".to_string(), 91),
            ("erin".to_string(), 33),
            ("gina".to_string(), 93),
            ("hal".to_string(), 93),
            ("".to_string(), 93),
            ("ivy".to_string(), 92),
        ]
    );
    let described = describe_credentials(&mut admin, Some(&["ivy", "ivy"]));
    assert_eq!(described.results.len(), 1);
    assert_eq!(described.results[0].error_code, 92);
    assert!(describe_credentials(&mut admin, None).results.is_empty());
}

/// Runs sprat on a configuration that must be refused and returns its stderr.
fn refused_start(name: &str, lines: &[&str]) -> String {
    let dir = temp_dir(name);
    let config = dir.join("server.properties");
    let mut text = format!("log.dirs={}\n", dir.join("logs").display());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sprat"))
        .arg(&config)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    assert!(!output.status.success(), "sprat started on {lines:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn sasl_listeners_without_usable_mechanisms_are_refused_at_start_up() {
    let listeners = "listeners=SASL_PLAINTEXT://127.0.0.1:0";
    let stderr = refused_start("sasl_default_gssapi", &[listeners]);
    assert!(
        stderr.contains("GSSAPI") && stderr.contains("sasl.enabled.mechanisms"),
        "{stderr}"
    );
    let stderr = refused_start(
        "sasl_plain_without_jaas",
        &[listeners, "sasl.enabled.mechanisms=PLAIN"],
    );
    assert!(stderr.contains("sasl.jaas.config"), "{stderr}");
    let stderr = refused_start(
        "sasl_bad_jaas",
        &[
            listeners,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
            "sasl.jaas.config=PlainLoginModule required user_x=\"top-secret\"",
        ],
    );
    assert!(
        stderr.contains("sasl.jaas.config") && !stderr.contains("top-secret"),
        "{stderr}"
    );
}
