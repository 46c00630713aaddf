//! Reads arbitrary bytes as an ONVIF camera's answer to a SOAP request
//! (ONVIF Core/Media ver10 over SOAP 1.2/1.1) the way the client does:
//! XML parsing, SOAP Faults, and what discovery takes from each operation.
//!
//! Input: byte 0 picks the operation (`'0'`..`'4'`: GetSystemDateAndTime,
//! GetCapabilities, GetServices, GetProfiles, SetSynchronizationPoint),
//! byte 1 the HTTP status (`'0'` 200, `'1'` 400, `'2'` 401, `'3'` 500, ...),
//! the rest is the body. So a recorded answer with two bytes in front is a
//! seed.

use camgate::onvif::{read_response, Answer, OnvifError, Operation};

/// The password the client would mask in camera text.
const PASSWORD: &str = "s3cret-Pa55";
/// Statuses byte 1 picks from.
const STATUSES: [u16; 8] = [200, 400, 401, 500, 202, 204, 302, 503];
/// Unix seconds of 0000-01-01 and 9999-12-31T23:59:59Z.
const YEARS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let [op, status, body @ ..] = data else {
        return;
    };
    let op = Operation::ALL[usize::from(op.wrapping_sub(b'0')) % Operation::ALL.len()];
    let status = STATUSES[usize::from(status.wrapping_sub(b'0')) % STATUSES.len()];
    match read_response(op, status, body, Some(PASSWORD)) {
        Ok(answer) => check_answer(op, status, body, &answer),
        Err(e) => check_error(status, &e),
    }
}

fn check_answer(op: Operation, status: u16, body: &[u8], answer: &Answer) {
    assert!((200..300).contains(&status), "{status} accepted");
    let Answer {
        media_xaddr,
        profile_token,
        camera_utc,
        ..
    } = answer;
    // Only the operation's own field is filled.
    assert!(
        media_xaddr.is_none() || matches!(op, Operation::GetCapabilities | Operation::GetServices)
    );
    assert!(profile_token.is_none() || op == Operation::GetProfiles);
    assert!(camera_utc.is_none() || op == Operation::GetSystemDateAndTime);
    for s in [media_xaddr, profile_token].into_iter().flatten() {
        assert!(
            !s.is_empty() && s.trim() == s && s.len() <= body.len(),
            "{s:?}"
        );
    }
    if let Some(t) = camera_utc {
        assert!(YEARS.contains(t), "{t}");
    }
}

fn check_error(status: u16, e: &OnvifError) {
    // Camera text in errors is cut short (it reaches logs and the API) and
    // never shows the password.
    let text = e.to_string();
    assert!(text.chars().count() < 600, "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    match e {
        OnvifError::Fault { status: s, .. } => assert_eq!(*s, status),
        OnvifError::Unauthorized { .. } => assert_eq!(status, 401),
        OnvifError::HttpStatus { status: s, .. } => {
            assert_eq!(*s, status);
            assert!(!(200..300).contains(s));
        }
        OnvifError::BadXml { .. } => assert!((200..300).contains(&status)),
        other => panic!("a body alone cannot cause {other:?}"),
    }
}
