//! The SOAP operations camgate sends (ONVIF Core and Media Service Specs,
//! ver10) and the ways an exchange fails, worded for logs and the API.

use std::time::Duration;

use super::{DEVICE_NS, MEDIA_NS};

/// The SOAP operations this client sends, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Device service: the camera's clock, asked without credentials.
    GetSystemDateAndTime,
    /// Device service: the Media service address (category Media).
    GetCapabilities,
    /// Device service: every service address (fallback for GetCapabilities).
    GetServices,
    /// Media service: the media profiles, for a profile token.
    GetProfiles,
    /// Media service: emit a keyframe on a profile's streams.
    SetSynchronizationPoint,
}

impl Operation {
    /// Every operation, in the order discovery sends them.
    pub const ALL: [Operation; 5] = [
        Operation::GetSystemDateAndTime,
        Operation::GetCapabilities,
        Operation::GetServices,
        Operation::GetProfiles,
        Operation::SetSynchronizationPoint,
    ];

    /// The element name, also the last segment of the SOAP action.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime => "GetSystemDateAndTime",
            Operation::GetCapabilities => "GetCapabilities",
            Operation::GetServices => "GetServices",
            Operation::GetProfiles => "GetProfiles",
            Operation::SetSynchronizationPoint => "SetSynchronizationPoint",
        }
    }

    /// The WSDL namespace the operation belongs to.
    pub(crate) fn namespace(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime
            | Operation::GetCapabilities
            | Operation::GetServices => DEVICE_NS,
            Operation::GetProfiles | Operation::SetSynchronizationPoint => MEDIA_NS,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an ONVIF request failed. `target` is the service URL without
/// userinfo; no variant ever holds the password.
#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    /// The service URL is not `http://`; https is not implemented yet.
    #[error("ONVIF URL {url}: scheme {scheme:?} is not supported, only http:// (https is not implemented yet)")]
    UnsupportedScheme { url: String, scheme: String },
    /// The service URL has no host to connect to.
    #[error("ONVIF URL {url} has no host")]
    NoHost { url: String },
    /// Connecting, sending or receiving failed.
    #[error("ONVIF {operation} to {target}: {source}")]
    Io {
        operation: Operation,
        target: String,
        source: std::io::Error,
    },
    /// The exchange did not finish within [`super::REQUEST_TIMEOUT`].
    #[error("ONVIF {operation} to {target}: no complete response within {timeout:?}")]
    Timeout {
        operation: Operation,
        target: String,
        timeout: Duration,
    },
    /// The response is larger than [`super::MAX_RESPONSE`].
    #[error("ONVIF {operation} to {target}: response larger than {limit} bytes")]
    ResponseTooLarge {
        operation: Operation,
        target: String,
        limit: usize,
    },
    /// The response is not parsable HTTP/1.x.
    #[error("ONVIF {operation} to {target}: malformed HTTP response: {reason}")]
    BadHttp {
        operation: Operation,
        target: String,
        reason: &'static str,
    },
    /// The camera answered with a SOAP Fault; not retried.
    #[error("ONVIF {operation} to {target}: camera answered HTTP {status} with SOAP Fault {code}: {reason}")]
    Fault {
        operation: Operation,
        target: String,
        status: u16,
        code: String,
        reason: String,
    },
    /// The camera answered HTTP 401 and the client could not answer the
    /// challenge: no credentials, or a scheme other than Digest and Basic.
    #[error("ONVIF {operation} to {target}: camera answered HTTP 401 Unauthorized (challenge: {challenge})")]
    Unauthorized {
        operation: Operation,
        target: String,
        challenge: String,
    },
    /// The camera refused the HTTP Digest or Basic answer computed from the
    /// configured user name and password (RFC 7616 / RFC 7617); not retried.
    #[error("ONVIF {operation} to {target}: camera rejected the user name and password (HTTP {scheme} authentication, {challenge})")]
    CredentialsRejected {
        operation: Operation,
        target: String,
        scheme: &'static str,
        challenge: String,
    },
    /// The camera answered an error status without a SOAP Fault.
    #[error("ONVIF {operation} to {target}: camera answered HTTP {status}")]
    HttpStatus {
        operation: Operation,
        target: String,
        status: u16,
    },
    /// The response body is not XML this client can read.
    #[error("ONVIF {operation} to {target}: unparsable XML response: {reason}")]
    BadXml {
        operation: Operation,
        target: String,
        reason: String,
    },
    /// The response lacks the element the operation is asked for.
    #[error("ONVIF {operation} to {target}: response has no {element}")]
    Missing {
        operation: Operation,
        target: String,
        element: &'static str,
    },
}

impl OnvifError {
    /// True when the camera refused the credentials: asking again, or asking
    /// another service, would only add failed logins (some cameras lock
    /// the account after a few).
    pub fn is_auth(&self) -> bool {
        match self {
            OnvifError::Unauthorized { .. } | OnvifError::CredentialsRejected { .. } => true,
            OnvifError::Fault { code, .. } => {
                let code = code.to_ascii_lowercase();
                ["notauthorized", "failedauthentication", "invalidsecurity"]
                    .iter()
                    .any(|c| code.contains(c))
            }
            _ => false,
        }
    }

    /// True when discovery should stop instead of trying the next way to find
    /// the media service: refused credentials or an unreachable camera.
    pub(crate) fn ends_discovery(&self) -> bool {
        self.is_auth()
            || matches!(
                self,
                OnvifError::Io { .. }
                    | OnvifError::Timeout { .. }
                    | OnvifError::UnsupportedScheme { .. }
                    | OnvifError::NoHost { .. }
            )
    }
}
