//! SASL authentication of a connection, the part of Kafka's `SaslServerAuthenticator` sprat
//! plays: on a SASL listener a connection may send ApiVersions and SaslHandshake, then the
//! mechanism's tokens, and nothing else until it has authenticated.
//!
//! States: `Handshake` (ApiVersions or SaslHandshake expected) → after SaslHandshake v1,
//! `Framed` (tokens in SaslAuthenticate requests), after v0, `Raw` (the next frames are bare
//! tokens, each with a 4-byte length, as kafka-python and old clients send them) → `Complete`.
//! A failed authentication answers SASL_AUTHENTICATION_FAILED (58) where the protocol allows
//! an answer, and closes the connection. A SaslHandshake after `Complete` starts a
//! re-authentication (KIP-368); once `connections.max.reauth.ms` has passed without one, the next
//! other request closes the connection.
//!
//! Mechanisms: PLAIN, with users from the JAAS configuration, and SCRAM-SHA-256/512, with
//! credentials from the cluster metadata (see [`super::scram`]). Passwords are never logged.

use super::jaas;
use super::scram::{ScramMechanism, ScramServer, Step};
use crate::broker::BrokerContext;
use crate::config::BrokerConfig;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::{api_versions, sasl_authenticate as sa, sasl_handshake as sh};
use crate::protocol::wire::Decoder;
use crate::protocol::{self, RequestHeader};
use crate::server::apis::{Outcome, respond};
use byteorder::{BigEndian, ByteOrder};
use log::{info, warn};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Kafka's `sasl.server.max.receive.size` default: the largest frame accepted before a
/// connection has authenticated.
pub const MAX_RECEIVE_BYTES: usize = 524_288;

/// The longest a connection may take to authenticate (bounded further by
/// `connections.max.idle.ms`).
pub const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The mechanisms sprat can serve.
pub const SUPPORTED_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The SASL settings of one listener.
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms` (or its `listener.name.NAME.` form), in the configured order.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords, from the JAAS configuration.
    plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms`; 0 means sessions do not expire.
    pub session_lifetime_ms: i64,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SaslConfig({:?}, {} PLAIN users)",
            self.mechanisms,
            self.plain_users.len()
        )
    }
}

/// Looks up `listener.name.<name>.<key>` (Kafka writes the listener name in lower case), then
/// `<key>`.
fn listener_value<'a>(config: &'a BrokerConfig, listener: &str, key: &str) -> Option<&'a str> {
    let lower = listener.to_ascii_lowercase();
    config
        .get(&format!("listener.name.{lower}.{key}"))
        .or_else(|| config.get(&format!("listener.name.{listener}.{key}")))
        .or_else(|| config.get(key))
}

impl SaslConfig {
    /// Reads the SASL settings of `listener`. The error names the key at fault and never
    /// quotes a secret.
    pub fn for_listener(config: &BrokerConfig, listener: &str) -> Result<SaslConfig, String> {
        let lower = listener.to_ascii_lowercase();
        let mechanisms: Vec<String> = listener_value(config, listener, "sasl.enabled.mechanisms")
            .unwrap_or("GSSAPI")
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err(format!(
                "sasl.enabled.mechanisms for listener {listener} is empty"
            ));
        }
        if let Some(m) = mechanisms
            .iter()
            .find(|m| !SUPPORTED_MECHANISMS.contains(&m.as_str()))
        {
            return Err(format!(
                "sasl.enabled.mechanisms for listener {listener} includes {m}, which sprat does not support (Kafka's default is GSSAPI); enable {}",
                SUPPORTED_MECHANISMS.join(", ")
            ));
        }
        let mut plain_users = BTreeMap::new();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let key = format!("listener.name.{lower}.plain.sasl.jaas.config");
            let (key, text) = match config.get(&key) {
                Some(text) => (key, text),
                None => match config.get("sasl.jaas.config") {
                    Some(text) => ("sasl.jaas.config".to_string(), text),
                    None => {
                        return Err(format!(
                            "listener {listener} enables PLAIN but neither {key} nor sasl.jaas.config is set"
                        ));
                    }
                },
            };
            let module = jaas::parse(text).map_err(|reason| format!("{key}: {reason}"))?;
            plain_users = jaas::plain_users(&module);
        }
        let session_lifetime_ms = match config.get("connections.max.reauth.ms") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|&v| v >= 0)
                .ok_or_else(|| format!("connections.max.reauth.ms={v} is not a duration in ms"))?,
        };
        Ok(SaslConfig {
            mechanisms,
            plain_users,
            session_lifetime_ms,
        })
    }
}

/// One connection's SASL state, see the module documentation.
pub struct SaslSession {
    config: Arc<SaslConfig>,
    state: State,
    started: Instant,
    timeout: Duration,
    /// When the current session began, once authenticated.
    authenticated_at: Option<Instant>,
    /// `User:NAME` once authenticated.
    principal: Option<String>,
    /// Set when the answer just produced is the last: the connection closes after sending it.
    close_after_response: bool,
}

enum State {
    Handshake,
    Framed(Exchange),
    Raw(Exchange),
    Complete,
}

enum Exchange {
    Plain,
    Scram(ScramMechanism, ScramServer),
}

impl SaslSession {
    pub fn new(config: Arc<SaslConfig>, idle: Duration) -> SaslSession {
        SaslSession {
            config,
            state: State::Handshake,
            started: Instant::now(),
            timeout: AUTHENTICATION_TIMEOUT.min(idle),
            authenticated_at: None,
            principal: None,
            close_after_response: false,
        }
    }

    /// The largest frame to accept now.
    pub fn frame_limit(&self, max_frame: usize) -> usize {
        if self.principal.is_some() {
            max_frame
        } else {
            max_frame.min(MAX_RECEIVE_BYTES)
        }
    }

    /// The read timeout to use now: the time left to authenticate, or `idle` once done.
    pub fn read_timeout(&self, idle: Duration) -> Duration {
        if self.principal.is_some() {
            idle
        } else {
            self.timeout
                .saturating_sub(self.started.elapsed())
                .max(Duration::from_millis(1))
        }
    }

    /// Whether the connection must close after the answer just given.
    pub fn must_close(&self) -> bool {
        self.close_after_response
    }

    /// The authenticated principal (`User:NAME`).
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Handles a frame if SASL owns it; `None` passes it on to the API layer.
    pub fn intercept(&mut self, ctx: &BrokerContext, peer: &str, frame: &[u8]) -> Option<Outcome> {
        if let State::Raw(_) = self.state {
            return Some(self.raw_token(ctx, peer, frame));
        }
        if frame.len() < 8 {
            return None; // The API layer closes it.
        }
        let api_key = BigEndian::read_i16(frame);
        let is_handshake = api_key == sh::API_KEY;
        if matches!(self.state, State::Complete) {
            let expired = self.session_expired();
            if !is_handshake && expired && api_key != api_versions::API_KEY {
                return Some(Outcome::Close(format!(
                    "the SASL session of {} expired (connections.max.reauth.ms) without re-authentication",
                    self.principal.as_deref().unwrap_or("?")
                )));
            }
            if !is_handshake {
                return None;
            }
        } else if self.started.elapsed() > self.timeout {
            return Some(Outcome::Close(format!(
                "not authenticated within {} ms",
                self.timeout.as_millis()
            )));
        }
        let allowed = match self.state {
            State::Handshake | State::Complete => is_handshake || api_key == api_versions::API_KEY,
            State::Framed(_) => api_key == sa::API_KEY,
            State::Raw(_) => false,
        };
        if !allowed {
            return Some(Outcome::Close(format!(
                "{} request on a SASL listener before authentication",
                protocol::api_name(api_key)
            )));
        }
        if api_key == api_versions::API_KEY {
            return None;
        }
        let api = protocol::api_support(api_key)?;
        let version = BigEndian::read_i16(&frame[2..]);
        if !(api.min_version..=api.max_version).contains(&version) {
            return None; // The API layer closes it, naming the version.
        }
        let mut d = Decoder::new(frame);
        let header = match RequestHeader::decode(&mut d, protocol::is_flexible(api_key, version)) {
            Ok(h) => h,
            Err(e) => {
                return Some(Outcome::Close(format!(
                    "malformed {} header: {e}",
                    api.name
                )));
            }
        };
        let outcome = if is_handshake {
            sh::SaslHandshakeRequest::decode(&mut d, version)
                .map(|request| self.handshake(peer, &header, &request.mechanism))
        } else {
            sa::SaslAuthenticateRequest::decode(&mut d, version)
                .map(|request| self.authenticate(ctx, peer, &header, &request.auth_bytes))
        };
        Some(outcome.unwrap_or_else(|e| {
            Outcome::Close(format!("malformed {} v{version} request: {e}", api.name))
        }))
    }

    fn session_expired(&self) -> bool {
        let lifetime = self.config.session_lifetime_ms;
        lifetime > 0
            && self
                .authenticated_at
                .is_some_and(|at| at.elapsed() > Duration::from_millis(lifetime as u64))
    }

    fn handshake(&mut self, peer: &str, header: &RequestHeader, mechanism: &str) -> Outcome {
        let reauthenticating = matches!(self.state, State::Complete);
        let enabled = self.config.mechanisms.iter().any(|m| m == mechanism);
        let error = if !enabled {
            warn!(
                "{peer} asked for SASL mechanism {mechanism:?}; enabled: {}",
                self.config.mechanisms.join(",")
            );
            self.close_after_response = true;
            ErrorCode::UnsupportedSaslMechanism
        } else if reauthenticating && header.api_version == 0 {
            self.close_after_response = true;
            ErrorCode::IllegalSaslState
        } else {
            let exchange = match ScramMechanism::from_name(mechanism) {
                Some(m) => Exchange::Scram(m, ScramServer::new(m)),
                None => Exchange::Plain,
            };
            if reauthenticating {
                // The authentication deadline counts from this handshake, not from the
                // connection's start.
                self.started = Instant::now();
            }
            self.state = if header.api_version == 0 {
                State::Raw(exchange)
            } else {
                State::Framed(exchange)
            };
            ErrorCode::None
        };
        let response = sh::SaslHandshakeResponse {
            error_code: error.code(),
            mechanisms: self.config.mechanisms.clone(),
        };
        respond(header, |e| response.encode(e, header.api_version))
    }

    fn authenticate(
        &mut self,
        ctx: &BrokerContext,
        peer: &str,
        header: &RequestHeader,
        token: &[u8],
    ) -> Outcome {
        let mut response = sa::SaslAuthenticateResponse::default();
        match self.step(ctx, peer, token) {
            Step::Continue(challenge) => response.auth_bytes = challenge,
            Step::Complete { server_final, .. } => {
                response.auth_bytes = server_final;
                response.session_lifetime_ms = self.config.session_lifetime_ms;
            }
            Step::Failed(message) => {
                response.error_code = ErrorCode::SaslAuthenticationFailed.code();
                response.error_message = Some(message);
                self.close_after_response = true;
            }
        }
        respond(header, |e| response.encode(e, header.api_version))
    }

    /// A bare token after SaslHandshake v0; the answer is a bare token too. A failure can only
    /// be told by closing the connection.
    fn raw_token(&mut self, ctx: &BrokerContext, peer: &str, token: &[u8]) -> Outcome {
        let challenge = match self.step(ctx, peer, token) {
            Step::Continue(challenge) => challenge,
            Step::Complete { server_final, .. } => server_final,
            Step::Failed(message) => return Outcome::Close(message),
        };
        let mut frame = Vec::with_capacity(4 + challenge.len());
        frame.extend_from_slice(&(challenge.len() as u32).to_be_bytes());
        frame.extend_from_slice(&challenge);
        Outcome::Respond(frame)
    }

    /// Runs one step of the chosen mechanism and moves the state on.
    fn step(&mut self, ctx: &BrokerContext, peer: &str, token: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Handshake);
        let raw = matches!(state, State::Raw(_));
        let (State::Framed(mut exchange) | State::Raw(mut exchange)) = state else {
            return Step::Failed("no SASL handshake before the token".into());
        };
        let (mechanism, step) = match &mut exchange {
            Exchange::Plain => ("PLAIN", self.plain(token)),
            Exchange::Scram(mechanism, server) => {
                let mechanism = *mechanism;
                let step = server.step(token, |user| {
                    ctx.metadata
                        .read()
                        .scram_credentials
                        .get(&(user.to_string(), mechanism.type_number()))
                        .cloned()
                });
                (mechanism.name(), step)
            }
        };
        match &step {
            Step::Continue(_) => {
                self.state = if raw {
                    State::Raw(exchange)
                } else {
                    State::Framed(exchange)
                };
            }
            Step::Complete { user, .. } => {
                info!("{peer} authenticated as User:{user} with {mechanism}");
                let principal = format!("User:{user}");
                super::set_current_principal(&principal);
                self.principal = Some(principal);
                self.authenticated_at = Some(Instant::now());
                self.state = State::Complete;
            }
            Step::Failed(reason) => {
                warn!("{peer} failed {mechanism} authentication: {reason}");
            }
        }
        step
    }

    /// PLAIN's single message: `authzid NUL authcid NUL password` (RFC 4616).
    fn plain(&self, token: &[u8]) -> Step {
        let failed = || Step::Failed("Authentication failed: Invalid username or password".into());
        let mut parts = token.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Step::Failed("Invalid SASL/PLAIN response: expected 3 tokens".into());
        };
        let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user))
        else {
            return failed();
        };
        if user.is_empty() || password.is_empty() {
            return Step::Failed("Authentication failed: username or password is empty".into());
        }
        if !authzid.is_empty() && authzid != user {
            return Step::Failed(
                "Authentication failed: Client requested an authorization id that is different from username"
                    .into(),
            );
        }
        match self.config.plain_users.get(user) {
            Some(expected) if bool::from(expected.as_bytes().ct_eq(password)) => Step::Complete {
                user: user.to_string(),
                server_final: Vec::new(),
            },
            _ => failed(),
        }
    }
}
