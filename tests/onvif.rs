//! ONVIF keyframe requests (`camgate::onvif`) against the sim's ONVIF
//! endpoint (`camgate::sim::onvif`) on loopback: discovery and its
//! fallbacks, WS-Security UsernameToken and HTTP Digest (RFC 7616),
//! failures, and end to end through a sim camera pulled with retina, where
//! SetSynchronizationPoint must bring a keyframe long before the clip's own
//! next IDR.

use std::net::SocketAddr;
use std::time::Duration;

use camgate::credentials::Credentials;
use camgate::onvif::{OnvifClient, OnvifError};
use camgate::sim::onvif::{OnvifAuth, OnvifSim, OnvifSimCalls, PROFILE_TOKEN};
use camgate::sim::{clip_info, SimOptions, SimServer};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const USER: &str = "onvifuser";
const PASSWORD: &str = "Pa55-w0rd-xyzzy";

fn creds(password: &str) -> Option<Credentials> {
    Some(Credentials::new(USER, password))
}

/// A sim RTSP server and its ONVIF endpoint; both stop on `stop`.
struct Rig {
    /// The RTSP server's address.
    rtsp: SocketAddr,
    /// Device service URL of sim camera `cam`.
    device_url: url::Url,
    /// The ONVIF endpoint's request counts.
    calls: OnvifSimCalls,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Rig {
    /// Starts both servers with `credentials` on each; `configure` adjusts
    /// the ONVIF endpoint before it runs.
    async fn start(credentials: Option<Credentials>, configure: impl FnOnce(&mut OnvifSim)) -> Rig {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let options = SimOptions {
            credentials: credentials.clone(),
            ..Default::default()
        };
        let server = SimServer::bind(any, options).await.expect("bind sim");
        let mut onvif = OnvifSim::bind(any, credentials, server.keyframe_trigger())
            .await
            .expect("bind ONVIF sim");
        configure(&mut onvif);
        let shutdown = CancellationToken::new();
        let rig = Rig {
            rtsp: server.local_addr(),
            device_url: onvif.device_url("cam"),
            calls: onvif.calls(),
            shutdown: shutdown.clone(),
            tasks: Vec::new(),
        };
        let tasks = vec![
            tokio::spawn(server.run(shutdown.clone())),
            tokio::spawn(onvif.run(shutdown)),
        ];
        Rig { tasks, ..rig }
    }

    fn client(&self, credentials: Option<Credentials>) -> OnvifClient {
        OnvifClient::new(self.device_url.clone(), credentials)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("servers stop within 5 s")
                .expect("server tasks do not panic");
        }
    }
}

/// After discovery, every further request is exactly one SOAP call.
async fn assert_one_call_per_request(client: &mut OnvifClient, calls: &OnvifSimCalls) {
    for i in 1..=3 {
        let before = calls.total();
        client.request_keyframe().await.expect("cached request");
        assert_eq!(calls.total(), before + 1, "request {i} after discovery");
    }
}

#[tokio::test]
async fn discovers_then_sends_one_call_per_keyframe_without_credentials() {
    let rig = Rig::start(None, |_| {}).await;
    let mut client = rig.client(None);
    client.request_keyframe().await.expect("first request");
    // No clock sync without credentials: GetCapabilities, GetProfiles, Set.
    assert_eq!(rig.calls.total(), 3);
    assert_eq!(rig.calls.of("GetCapabilities"), 1);
    assert_eq!(rig.calls.of("GetProfiles"), 1);
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 1);
    assert_eq!(client.profile_token(), Some(PROFILE_TOKEN));
    let media = client.media_url().unwrap().as_str().to_owned();
    assert!(
        media.ends_with("/onvif/media_service?camera=cam"),
        "{media}"
    );
    assert_one_call_per_request(&mut client, &rig.calls).await;
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 4);
    rig.stop().await;
}

#[tokio::test]
async fn discovers_then_sends_one_call_per_keyframe_with_ws_security() {
    let rig = Rig::start(creds(PASSWORD), |_| {}).await;
    let mut client = rig.client(creds(PASSWORD));
    client.request_keyframe().await.expect("first request");
    assert_eq!(rig.calls.of("GetSystemDateAndTime"), 1);
    assert_eq!(rig.calls.total(), 4);
    assert_one_call_per_request(&mut client, &rig.calls).await;

    // Credentials in the URL's userinfo work the same way.
    let mut url = rig.device_url.clone();
    url.set_username(USER).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let mut from_url = OnvifClient::new(url, None);
    from_url
        .request_keyframe()
        .await
        .expect("userinfo credentials");
    assert!(!format!("{from_url:?}").contains(PASSWORD));
    rig.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_password_is_not_authorized_and_not_retried() {
    let rig = Rig::start(creds(PASSWORD), |_| {}).await;
    let wrong = format!("{PASSWORD}-wrong");
    let mut client = rig.client(creds(&wrong));
    let e = client.request_keyframe().await.unwrap_err();
    let text = e.to_string();
    assert!(e.is_auth(), "{text}");
    assert!(
        text.contains("NotAuthorized") && text.contains("GetCapabilities"),
        "{text}"
    );
    assert!(!text.contains(&wrong) && !text.contains(PASSWORD), "{text}");
    assert!(!format!("{e:?}").contains(&wrong), "{e:?}");
    // The clock (unauthenticated) and one refused call: no fallback to
    // GetServices or the conventional path with the same bad credentials.
    assert_eq!(rig.calls.of("GetSystemDateAndTime"), 1);
    assert_eq!(rig.calls.total(), 2);
    assert!(client.media_url().is_none());

    let mut anonymous = rig.client(None);
    let e = anonymous.request_keyframe().await.unwrap_err();
    assert!(
        e.is_auth() && e.to_string().contains("NotAuthorized"),
        "{e}"
    );
    assert_eq!(rig.calls.total(), 3);
    rig.stop().await;
}

#[tokio::test]
async fn a_digest_only_camera_is_answered_once_then_up_front() {
    let rig = Rig::start(creds(PASSWORD), |s| s.set_auth(OnvifAuth::HttpDigest)).await;
    let mut client = rig.client(creds(PASSWORD));
    client.request_keyframe().await.expect("HTTP Digest");
    // The clock needs no authentication; GetCapabilities meets the
    // challenge once, and the answer rides on every later request.
    assert_eq!(rig.calls.unauthorized(), 1);
    assert_eq!(rig.calls.of("GetCapabilities"), 2);
    assert_eq!(rig.calls.total(), 5);
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 1);
    assert_one_call_per_request(&mut client, &rig.calls).await;
    assert_eq!(rig.calls.unauthorized(), 1);
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 4);
    rig.stop().await;

    // Both layers at once: the UsernameToken and HTTP Digest.
    let rig = Rig::start(creds(PASSWORD), |s| s.set_auth(OnvifAuth::Both)).await;
    let mut client = rig.client(creds(PASSWORD));
    client
        .request_keyframe()
        .await
        .expect("Digest and WS-Security");
    assert_eq!(rig.calls.unauthorized(), 1);
    assert_one_call_per_request(&mut client, &rig.calls).await;
    rig.stop().await;
}

#[tokio::test]
async fn a_digest_camera_refusing_the_password_is_a_clear_error() {
    let rig = Rig::start(creds(PASSWORD), |s| s.set_auth(OnvifAuth::HttpDigest)).await;
    let wrong = format!("{PASSWORD}-wrong");
    let mut client = rig.client(creds(&wrong));
    let e = client.request_keyframe().await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            OnvifError::CredentialsRejected {
                scheme: "Digest",
                ..
            }
        ) && e.is_auth(),
        "{text}"
    );
    assert!(
        text.contains("GetCapabilities")
            && text.contains("rejected the user name and password")
            && text.contains("camgate-sim"),
        "{text}"
    );
    assert!(
        !text.contains(&wrong) && !format!("{e:?}").contains(&wrong),
        "{e:?}"
    );
    // One unanswered try, one wrong answer, and no other way of discovery.
    assert_eq!(rig.calls.unauthorized(), 2);
    assert_eq!(
        rig.calls.total(),
        3,
        "GetSystemDateAndTime and 2 x GetCapabilities"
    );
    assert!(client.media_url().is_none());
    // The next request starts over, with the same bounded number of tries.
    let e = client.request_keyframe().await.unwrap_err();
    assert!(e.is_auth(), "{e}");
    assert_eq!(rig.calls.unauthorized(), 4);

    // Without credentials the challenge is named.
    let e = rig.client(None).request_keyframe().await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, OnvifError::Unauthorized { .. }) && e.is_auth(),
        "{text}"
    );
    assert!(
        text.contains("401") && text.contains("Digest realm=\"camgate-sim\""),
        "{text}"
    );
    assert_eq!(rig.calls.unauthorized(), 5);
    rig.stop().await;
}

#[tokio::test]
async fn falls_back_to_get_services_then_to_the_conventional_path() {
    let rig = Rig::start(creds(PASSWORD), |s| s.refuse("GetCapabilities")).await;
    let mut client = rig.client(creds(PASSWORD));
    client.request_keyframe().await.expect("via GetServices");
    assert_eq!(rig.calls.of("GetServices"), 1);
    assert!(client
        .media_url()
        .unwrap()
        .as_str()
        .contains("/onvif/media_service?camera=cam"));
    rig.stop().await;

    let rig = Rig::start(None, |s| {
        s.refuse("GetCapabilities");
        s.refuse("GetServices");
    })
    .await;
    let mut client = rig.client(None);
    client
        .request_keyframe()
        .await
        .expect("via /onvif/media_service");
    assert_eq!(rig.calls.of("GetCapabilities"), 1);
    assert_eq!(rig.calls.of("GetServices"), 1);
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 1);
    assert_eq!(
        client.media_url().unwrap().path(),
        "/onvif/media_service",
        "device URL path replaced"
    );
    rig.stop().await;
}

#[tokio::test]
async fn follows_a_drifted_camera_clock_for_created() {
    let hour = 3600;
    let rig = Rig::start(creds(PASSWORD), |s| s.set_clock_offset(hour)).await;
    rig.client(creds(PASSWORD))
        .request_keyframe()
        .await
        .expect("Created follows GetSystemDateAndTime");
    rig.stop().await;

    // Proof that the sim checks Created: without the clock, it refuses.
    let rig = Rig::start(creds(PASSWORD), |s| {
        s.set_clock_offset(hour);
        s.refuse("GetSystemDateAndTime");
    })
    .await;
    let e = rig
        .client(creds(PASSWORD))
        .request_keyframe()
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{e}");
    rig.stop().await;
}

#[tokio::test]
async fn a_refused_profile_is_reported_and_discovery_forgotten() {
    let rig = Rig::start(None, |_| {}).await;
    let mut client = rig.client(None).with_profile_token("no_such_profile");
    let e = client.request_keyframe().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, OnvifError::Fault { status: 400, .. }), "{text}");
    assert!(
        text.contains("SetSynchronizationPoint") && text.contains("NoProfile"),
        "{text}"
    );
    assert_eq!(
        rig.calls.of("GetProfiles"),
        0,
        "configured token skips GetProfiles"
    );
    assert!(client.media_url().is_none(), "a fault forgets discovery");
    rig.stop().await;
}

#[tokio::test]
async fn transport_failures_end_discovery() {
    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/onvif/device_service")).unwrap();
    let e = OnvifClient::new(url, creds(PASSWORD))
        .request_keyframe()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Io { .. }), "{e}");

    // A server that answers too much, then one that never answers.
    let huge = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = [&huge, &silent].map(|l| {
        url::Url::parse(&format!(
            "http://{}/onvif/device_service",
            l.local_addr().unwrap()
        ))
        .unwrap()
    });
    // Every way of discovery meets the same server: each answer is too large.
    let huge_task = tokio::spawn(async move {
        loop {
            let (mut s, _) = huge.accept().await.unwrap();
            tokio::spawn(async move {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                    .await;
                let block = vec![b' '; 64 * 1024];
                for _ in 0..40 {
                    if s.write_all(&block).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let silent_task = tokio::spawn(async move {
        let (s, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        drop(s);
    });
    let [huge_url, silent_url] = urls;
    let e = OnvifClient::new(huge_url, None)
        .request_keyframe()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::ResponseTooLarge { .. }), "{e}");
    let started = tokio::time::Instant::now();
    let e = OnvifClient::new(silent_url, None)
        .request_keyframe()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Timeout { .. }), "{e}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    huge_task.abort();
    silent_task.abort();
}

/// Pulls `cam` over RTSP/TCP and returns the demuxed video frames.
async fn pull(rtsp: SocketAddr) -> retina::client::Demuxed {
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
    let url = url::Url::parse(&format!("rtsp://{rtsp}/cam?audio=0")).unwrap();
    let creds = retina::client::Credentials {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    let mut session = Session::describe(url, SessionOptions::default().creds(Some(creds)))
        .await
        .expect("DESCRIBE");
    session
        .setup(
            0,
            SetupOptions::default().transport(Transport::Tcp(Default::default())),
        )
        .await
        .expect("SETUP");
    session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed")
}

/// The next video frame's keyframe flag.
async fn next_frame(demuxed: &mut retina::client::Demuxed) -> bool {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), demuxed.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream continues")
            .expect("no retina error");
        if let retina::codec::CodecItem::VideoFrame(f) = item {
            return f.is_random_access_point();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_synchronization_point_brings_a_keyframe_within_three_frames() {
    let gop = clip_info().gop;
    assert!(gop >= 30, "the test needs a long natural GOP, got {gop}");
    let rig = Rig::start(creds(PASSWORD), |_| {}).await;
    let mut demuxed = pull(rig.rtsp).await;
    let mut client = rig.client(creds(PASSWORD));
    assert!(next_frame(&mut demuxed).await, "first frame is a keyframe");
    // Twice: the first request includes discovery, the second is one call.
    for round in 0..2 {
        for i in 0..10 {
            assert!(
                !next_frame(&mut demuxed).await,
                "round {round}: frame {i} is not a keyframe"
            );
        }
        client
            .request_keyframe()
            .await
            .expect("SetSynchronizationPoint");
        let mut waited = 0;
        loop {
            waited += 1;
            if next_frame(&mut demuxed).await {
                break;
            }
            assert!(
                waited < 3,
                "round {round}: no keyframe within 3 frames of the request"
            );
        }
        eprintln!("round {round}: keyframe {waited} frame(s) after the request");
    }
    assert_eq!(rig.calls.of("SetSynchronizationPoint"), 2);
    drop(demuxed);
    rig.stop().await;
}
