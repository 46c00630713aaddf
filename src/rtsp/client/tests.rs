//! Scripted sessions: canned camera answers in, requests on the wire out.

use super::*;
use crate::rtsp::framer::{Framer, Item};
use crate::rtsp::message::Request;

macro_rules! fixture {
    ($name:literal) => {
        &include_bytes!(concat!("../../../tests/fixtures/camera-rtsp/", $name))[..]
    };
}

const UA: &str = "camgate-test/1";

/// A fixture answer with its `CSeq` replaced (the body is untouched).
fn with_cseq(raw: &[u8], cseq: u32) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut out = String::new();
    for line in head.split_inclusive("\r\n") {
        if line.to_ascii_lowercase().starts_with("cseq:") {
            out.push_str(&format!("CSeq: {cseq}\r\n"));
        } else {
            out.push_str(line);
        }
    }
    let mut v = out.into_bytes();
    v.extend_from_slice(&raw[end..]);
    v
}

fn simple(status: &str, cseq: u32, extra: &str) -> Vec<u8> {
    format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
}

struct Harness {
    client: Client,
    now: Instant,
}

impl Harness {
    fn new(url: &str, credentials: Option<(&str, &str)>) -> Self {
        let now = Instant::now();
        let config = ClientConfig {
            url: Url::parse(url).unwrap(),
            credentials: credentials.map(|(u, p)| crate::credentials::Credentials::new(u, p)),
            user_agent: UA.into(),
        };
        Harness {
            client: Client::new(config, now),
            now,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.client.handle_input(bytes, self.now);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
    }

    /// Every request written since the last call; each carries a CSeq and
    /// our User-Agent.
    fn requests(&mut self) -> Vec<Request> {
        let mut f = Framer::new();
        while let Some(b) = self.client.poll_transmit() {
            f.push(&b);
        }
        let reqs: Vec<Request> = std::iter::from_fn(|| f.poll())
            .map(|i| match i {
                Item::Request(r) => r,
                other => panic!("client wrote {other:?}"),
            })
            .collect();
        for r in &reqs {
            assert!(r.headers.cseq().is_some(), "{r:?}");
            assert_eq!(r.headers.get("User-Agent"), Some(UA));
        }
        reqs
    }

    fn one_request(&mut self) -> Request {
        let mut r = self.requests();
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

fn line(r: &Request) -> (&str, &str, Option<u32>) {
    (r.method.as_str(), r.uri.as_str(), r.headers.cseq())
}

/// A Digest parameter of an `Authorization` value.
fn digest_param<'a>(auth: &'a str, key: &str) -> Option<&'a str> {
    auth.strip_prefix("Digest ")?.split(", ").find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

const DAHUA_URL: &str = "rtsp://192.168.5.111:554/cam/realmonitor?channel=1&subtype=1";
const DAHUA_BASE: &str =
    "rtsp://192.168.5.111:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif/";

#[test]
fn tcp_session_two_streams() {
    let mut h = Harness::new(DAHUA_URL, None);
    let r = h.one_request();
    assert_eq!(line(&r), ("OPTIONS", DAHUA_URL, Some(1)));
    assert_eq!(r.headers.get("Authorization"), None);
    h.feed(&with_cseq(fixture!("dahua_options.txt"), 1));
    assert_eq!(h.client.server(), Some("Rtsp Server/3.0"));

    let r = h.one_request();
    assert_eq!(line(&r), ("DESCRIBE", DAHUA_URL, Some(2)));
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    // Interleaved data is passed on in any state.
    h.feed(b"$\x05\x00\x02hi");
    h.feed(&with_cseq(fixture!("dahua_describe_h264_aac_onvif.txt"), 2));
    let ev = h.events();
    assert!(matches!(&ev[0], Event::Interleaved { channel: 5, data } if &data[..] == b"hi"));
    let Event::Described(p) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(p.streams.len(), 3);
    assert_eq!(
        h.client.poll_timeout(),
        None,
        "waiting for setup(), nothing scheduled"
    );

    h.client.setup(
        vec![
            (0, TransportRequest::Tcp { rtp_channel: 0 }),
            (1, TransportRequest::Tcp { rtp_channel: 2 }),
        ],
        h.now,
    );
    let r = h.one_request();
    assert_eq!(
        line(&r),
        ("SETUP", &*format!("{DAHUA_BASE}trackID=0"), Some(3))
    );
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(r.headers.get("Session"), None);
    h.feed(&with_cseq(fixture!("dahua_setup.txt"), 3));

    let r = h.one_request();
    assert_eq!(
        line(&r),
        ("SETUP", &*format!("{DAHUA_BASE}trackID=1"), Some(4))
    );
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=2-3")
    );
    assert_eq!(r.headers.get("Session"), Some("634214675641"));
    h.feed(&simple("200 OK", 4, "Session: 634214675641;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=0C0FFEE0\r\n"));

    let r = h.one_request();
    assert_eq!(line(&r), ("PLAY", DAHUA_BASE, Some(5)));
    assert_eq!(r.headers.get("Session"), Some("634214675641"));
    assert_eq!(r.headers.get("Range"), Some("npt=0.000-"));
    // Answers with a Session id that differs from SETUP's: we keep SETUP's.
    h.feed(&with_cseq(fixture!("dahua_play.txt"), 5));
    let ev = h.events();
    let [Event::Playing(s)] = &ev[..] else {
        panic!("{ev:?}")
    };
    let want = vec![
        StreamSetup {
            stream: 0,
            request: TransportRequest::Tcp { rtp_channel: 0 },
            channels: Some((0, 1)),
            server_ports: None,
            source: None,
            ssrc: Some(0x30A98EE7),
            rtp_info_seq: Some(47121),
            rtp_info_rtptime: Some(3475222385),
        },
        StreamSetup {
            stream: 1,
            request: TransportRequest::Tcp { rtp_channel: 2 },
            channels: Some((2, 3)),
            server_ports: None,
            source: None,
            ssrc: Some(0x0C0FFEE0),
            rtp_info_seq: Some(45186),
            rtp_info_rtptime: Some(2234446919),
        },
    ];
    assert_eq!(s, &want);

    h.client.send_interleaved(1, b"rtcp");
    assert_eq!(
        h.client.poll_transmit().as_deref(),
        Some(&b"$\x01\x00\x04rtcp"[..])
    );

    h.client.teardown(h.now);
    let r = h.one_request();
    assert_eq!(line(&r), ("TEARDOWN", DAHUA_BASE, Some(6)));
    assert_eq!(r.headers.get("Session"), Some("634214675641"));
    h.feed(&with_cseq(fixture!("reolink_teardown.txt"), 6));
    assert!(matches!(&h.events()[..], [Event::TornDown]));
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn udp_session() {
    let url = "rtsp://192.168.1.101/live";
    let mut h = Harness::new(url, None);
    h.requests();
    // OPTIONS not implemented: DESCRIBE anyway.
    h.feed(&simple("501 Not Implemented", 1, ""));
    assert_eq!(line(&h.one_request()), ("DESCRIBE", url, Some(2)));
    h.feed(&with_cseq(fixture!("missing_content_type_describe.txt"), 2));
    assert!(matches!(&h.events()[..], [Event::Described(_)]));
    h.client
        .setup(vec![(0, TransportRequest::Udp { rtp_port: 54060 })], h.now);
    let r = h.one_request();
    assert_eq!(
        line(&r),
        ("SETUP", "rtsp://192.168.1.101/live/streamid=0", Some(3))
    );
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP;unicast;client_port=54060-54061")
    );
    h.feed(&with_cseq(fixture!("luckfox_rkipc_setup_udp.txt"), 3));
    let r = h.one_request();
    assert_eq!(line(&r), ("PLAY", url, Some(4)));
    assert_eq!(r.headers.get("Session"), Some("12345678"));
    h.feed(&simple("200 OK", 4, "Session: 12345678\r\nRTP-Info: url=rtsp://192.168.1.101/live/streamid=0;seq=7;rtptime=-1\r\n"));
    let ev = h.events();
    let [Event::Playing(s)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(s[0].server_ports, Some((49152, 49153)));
    assert_eq!((s[0].channels, s[0].ssrc), (None, Some(0x22345685)));
    assert_eq!((s[0].rtp_info_seq, s[0].rtp_info_rtptime), (Some(7), None));
}

#[test]
fn session_timeout_and_ssrc_quirks() {
    for (fixture, ssrc) in [
        (fixture!("hikvision_setup_ssrc_space.txt"), Some(0x0d6d6627)),
        (fixture!("rubetek_setup_ssrc_0x.txt"), None),
        (fixture!("setup_ssrc_4_hex_digits.txt"), None),
        (fixture!("reolink_setup.txt"), None),
    ] {
        let mut h = described_reolink(None);
        h.client
            .setup(vec![(0, TransportRequest::Tcp { rtp_channel: 0 })], h.now);
        h.requests();
        h.feed(&with_cseq(fixture, 3));
        h.requests();
        h.feed(&simple("200 OK", 4, ""));
        let ev = h.events();
        let [Event::Playing(s)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!((s[0].ssrc, s[0].channels), (ssrc, Some((0, 1))));
    }
}

/// OPTIONS and DESCRIBE done with the reolink fixture; next CSeq is 3.
fn described_reolink(creds: Option<(&str, &str)>) -> Harness {
    let mut h = Harness::new("rtsp://192.168.5.206/h264Preview_01_main", creds);
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(&with_cseq(fixture!("reolink_describe.txt"), 2));
    assert!(matches!(&h.events()[..], [Event::Described(_)]));
    h
}

/// Plays the reolink video stream; returns when `Playing` is out.
fn playing_reolink(h: &mut Harness, setup_answer: &[u8], play_answer: &[u8]) -> u32 {
    h.client
        .setup(vec![(0, TransportRequest::Tcp { rtp_channel: 0 })], h.now);
    let cseq = h.one_request().headers.cseq().unwrap();
    h.feed(&with_cseq(setup_answer, cseq));
    let cseq = h.one_request().headers.cseq().unwrap();
    h.feed(&with_cseq(play_answer, cseq));
    assert!(matches!(&h.events()[..], [Event::Playing(_)]));
    cseq
}

#[test]
fn rtp_info_bad_rtptime_single_stream() {
    let mut h = described_reolink(None);
    h.client
        .setup(vec![(1, TransportRequest::Tcp { rtp_channel: 2 })], h.now);
    h.requests();
    h.feed(&with_cseq(fixture!("reolink_setup.txt"), 3));
    h.requests();
    // Its url entries name another server's tracks: one stream, so the
    // first entry is taken (RFC 2326 section 14.3); rtptime=-1 is absent.
    h.feed(&with_cseq(fixture!("bad_rtptime.txt"), 4));
    let ev = h.events();
    let [Event::Playing(s)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!((s[0].rtp_info_seq, s[0].rtp_info_rtptime), (Some(1), None));
    assert_eq!(h.client.session_timeout(), Duration::from_secs(60));
}

#[test]
fn keepalive_timing_and_get_parameter_fallback() {
    let mut h = described_reolink(None);
    let t_play = h.now;
    playing_reolink(
        &mut h,
        &simple(
            "200 OK",
            0,
            "Session: F8F8E425;timeout=20\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n",
        ),
        fixture!("reolink_play.txt"),
    );
    assert_eq!(h.client.session_timeout(), Duration::from_secs(20));
    assert_eq!(
        h.client.poll_timeout(),
        Some(t_play + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(9));
    assert!(h.requests().is_empty());
    h.advance(Duration::from_secs(1));
    let r = h.one_request();
    assert_eq!(
        line(&r),
        (
            "GET_PARAMETER",
            "rtsp://192.168.5.206/h264Preview_01_main/",
            Some(5)
        )
    );
    assert_eq!(r.headers.get("Session"), Some("F8F8E425"));
    assert_eq!(h.client.poll_timeout(), Some(h.now + REQUEST_TIMEOUT));
    h.feed(&simple("405 Method Not Allowed", 5, ""));
    assert!(h.events().is_empty());
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    let r = h.one_request();
    assert_eq!(
        line(&r),
        (
            "OPTIONS",
            "rtsp://192.168.5.206/h264Preview_01_main/",
            Some(6)
        )
    );
    assert_eq!(r.headers.get("Session"), Some("F8F8E425"));
    h.feed(&simple("200 OK", 6, ""));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.one_request().method, "OPTIONS");
    // Unanswered keepalive: the session fails after REQUEST_TIMEOUT.
    h.advance(REQUEST_TIMEOUT);
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::Failed(ClientError::Timeout { method, cseq: 7, secs: 10 })] if method == "OPTIONS"),
        "{ev:?}"
    );
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn keepalive_session_not_found_fails() {
    let mut h = described_reolink(None);
    playing_reolink(
        &mut h,
        fixture!("reolink_setup.txt"),
        fixture!("reolink_play.txt"),
    );
    h.advance(Duration::from_secs(30));
    let cseq = h.one_request().headers.cseq().unwrap();
    h.feed(&simple("454 Session Not Found", cseq, ""));
    let ev = h.events();
    assert!(
        matches!(
            &ev[..],
            [Event::Failed(ClientError::Status { status: 454, .. })]
        ),
        "{ev:?}"
    );
}

#[test]
fn longse_digest_challenge() {
    let url = "rtsp://192.168.1.10:554/stream";
    let mut h = Harness::new(url, Some(("admin", "12345")));
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    assert_eq!(h.one_request().headers.get("Authorization"), None);
    h.feed(&with_cseq(fixture!("longse_unauthorized.txt"), 2));
    let r = h.one_request();
    assert_eq!(line(&r), ("DESCRIBE", url, Some(3)));
    let auth = r.headers.get("Authorization").unwrap();
    assert_eq!(digest_param(auth, "username"), Some("admin"));
    assert_eq!(digest_param(auth, "realm"), Some("Surveillance Server"));
    assert_eq!(digest_param(auth, "nonce"), Some("98481030"));
    assert_eq!(digest_param(auth, "uri"), Some(url));
    // RFC 2069 (no qop): MD5(MD5(admin:Surveillance Server:12345):98481030:MD5(DESCRIBE:uri)),
    // computed independently with Python's hashlib.
    assert_eq!(
        digest_param(auth, "response"),
        Some("66966b596f3d8e5a6531ca8340f68edd")
    );
    // The same challenge again: wrong credentials.
    h.feed(&with_cseq(fixture!("longse_unauthorized.txt"), 3));
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(
        matches!(&ev[0], Event::Failed(ClientError::Unauthorized { method, cseq: 3 }) if method == "DESCRIBE")
    );
}

#[test]
fn unauthorized_without_credentials() {
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    // OPTIONS wants credentials: DESCRIBE anyway.
    h.feed(&with_cseq(fixture!("longse_unauthorized.txt"), 1));
    assert_eq!(h.one_request().method, "DESCRIBE");
    h.feed(&with_cseq(fixture!("longse_unauthorized.txt"), 2));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Unauthorized { cseq: 2, .. })]
    ));
}

#[test]
fn digest_preferred_and_stale_nonce_renewal() {
    let mut h = Harness::new("rtsp://192.168.5.206/h264Preview_01_main", Some(("u", "p")));
    h.requests();
    // OPTIONS challenge adopted: DESCRIBE goes out answered.
    h.feed(&simple(
        "401 Unauthorized",
        1,
        "WWW-Authenticate: Basic realm=\"cam\"\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n1\", qop=\"auth\"\r\n",
    ));
    let auth = h
        .one_request()
        .headers
        .get("Authorization")
        .unwrap()
        .to_string();
    assert_eq!(
        (digest_param(&auth, "nonce"), digest_param(&auth, "nc")),
        (Some("n1"), Some("00000001"))
    );
    h.feed(&with_cseq(fixture!("reolink_describe.txt"), 2));
    h.events();
    h.client
        .setup(vec![(0, TransportRequest::Tcp { rtp_channel: 0 })], h.now);
    let auth = h
        .one_request()
        .headers
        .get("Authorization")
        .unwrap()
        .to_string();
    assert_eq!(digest_param(&auth, "nc"), Some("00000002"));
    h.feed(&with_cseq(fixture!("reolink_setup.txt"), 3));
    h.requests();
    h.feed(&with_cseq(fixture!("reolink_play.txt"), 4));
    assert!(matches!(&h.events()[..], [Event::Playing(_)]));

    h.advance(Duration::from_secs(30));
    let r = h.one_request();
    assert_eq!(line(&r).2, Some(5));
    let stale =
        "WWW-Authenticate: Digest realm=\"cam\", nonce=\"n2\", qop=\"auth\", stale=true\r\n";
    h.feed(&simple("401 Unauthorized", 5, stale));
    let r = h.one_request();
    assert_eq!(
        line(&r),
        (
            "GET_PARAMETER",
            "rtsp://192.168.5.206/h264Preview_01_main/",
            Some(6)
        )
    );
    let auth = r.headers.get("Authorization").unwrap();
    assert_eq!(
        (digest_param(auth, "nonce"), digest_param(auth, "nc")),
        (Some("n2"), Some("00000001"))
    );
    h.feed(&simple("200 OK", 6, ""));
    assert!(h.events().is_empty());
    // Renewal again on a later request is fine; a second 401 for the same one is not.
    h.advance(Duration::from_secs(30));
    h.requests();
    h.feed(&simple("401 Unauthorized", 7, &stale.replace("n2", "n3")));
    h.requests();
    h.feed(&simple("401 Unauthorized", 8, &stale.replace("n2", "n4")));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Unauthorized { cseq: 8, .. })]
    ));
}

#[test]
fn basic_auth() {
    let mut h = Harness::new("rtsp://cam/s", Some(("admin", "pw")));
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(&simple(
        "401 Unauthorized",
        2,
        "WWW-Authenticate: Basic realm=\"x\"\r\n",
    ));
    let r = h.one_request();
    assert_eq!(r.headers.get("Authorization"), Some("Basic YWRtaW46cHc="));
    h.feed(&simple(
        "401 Unauthorized",
        3,
        "WWW-Authenticate: Basic realm=\"x\"\r\n",
    ));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Unauthorized { cseq: 3, .. })]
    ));
}

#[test]
fn redirect_and_not_found() {
    let mut h = Harness::new("rtsp://user:pw@cam/s", None);
    assert_eq!(
        line(&h.one_request()).1,
        "rtsp://cam/s",
        "credentials never go on the wire"
    );
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(&simple(
        "302 Moved",
        2,
        "Location: rtsp://u:p@other:8554/live\r\n",
    ));
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::Redirect(u)] if u.as_str() == "rtsp://other:8554/live"),
        "{ev:?}"
    );
    assert_eq!(h.client.poll_timeout(), None);

    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(&simple("404 Stream Not Found", 2, ""));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::NotFound { cseq: 2, .. })]
    ));

    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(&simple("503 Busy", 2, ""));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Status { status: 503, .. })]
    ));
}

#[test]
fn request_timeout_and_teardown_without_session() {
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    assert_eq!(h.client.poll_timeout(), Some(h.now + REQUEST_TIMEOUT));
    h.advance(Duration::from_millis(9_999));
    assert!(h.events().is_empty());
    h.advance(Duration::from_millis(1));
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Timeout { cseq: 1, .. })]
    ));

    let mut h = described_reolink(None);
    h.client.teardown(h.now);
    assert!(h.requests().is_empty());
    assert!(matches!(&h.events()[..], [Event::TornDown]));
}

#[test]
fn stale_and_late_answers_are_ignored() {
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple("200 OK", 99, ""));
    assert!(h.requests().is_empty() && h.events().is_empty());
    // No CSeq with one request in flight: it is the answer.
    h.feed(b"RTSP/1.0 200 OK\r\n\r\n");
    assert_eq!(h.one_request().method, "DESCRIBE");
}

#[test]
fn camera_requests_are_answered() {
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 40\r\n\r\nSET_PARAMETER rtsp://cam/s RTSP/1.0\r\nCSeq: 41\r\n\r\n");
    let out = h.client.poll_transmit().unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(
        text.starts_with("RTSP/1.0 200 OK\r\nCSeq: 40\r\n"),
        "{text}"
    );
    assert!(
        text.contains("RTSP/1.0 551 Option not supported\r\nCSeq: 41\r\n"),
        "{text}"
    );
    assert!(h.events().is_empty());
}

#[test]
fn framing_error_fails_the_session() {
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 999999999\r\n\r\n");
    assert!(matches!(
        &h.events()[..],
        [Event::Failed(ClientError::Protocol(_))]
    ));
}

/// The camera-side abuse limits: each ends the session with a sentence
/// naming the request, and nothing is buffered beyond the limit.
#[test]
fn abusive_answers_fail_with_a_sentence() {
    // An endless header section.
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Junk: ");
    let chunk = [b'a'; 4096];
    for _ in 0..20 {
        h.feed(&chunk);
    }
    let events = h.events();
    let [Event::Failed(ClientError::Protocol(msg))] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        msg,
        "waiting for the answer to OPTIONS (CSeq 1): RTSP header section longer than 65536 bytes (no empty line ends it)"
    );

    // A DESCRIBE answer announcing 100 MB.
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    h.feed(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 104857600\r\n\r\nv=0\r\n");
    let events = h.events();
    let [Event::Failed(ClientError::Protocol(msg))] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        msg,
        "waiting for the answer to DESCRIBE (CSeq 2): RTSP body of 104857600 bytes exceeds the 4194304 byte limit"
    );

    // An SDP under the body limit but far beyond any real one.
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple("200 OK", 1, ""));
    h.requests();
    let sdp = format!("v=0\r\n{}", "a=x-padding\r\n".repeat(10_000));
    h.feed(
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .as_bytes(),
    );
    let events = h.events();
    assert!(
        matches!(&events[..], [Event::Failed(ClientError::Protocol(m))] if m.contains("exceeds the 65536 byte limit")),
        "{events:?}"
    );

    // A long reason phrase and Server header are cut in what is kept.
    let mut h = Harness::new("rtsp://cam/s", None);
    h.requests();
    h.feed(&simple(
        "200 OK",
        1,
        &format!("Server: {}\r\n", "s".repeat(5000)),
    ));
    assert!(h.client.server().unwrap().len() < 200);
    h.requests();
    h.feed(format!("RTSP/1.0 500 {}\r\nCSeq: 2\r\n\r\n", "r".repeat(5000)).as_bytes());
    let events = h.events();
    let [Event::Failed(e)] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(e.to_string().len() < 250, "{e}");
}

/// More than [`MAX_INGEST_BYTES_PER_SEC`] over [`INGEST_WINDOW`] ends the
/// session; the same amount spread over more time does not.
#[test]
fn interleaved_flood_fails_the_session() {
    let frame = {
        let mut f = vec![b'$', 0, 0xff, 0xff];
        f.extend(std::iter::repeat_n(0u8, 0xffff));
        f
    };
    let limit = MAX_INGEST_BYTES_PER_SEC * INGEST_WINDOW.as_secs();
    let frames = limit / frame.len() as u64 + 1;

    // Spread over 2.5 windows: fine.
    let mut h = Harness::new("rtsp://cam/s", None);
    let step = INGEST_WINDOW.mul_f64(2.5) / frames as u32;
    for _ in 0..frames {
        h.now += step;
        h.feed(&frame);
    }
    let events = h.events();
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Interleaved { .. })),
        "{:?}",
        events
            .iter()
            .find(|e| !matches!(e, Event::Interleaved { .. }))
    );

    // All at once: a flood.
    let mut h = Harness::new("rtsp://cam/s", None);
    for _ in 0..frames {
        h.feed(&frame);
    }
    let events = h.events();
    let Some(Event::Failed(e)) = events.last() else {
        panic!("no failure")
    };
    assert!(matches!(e, ClientError::Flood { .. }));
    assert_eq!(
        e.to_string(),
        "the camera sent 128 MiB within 2 s, more than the 64 MiB/s limit: a flood, not a video stream"
    );
    // Nothing more is taken in.
    h.feed(&frame);
    assert!(h.events().is_empty());
    assert_eq!(h.client.framer.buffered(), 0);
}

/// Every fixture, cut and corrupted in many ways, fed in every state:
/// no panic, and the client keeps its invariants.
#[test]
fn arbitrary_input_never_panics() {
    let fixtures: &[&[u8]] = &[
        fixture!("hikvision_describe.txt"),
        fixture!("dahua_setup.txt"),
        fixture!("bad_rtptime.txt"),
        fixture!("longse_unauthorized.txt"),
        fixture!("rubetek_setup_ssrc_0x.txt"),
        fixture!("luckfox_rkipc_setup_udp.txt"),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut h = Harness::new("rtsp://cam/s", Some(("a", "b")));
        for step in 0..12 {
            let f = fixtures[(rand() % fixtures.len() as u64) as usize];
            let mut bytes = with_cseq(f, (step % 6) as u32);
            for _ in 0..(rand() % 4) {
                let i = (rand() % bytes.len() as u64) as usize;
                bytes[i] = rand() as u8;
            }
            let cut = (rand() % (bytes.len() as u64 + 1)) as usize;
            h.feed(&bytes[..cut]);
            h.feed(&bytes[cut..]);
            for ev in h.events() {
                if let Event::Described(p) = ev {
                    let n = p.streams.len();
                    h.client.setup(
                        vec![(
                            rand() as usize % (n + 1),
                            TransportRequest::Tcp {
                                rtp_channel: rand() as u8,
                            },
                        )],
                        h.now,
                    );
                }
            }
            h.client.poll_transmit();
            if rand() % 5 == 0 {
                h.advance(Duration::from_secs(rand() % 40));
            }
            if let Some(t) = h.client.poll_timeout() {
                assert!(t >= h.now || t + Duration::from_secs(40) >= h.now);
            }
        }
        h.client.teardown(h.now);
    }
}
