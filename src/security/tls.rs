//! TLS for SSL and SASL_SSL listeners, with rustls (the `ring` provider): the server's key and
//! certificate chain, the certificates it trusts for client authentication, and the principal a
//! client certificate stands for. Kafka's `SslFactory`, `DefaultSslEngineFactory` and
//! `DefaultKafkaPrincipalBuilder` (its SSL half) play this part in Kafka.
//!
//! Keys, as Kafka names them, each also read with a `listener.name.NAME.` prefix that wins:
//! `ssl.keystore.type=PEM` with `ssl.keystore.location` (a PEM file holding the private key and
//! the certificate chain) or inline `ssl.keystore.key` and `ssl.keystore.certificate.chain`;
//! `ssl.key.password` for an encrypted PKCS#8 key; `ssl.truststore.type=PEM` with
//! `ssl.truststore.location` or inline `ssl.truststore.certificates`; `ssl.client.auth`
//! (`required`, `requested`, `none`); `ssl.enabled.protocols` (TLSv1.2, TLSv1.3). sprat reads PEM
//! only: a JKS or PKCS12 store is refused at start-up with an error naming the key, as is a file
//! that cannot be read. Error messages name keys and files, never a secret.
//!
//! Principals: with `ssl.principal.mapping.rules=DEFAULT` (the only rule sprat knows), a client
//! certificate's subject becomes `User:` and the distinguished name as Java's
//! `X500Principal.getName()` prints it (RFC 2253: the last RDN first, `CN=client,OU=eng,O=acme`).

use crate::config::BrokerConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use x509_cert::der::{Decode, Encode};

/// How a listener asks clients for certificates (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Requested,
    None,
}

/// The object identifiers Java's RFC 2253 form prints by keyword; others are printed as the
/// dotted OID and the value's DER in hex.
const JAVA_KEYWORD_OIDS: [&str; 9] = [
    "2.5.4.3",                    // CN
    "2.5.4.6",                    // C
    "2.5.4.7",                    // L
    "2.5.4.8",                    // ST
    "2.5.4.10",                   // O
    "2.5.4.11",                   // OU
    "2.5.4.9",                    // STREET
    "0.9.2342.19200300.100.1.25", // DC
    "0.9.2342.19200300.100.1.1",  // UID
];

/// Looks up `listener.name.<name>.<key>` (Kafka writes the listener name in lower case), then
/// `<key>`; returns the key that was found with its value, so that errors can name it.
fn listener_entry<'a>(
    config: &'a BrokerConfig,
    listener: &str,
    key: &str,
) -> Option<(String, &'a str)> {
    let prefixed = [
        format!("listener.name.{}.{key}", listener.to_ascii_lowercase()),
        format!("listener.name.{listener}.{key}"),
        key.to_string(),
    ];
    prefixed
        .into_iter()
        .find_map(|k| config.get(&k).map(|v| (k, v)))
}

/// Builds the rustls configuration of the SSL or SASL_SSL listener `listener`. The error names
/// the key at fault.
pub fn server_config(config: &BrokerConfig, listener: &str) -> Result<Arc<ServerConfig>, String> {
    let entry = |key: &str| listener_entry(config, listener, key);
    let (chain, key) = keystore(&entry)?;
    let client_auth = match entry("ssl.client.auth") {
        None => ClientAuth::None,
        Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            "none" | "" => ClientAuth::None,
            other => {
                return Err(format!(
                    "{k}={other} is not one of required, requested, none"
                ));
            }
        },
    };
    if let Some((k, v)) = entry("ssl.principal.mapping.rules")
        && !v.trim().eq_ignore_ascii_case("DEFAULT")
    {
        return Err(format!(
            "{k}: sprat supports only DEFAULT (the certificate's distinguished name)"
        ));
    }
    // ring, not aws-lc-rs: it builds without cmake. It has no post-quantum key exchange,
    // which is why rustls marks it deprecated as a default.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if let Some((key, _)) = entry("ssl.cipher.suites") {
        log::warn!(
            "{key} is not applied: listener {listener} offers rustls's default suites (TLS 1.3 AES-GCM and ChaCha20-Poly1305, TLS 1.2 ECDHE with those)"
        );
    }
    let versions = enabled_protocols(&entry)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("ssl.enabled.protocols for listener {listener}: {e}"))?;
    let builder = if client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let roots = truststore(&entry)?.ok_or_else(|| {
            format!(
                "listener {listener} has ssl.client.auth={} but no ssl.truststore.location or ssl.truststore.certificates",
                if client_auth == ClientAuth::Required {
                    "required"
                } else {
                    "requested"
                }
            )
        })?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if client_auth == ClientAuth::Requested {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| format!("ssl.truststore for listener {listener}: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("ssl.keystore for listener {listener}: {e}"))?;
    Ok(Arc::new(server))
}

type Entry<'a> = dyn Fn(&str) -> Option<(String, &'a str)> + 'a;

/// `ssl.enabled.protocols`: Kafka's default enables TLSv1.2 and TLSv1.3; older versions are not
/// served by rustls, and asking for them alone is an error.
fn enabled_protocols(
    entry: &Entry<'_>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let Some((key, value)) = entry("ssl.enabled.protocols") else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    let mut versions = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1" | "TLSv1.1" | "SSLv3" => {
                log::warn!("{key}: {name} is not served (only TLSv1.2 and TLSv1.3)")
            }
            other => return Err(format!("{key}: {other} is not a TLS protocol version")),
        }
    }
    if versions.is_empty() {
        return Err(format!("{key} enables neither TLSv1.2 nor TLSv1.3"));
    }
    Ok(versions)
}

/// Refuses a store type other than PEM, with the reason.
fn check_pem_type(entry: &Entry<'_>, type_key: &str) -> Result<(), String> {
    match entry(type_key) {
        Some((key, value)) if !value.trim().eq_ignore_ascii_case("PEM") => Err(format!(
            "{key}={}: sprat reads only PEM stores; convert it (e.g. openssl pkcs12 -in store.p12 -nodes) and set {type_key}=PEM",
            value.trim()
        )),
        _ => Ok(()),
    }
}

/// Reads a PEM file named by `key`; the error names the key and the file.
fn read_pem_file(key: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path.trim()).map_err(|e| format!("{key}={}: {e}", path.trim()))
}

/// The certificate chain and private key of the keystore.
fn keystore(
    entry: &Entry<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    check_pem_type(entry, "ssl.keystore.type")?;
    let password = entry("ssl.key.password").map(|(_, v)| v.to_string());
    if let (Some((file_key, _)), Some((inline_key, _))) =
        (entry("ssl.keystore.location"), entry("ssl.keystore.key"))
    {
        return Err(format!(
            "both {file_key} and {inline_key} are set; give the keystore one way"
        ));
    }
    let (source, key_pem, chain_pem) = match entry("ssl.keystore.location") {
        Some((key, path)) => {
            let pem = read_pem_file(&key, path)?;
            (key, pem.clone(), pem)
        }
        None => {
            let Some((key_key, key_pem)) = entry("ssl.keystore.key") else {
                return Err(
                    "an SSL listener needs ssl.keystore.location or ssl.keystore.key with ssl.keystore.certificate.chain"
                        .into(),
                );
            };
            let Some((_, chain_pem)) = entry("ssl.keystore.certificate.chain") else {
                return Err(format!(
                    "{key_key} is set but ssl.keystore.certificate.chain is not"
                ));
            };
            (
                key_key,
                inline_pem(key_pem).into_bytes(),
                inline_pem(chain_pem).into_bytes(),
            )
        }
    };
    let chain = certificates(&chain_pem).map_err(|e| format!("{source}: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{source}: no PEM CERTIFICATE in it (sprat reads PEM stores only, not JKS or PKCS12)"
        ));
    }
    let key = private_key(&key_pem, password.as_deref()).map_err(|e| format!("{source}: {e}"))?;
    Ok((chain, key))
}

/// The trusted certificates, if a truststore is configured.
fn truststore(entry: &Entry<'_>) -> Result<Option<RootCertStore>, String> {
    check_pem_type(entry, "ssl.truststore.type")?;
    let (source, pem) = match (
        entry("ssl.truststore.location"),
        entry("ssl.truststore.certificates"),
    ) {
        (Some((key, path)), _) => {
            let pem = read_pem_file(&key, path)?;
            (key, pem)
        }
        (None, Some((key, text))) => (key, inline_pem(text).into_bytes()),
        (None, None) => return Ok(None),
    };
    let certs = certificates(&pem).map_err(|e| format!("{source}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{source}: no PEM CERTIFICATE in it (sprat reads PEM stores only, not JKS or PKCS12)"
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{source}: a certificate cannot be trusted: {e}"))?;
    }
    Ok(Some(roots))
}

/// An inline PEM value as a PEM file has it. In server.properties a value's lines are joined
/// by `\` continuations into one line, or separated by spaces: each `-----BEGIN/END ...-----`
/// marker goes on a line of its own, and the base64 between them is split at blanks.
fn inline_pem(value: &str) -> String {
    let mut out = String::new();
    let push_body = |out: &mut String, body: &str| {
        for word in body.split_whitespace() {
            out.push_str(word);
            out.push('\n');
        }
    };
    let mut rest = value;
    while let Some(start) = rest.find("-----") {
        push_body(&mut out, &rest[..start]);
        let Some(len) = rest[start + 5..].find("-----") else {
            break;
        };
        let end = start + 5 + len + 5;
        out.push_str(&rest[start..end]);
        out.push('\n');
        rest = &rest[end..];
    }
    push_body(&mut out, rest);
    out
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))
}

/// The private key of a PEM text: an `ENCRYPTED PRIVATE KEY` (PKCS#8, decrypted with
/// `ssl.key.password`) or an unencrypted PKCS#8, PKCS#1 or SEC1 key.
fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    if let Some(encrypted) = pem_section(pem, "ENCRYPTED PRIVATE KEY")? {
        let Some(password) = password else {
            return Err("the private key is encrypted but ssl.key.password is not set".into());
        };
        let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&encrypted)
            .map_err(|e| format!("malformed ENCRYPTED PRIVATE KEY: {e}"))?;
        let document = info.decrypt(password).map_err(|_| {
            "the private key cannot be decrypted with ssl.key.password (wrong password, or an encryption scheme other than PBES2)".to_string()
        })?;
        return Ok(PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()).into());
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY in the PEM".to_string(),
        e => format!("malformed private key PEM: {e}"),
    })
}

/// The DER bytes of the first PEM section labelled `label`, if there is one.
fn pem_section(pem: &[u8], label: &str) -> Result<Option<Vec<u8>>, String> {
    let text = String::from_utf8_lossy(pem);
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = text.find(&begin) else {
        return Ok(None);
    };
    let body = &text[start + begin.len()..];
    let Some(stop) = body.find(&end) else {
        return Err(format!("{begin} without {end}"));
    };
    let base64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64
        .decode(base64)
        .map(Some)
        .map_err(|e| format!("malformed {label}: {e}"))
}

/// The principal of a client that presented `certificate` (its first, end-entity certificate):
/// `User:` and its subject as Java prints it. `None` if the certificate cannot be parsed (it has
/// been verified by then, so that is not expected).
pub fn principal_of(certificate: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(certificate).ok()?;
    Some(format!(
        "User:{}",
        java_dn(cert.tbs_certificate().subject())
    ))
}

/// A distinguished name in Java's `X500Principal.getName()` (RFC 2253) form.
pub fn java_dn(name: &x509_cert::name::Name) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.oid.to_string();
                    if JAVA_KEYWORD_OIDS.contains(&oid.as_str()) {
                        atv.to_string()
                    } else {
                        let der = atv.value.to_der().unwrap_or_default();
                        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{oid}=#{hex}")
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn distinguished_names_print_as_java_does() {
        // Names given in RFC 4514 order (last RDN first), as Java prints them.
        for (dn, expected) in [
            ("CN=client,OU=eng,O=acme", "CN=client,OU=eng,O=acme"),
            ("CN=a\\,b,O=x", "CN=a\\,b,O=x"),
            ("CN=host,DC=example,DC=com", "CN=host,DC=example,DC=com"),
            ("CN=c,L=Oslo,ST=Viken,C=NO", "CN=c,L=Oslo,ST=Viken,C=NO"),
        ] {
            let name = x509_cert::name::Name::from_str(dn).unwrap();
            assert_eq!(java_dn(&name), expected, "{dn}");
        }
    }

    #[test]
    fn inline_pem_values_get_their_lines_back() {
        let expected = "-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        for value in [
            "-----BEGIN CERTIFICATE-----AAECAw==-----END CERTIFICATE-----",
            "-----BEGIN CERTIFICATE----- AAEC Aw== -----END CERTIFICATE-----",
            expected,
        ] {
            let pem = inline_pem(value);
            let der = pem_section(pem.as_bytes(), "CERTIFICATE").unwrap();
            assert_eq!(der, Some(vec![0, 1, 2, 3]), "{value}");
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        }
    }

    #[test]
    fn pem_sections_are_found_by_label() {
        let pem = b"junk\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\nAw==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(
            pem_section(pem, "ENCRYPTED PRIVATE KEY").unwrap(),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(pem_section(pem, "CERTIFICATE").unwrap(), None);
        assert!(pem_section(b"-----BEGIN X-----\nAA==", "X").is_err());
    }

    #[test]
    fn a_missing_key_is_named() {
        let err = private_key(
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            None,
        )
        .unwrap_err();
        assert!(err.contains("no PRIVATE KEY"), "{err}");
        let err = private_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
            None,
        )
        .unwrap_err();
        assert!(err.contains("ssl.key.password"), "{err}");
    }
}
