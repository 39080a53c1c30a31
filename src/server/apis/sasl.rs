//! SaslHandshake and SaslAuthenticate where no authentication is under way: on a listener
//! without SASL, or after a SASL connection authenticated (the authenticator in
//! [`crate::security::sasl`] takes them before they reach the API layer otherwise). Kafka answers
//! both with ILLEGAL_SASL_STATE.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::{sasl_authenticate as sa, sasl_handshake as sh};
use crate::protocol::wire::Decoder;

pub fn handle_handshake(
    _ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    sh::SaslHandshakeRequest::decode(d, version)?;
    let listener = crate::security::current_listener();
    let mechanisms = listener
        .and_then(|l| l.sasl.as_ref().map(|s| s.mechanisms.clone()))
        .unwrap_or_default();
    let response = sh::SaslHandshakeResponse {
        error_code: ErrorCode::IllegalSaslState.code(),
        mechanisms,
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

pub fn handle_authenticate(
    _ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    sa::SaslAuthenticateRequest::decode(d, version)?;
    let response = sa::SaslAuthenticateResponse {
        error_code: ErrorCode::IllegalSaslState.code(),
        error_message: Some(
            "SaslAuthenticate request received without a SaslHandshake request before it".into(),
        ),
        ..sa::SaslAuthenticateResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
