//! ApiVersions (key 18): the APIs and version ranges sprat serves, exactly [`SUPPORTED_APIS`].
//!
//! A request of a version newer than sprat's gets error 35 UNSUPPORTED_VERSION in the v0 layout,
//! with the supported list so the client can retry with a version both sides know (KIP-511). A
//! v3+ request whose client software name or version Kafka's pattern refuses gets error 42
//! INVALID_REQUEST with no APIs listed, as Kafka's `ApiVersionsRequest.getErrorResponse` builds it.

use super::{HandlerResult, Outcome, respond};
use crate::broker::BrokerContext;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::api_versions::*;
use crate::protocol::wire::Decoder;
use crate::protocol::{RequestHeader, SUPPORTED_APIS};

pub fn handle(_ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ApiVersionsRequest::decode(d, version)?;
    let valid = version < 3
        || (valid_client_software(&request.client_software_name)
            && valid_client_software(&request.client_software_version));
    let response = if valid {
        supported_response(ErrorCode::None)
    } else {
        ApiVersionsResponse {
            error_code: ErrorCode::InvalidRequest.code(),
            ..ApiVersionsResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// The answer to a version sprat does not know: error 35 in the v0 layout, listing only
/// ApiVersions' own range, as Kafka does, so the client can retry with a version both know.
pub fn unsupported_version(header: &RequestHeader) -> Outcome {
    let mut response = supported_response(ErrorCode::UnsupportedVersion);
    response.api_keys.retain(|k| k.api_key == API_KEY);
    respond(header, |e| response.encode(e, 0))
}

fn supported_response(error: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error.code(),
        api_keys: SUPPORTED_APIS
            .iter()
            .map(|api| ApiVersion {
                api_key: api.key,
                min_version: api.min_version,
                max_version: api.max_version,
            })
            .collect(),
        ..ApiVersionsResponse::default()
    }
}

/// Kafka accepts client software names and versions matching `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_client_software(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match b {
        [] => false,
        [only] => edge(only),
        [first, middle @ .., last] => edge(first) && edge(last) && middle.iter().all(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_client_software;

    #[test]
    fn client_software_names() {
        for ok in [
            "kcat",
            "librdkafka",
            "1.7.1",
            "a",
            "kafka-python",
            "2.0.2-RC1",
        ] {
            assert!(valid_client_software(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a b", "né", "x."] {
            assert!(!valid_client_software(bad), "{bad}");
        }
    }
}
