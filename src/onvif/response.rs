//! What an HTTP response to an ONVIF SOAP request means (SOAP 1.2 Part 2
//! HTTP binding, ONVIF Core error handling): the operation's answer, or an
//! [`OnvifError`] with the camera's text bounded and the password masked.

use super::http::HttpResponse;
use super::xml::{self, Element};
use super::{OnvifError, Operation};

/// Longest fault code, reason or challenge text copied from a camera into
/// an error.
pub(crate) const MAX_CAMERA_TEXT: usize = 200;

/// What discovery takes from an operation's answer. Which field is filled
/// depends on the operation; a missing element leaves it `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// GetCapabilities, GetServices: the ver10 media service's XAddr as
    /// the camera wrote it (trimmed).
    pub media_xaddr: Option<String>,
    /// GetProfiles: the first profile's token.
    pub profile_token: Option<String>,
    /// GetSystemDateAndTime: the camera's UTC clock in Unix seconds.
    pub camera_utc: Option<i64>,
}

/// Reads a response body the way the client reads `operation`'s answer:
/// SOAP Faults and error statuses become errors, anything else is parsed
/// for what discovery needs. Camera text in errors is bounded and has
/// `password` masked. Public for the fuzz target (`onvif_response`); the
/// client runs every response through it.
pub fn read_response(
    operation: Operation,
    status: u16,
    body: &[u8],
    password: Option<&str>,
) -> Result<Answer, OnvifError> {
    let response = HttpResponse {
        status,
        challenges: Vec::new(),
        body: body.to_vec(),
    };
    interpret(operation, String::new(), &response, password).map(|root| answer(operation, &root))
}

/// The fields of `operation`'s answer in `root`.
pub(crate) fn answer(operation: Operation, root: &Element) -> Answer {
    let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    match operation {
        Operation::GetSystemDateAndTime => Answer {
            camera_utc: xml::camera_utc(root),
            ..Answer::default()
        },
        Operation::GetCapabilities => Answer {
            media_xaddr: owned(xml::media_xaddr_from_capabilities(root)),
            ..Answer::default()
        },
        Operation::GetServices => Answer {
            media_xaddr: owned(xml::media_xaddr_from_services(root)),
            ..Answer::default()
        },
        Operation::GetProfiles => Answer {
            profile_token: owned(xml::first_profile_token(root)),
            ..Answer::default()
        },
        Operation::SetSynchronizationPoint => Answer::default(),
    }
}

/// Turns an HTTP response into the SOAP envelope's root element or an error.
pub(crate) fn interpret(
    operation: Operation,
    target: String,
    response: &HttpResponse,
    password: Option<&str>,
) -> Result<Element, OnvifError> {
    let parsed = xml::parse(&response.body);
    if let Ok(root) = &parsed {
        if let Some((code, reason)) = xml::fault(root) {
            return Err(OnvifError::Fault {
                operation,
                target,
                status: response.status,
                code: sanitize(&code, password),
                reason: sanitize(&reason, password),
            });
        }
    }
    if response.status == 401 {
        let challenge = response.challenges.first().map_or("none", String::as_str);
        // The scheme and realm are enough to tell what the camera wants.
        let challenge = challenge.split(',').next().unwrap_or("");
        return Err(OnvifError::Unauthorized {
            operation,
            target,
            challenge: sanitize(challenge, password),
        });
    }
    if !(200..300).contains(&response.status) {
        return Err(OnvifError::HttpStatus {
            operation,
            target,
            status: response.status,
        });
    }
    parsed.map_err(|reason| OnvifError::BadXml {
        operation,
        target,
        reason: sanitize(&reason, password),
    })
}

/// Camera text made fit for an error: bounded, one line, and without the
/// password should a camera ever echo it.
pub(crate) fn sanitize(text: &str, password: Option<&str>) -> String {
    let mut s: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        s = s.replace(p, "***");
    }
    match s.char_indices().nth(MAX_CAMERA_TEXT) {
        Some((end, _)) => s[..end].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAULT12: &str = r#"<?xml version="1.0" ?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error">
<env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>
<env:Reason><env:Text xml:lang="en">The action requested requires authorization and the sender hunter2 is not authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            challenges: vec!["Digest realm=\"cam\", nonce=\"abc\"".into()],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn faults_and_401_become_errors_without_the_password() {
        let op = Operation::GetProfiles;
        let e = interpret(op, "t".into(), &response(400, FAULT12), Some("hunter2")).unwrap_err();
        assert!(e.is_auth());
        let text = e.to_string();
        assert!(
            text.contains("GetProfiles") && text.contains("env:Sender/ter:NotAuthorized"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let e = interpret(op, "t".into(), &response(401, ""), None).unwrap_err();
        assert!(
            matches!(e, OnvifError::Unauthorized { .. }) && e.is_auth(),
            "{e}"
        );
        assert!(e.to_string().contains("Digest realm=\"cam\""), "{e}");
        let e = interpret(op, "t".into(), &response(500, "oops"), None).unwrap_err();
        assert!(
            matches!(e, OnvifError::HttpStatus { status: 500, .. }),
            "{e}"
        );
        let e = interpret(op, "t".into(), &response(200, "<a>"), None).unwrap_err();
        assert!(matches!(e, OnvifError::BadXml { .. }), "{e}");
        let e = read_response(op, 200, b"<a></hunter2hunter2>", Some("hunter2")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn read_response_takes_each_operations_field() {
        let profiles = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
            <GetProfilesResponse xmlns="http://www.onvif.org/ver10/media/wsdl"><Profiles token=" p1 "/></GetProfilesResponse>
            </s:Body></s:Envelope>"#;
        let a = read_response(Operation::GetProfiles, 200, profiles.as_bytes(), None).unwrap();
        assert_eq!(a.profile_token.as_deref(), Some("p1"));
        let a = read_response(Operation::GetCapabilities, 200, profiles.as_bytes(), None).unwrap();
        assert_eq!(a, Answer::default());
        let e = read_response(Operation::GetProfiles, 200, b"", None).unwrap_err();
        assert!(matches!(e, OnvifError::BadXml { .. }), "{e}");
    }

    #[test]
    fn sanitize_bounds_and_flattens() {
        assert_eq!(sanitize("a\n\t b\u{7}c  ", None), "a bc");
        assert_eq!(sanitize(&"x".repeat(10_000), None).len(), MAX_CAMERA_TEXT);
        assert_eq!(sanitize("pw is pw", Some("pw")), "*** is ***");
        assert_eq!(sanitize("pw", Some("")), "pw");
    }
}
