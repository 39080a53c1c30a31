//! Listener security: which security protocol each named listener speaks (Kafka's
//! `SecurityProtocol` and `listener.security.protocol.map`), and which listener the current
//! connection thread arrived on, so that the API layer can answer with that listener's address.
//!
//! sprat serves all four: SASL ([`sasl`]) on SASL_PLAINTEXT and SASL_SSL listeners, TLS
//! ([`tls`]) on SSL and SASL_SSL ones. A TLS listener whose keys cannot be read is refused at
//! start-up with an error naming the key, rather than served without the protection its name
//! promises.

pub mod acl;
pub mod jaas;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Kafka's four security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name of the protocol, as written in configuration.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Parses a protocol name, ignoring case as Kafka does.
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
    }

    /// Whether connections speak TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's default `listener.security.protocol.map`: every protocol name maps to itself (the
/// default also maps `CONTROLLER` to PLAINTEXT).
pub fn default_protocol_map() -> BTreeMap<String, SecurityProtocol> {
    let mut map: BTreeMap<String, SecurityProtocol> = SecurityProtocol::ALL
        .into_iter()
        .map(|p| (p.name().to_string(), p))
        .collect();
    map.insert("CONTROLLER".into(), SecurityProtocol::Plaintext);
    map
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`). Names are upper-cased as
/// listener names are; a name given twice is an error, as in Kafka. The error is the reason.
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?} is not NAME:PROTOCOL"))?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            format!("{protocol:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
        })?;
        if name.is_empty() {
            return Err(format!("{entry:?} has no listener name"));
        }
        if map.insert(name.clone(), protocol).is_some() {
            return Err(format!("listener name {name} is mapped twice"));
        }
    }
    Ok(map)
}

/// Whether a configuration key holds a secret (Kafka's PASSWORD-type keys, the inline PEM ones
/// among them, also with a
/// `listener.name.NAME.` or mechanism prefix): its value is never logged nor returned by
/// DescribeConfigs.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("password")
        || key.ends_with("sasl.jaas.config")
        || key.ends_with("ssl.keystore.key")
        || key.ends_with("ssl.keystore.certificate.chain")
        || key.ends_with("ssl.truststore.certificates")
}

/// A listener the broker has bound: its name, protocol and the port it actually got (which
/// differs from the configured one when that is 0).
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub port: u16,
    /// The SASL settings of a SASL_PLAINTEXT or SASL_SSL listener.
    pub sasl: Option<Arc<sasl::SaslConfig>>,
    /// The TLS settings of an SSL or SASL_SSL listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

thread_local! {
    /// The listener of the connection this thread serves; connection threads serve one
    /// connection each, so this is set once when the thread starts.
    static CURRENT_LISTENER: RefCell<Option<Arc<BoundListener>>> = const { RefCell::new(None) };
}

/// Records the listener the calling connection thread's client connected to.
pub fn set_current_listener(listener: Arc<BoundListener>) {
    CURRENT_LISTENER.with(|current| *current.borrow_mut() = Some(listener));
}

/// The listener the calling connection thread's client connected to; `None` on threads that
/// serve no connection.
pub fn current_listener() -> Option<Arc<BoundListener>> {
    CURRENT_LISTENER.with(|current| current.borrow().clone())
}

thread_local! {
    /// The principal of the connection this thread serves, once known (SASL authentication, a
    /// client certificate); `User:ANONYMOUS` until then, as in Kafka.
    static CURRENT_PRINCIPAL: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Kafka's principal of a connection that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Records the principal (`User:NAME`) of the calling connection thread's client.
pub fn set_current_principal(principal: &str) {
    CURRENT_PRINCIPAL.with(|current| *current.borrow_mut() = Some(Arc::from(principal)));
}

/// The principal of the calling connection thread's client (`User:ANONYMOUS` if none is known).
pub fn current_principal() -> Arc<str> {
    CURRENT_PRINCIPAL
        .with(|current| current.borrow().clone())
        .unwrap_or_else(|| Arc::from(ANONYMOUS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_map_parses_custom_names_and_ignores_case() {
        let map = parse_protocol_map("INTERNAL:plaintext, external:SASL_SSL,CONTROLLER:PLAINTEXT")
            .unwrap();
        assert_eq!(map["INTERNAL"], SecurityProtocol::Plaintext);
        assert_eq!(map["EXTERNAL"], SecurityProtocol::SaslSsl);
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn protocol_map_refuses_bad_entries() {
        for bad in [
            "INTERNAL",
            "INTERNAL:TLS",
            ":PLAINTEXT",
            "A:SSL,a:PLAINTEXT",
        ] {
            assert!(parse_protocol_map(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_recognised_with_any_prefix() {
        for key in [
            "sasl.jaas.config",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            "ssl.key.password",
            "listener.name.ssl.ssl.keystore.password",
            "ssl.keystore.key",
            "listener.name.ssl.ssl.keystore.key",
            "ssl.keystore.certificate.chain",
            "ssl.truststore.certificates",
        ] {
            assert!(is_sensitive_key(key), "{key}");
        }
        for key in [
            "sasl.enabled.mechanisms",
            "ssl.keystore.location",
            "log.dirs",
        ] {
            assert!(!is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn default_map_maps_protocol_names_to_themselves() {
        let map = default_protocol_map();
        for p in SecurityProtocol::ALL {
            assert_eq!(map[p.name()], p);
        }
    }
}
