//! The answers of an RTSP client connection to each method (RFC 2326
//! section 10), with its authentication against the `[auth]` policy.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::{Connection, Session, DESCRIBE_WAIT};
use crate::access::{Denied, Need, Presented};
use crate::camera::consumers::new_consumer_id;
use crate::camera::{CameraHandle, CameraState, Consumer, ConsumerKind};
use crate::egress::rtp::OutStream;
use crate::egress::rtsp::play::{Carrier, Player, Track, SR_INTERVAL};
use crate::egress::rtsp::REALM;
use crate::rtsp::digest::{digest_challenge, Authorization};
use crate::rtsp::message::Request;
use crate::rtsp::server::{parse_target, Answer, Target};
use crate::rtsp::transport::Transport;

impl Connection {
    /// This client's consumer record of `cam`, in `state`, not yet
    /// registered.
    fn consumer(&self, cam: &CameraHandle, state: &'static str) -> Consumer {
        let consumer = Consumer::new(
            new_consumer_id(),
            ConsumerKind::Rtsp,
            cam.config.id.clone(),
            None,
            cam.cancel.child_token(),
        );
        consumer.set_remote(self.peer.to_string());
        consumer.set_state(state);
        consumer
    }

    /// Checks the request's credentials for watching `camera`: the
    /// principal's name, or the refusal to send.
    async fn authorize(&self, req: &Request, camera: &str) -> Result<(), Answer> {
        let auth = &self.shared.auth;
        if !auth.enabled() {
            return Ok(());
        }
        let method = req.method.to_ascii_uppercase();
        let presented =
            req.headers
                .get("Authorization")
                .map(|value| match Authorization::parse(value) {
                    Some(Authorization::Basic { user, password }) => {
                        Ok(Presented::Basic { user, password })
                    }
                    Some(Authorization::Digest(d)) => {
                        if d.nonce != self.shared.nonce {
                            return Ok(Presented::Rejected("stale or foreign Digest nonce"));
                        }
                        Ok(match auth.token_by_name(&d.username) {
                            Some((secret, principal))
                                if d.verify(
                                    &method,
                                    REALM,
                                    &self.shared.nonce,
                                    secret.expose(),
                                ) =>
                            {
                                Presented::Verified(principal)
                            }
                            _ => Presented::Rejected("invalid Digest answer"),
                        })
                    }
                    None => Err("unsupported or malformed Authorization (use Digest or Basic)"),
                });
        match auth
            .authorize(presented, self.peer.ip(), Need::Watch(camera))
            .await
        {
            Ok(_) => Ok(()),
            Err(Denied::Unauthorized(why)) => {
                tracing::debug!(peer = %self.peer, why, "rtsp authentication failed");
                Err(Answer::new(401)
                    .header(
                        "WWW-Authenticate",
                        digest_challenge(REALM, &self.shared.nonce),
                    )
                    .header("WWW-Authenticate", format!("Basic realm=\"{REALM}\"")))
            }
            Err(Denied::Forbidden(why)) => Err(Answer::new(403).header("X-Reason", why)),
            Err(Denied::LockedOut(wait)) => Err(Answer::new(403).header(
                "X-Reason",
                format!(
                    "too many failed authentications from this address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )),
            Err(Denied::Busy) => Err(Answer::new(503).header("Retry-After", "1")),
        }
    }

    /// The camera a request names, authorized; or the answer to send.
    async fn camera(&self, req: &Request) -> Result<(Target, CameraHandle), Answer> {
        let Some(target) = parse_target(&req.uri) else {
            return Err(Answer::new(404).header(
                "X-Reason",
                "the URL names no camera: use rtsp://HOST:PORT/{camera_id}",
            ));
        };
        // Authorized before the camera is looked up, so that strangers
        // cannot list camera ids by probing.
        self.authorize(req, &target.camera).await?;
        // A camera another node of the cluster plays: the client goes
        // there (RFC 2326 11.3.3; the node may be warming it up here).
        if let Some(owner) = self
            .shared
            .locator
            .as_ref()
            .and_then(|l| l.remote_owner(&target.camera))
        {
            if let Some(base) = &owner.rtsp {
                let location = format!(
                    "{}/{}",
                    base.as_str().trim_end_matches('/'),
                    percent_encoding::utf8_percent_encode(
                        &target.camera,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                );
                return Err(Answer::new(302).header("Location", location).header(
                    "X-Reason",
                    format!(
                        "camera {:?} is played by node {:?}",
                        target.camera, owner.node
                    ),
                ));
            }
        }
        match self.shared.supervisor.camera(&target.camera) {
            Some(cam) => Ok((target, cam)),
            None => Err(Answer::new(404)
                .header("X-Reason", format!("no camera with id {:?}", target.camera))),
        }
    }

    pub(super) async fn describe(&mut self, req: &Request) -> Answer {
        let (target, cam) = match self.camera(req).await {
            Ok(c) => c,
            Err(a) => return a,
        };
        if cam.config.on_demand && self.describing.is_none() && self.session.is_none() {
            // Wanting the camera starts it (and keeps it up until SETUP).
            let consumer = self.consumer(&cam, "describing");
            self.describing = Some(cam.consumers.register(consumer));
        }
        let info = match wait_for_video(&cam).await {
            Some(info) => info,
            None => {
                let status = cam.status.borrow().clone();
                let mut why = format!(
                    "camera {:?} is not playing (state {:?})",
                    cam.config.id, status.state
                );
                if let Some(e) = status.last_error {
                    why.push_str(&format!(": {e}"));
                }
                return Answer::new(503).header("X-Reason", why);
            }
        };
        let base = content_base(&req.uri, &target.camera);
        let sdp = describe_sdp(&cam.config.id, &info, self.local.ip());
        Answer::new(200)
            .header("Content-Base", base)
            .body("application/sdp", sdp)
    }

    pub(super) async fn setup(&mut self, req: &Request) -> Answer {
        let (target, cam) = match self.camera(req).await {
            Ok(c) => c,
            Err(a) => return a,
        };
        let track = target.track.unwrap_or(0);
        let info = cam.hub.info();
        if track > 1 || (track == 1 && info.audio.is_none()) {
            return Answer::new(404).header(
                "X-Reason",
                format!("camera {:?} has no track {track}", cam.config.id),
            );
        }
        if let Some(s) = &self.session {
            if !session_matches(req, &s.id) {
                return Answer::new(459);
            }
            if s.camera.config.id != cam.config.id {
                return Answer::new(459).header("X-Reason", "one camera per session");
            }
            if s.player.is_some() {
                return Answer::new(455);
            }
        } else if req.headers.get("Session").is_some() {
            return Answer::new(454);
        }
        let Some(value) = req.headers.get("Transport") else {
            return Answer::new(461).header("X-Reason", "no Transport header");
        };
        if value
            .split(',')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("multicast")
        {
            return Answer::new(461).header(
                "X-Reason",
                "multicast is not offered; use unicast UDP or TCP",
            );
        }
        let transport = Transport::parse(value);
        let tcp = transport.profile.to_ascii_uppercase().ends_with("/TCP")
            || transport.interleaved.is_some();
        let clock = if track == 0 {
            90_000
        } else {
            info.audio.as_ref().map_or(8000, |a| a.clock_rate)
        };
        let mut server_ports = None;
        let carrier = if tcp {
            let (rtp, rtcp) = transport
                .interleaved
                .unwrap_or((2 * track as u8, 2 * track as u8 + 1));
            Carrier::Tcp { rtp, rtcp }
        } else {
            let Some((crtp, crtcp)) = transport.client_port else {
                return Answer::new(461).header("X-Reason", "UDP without client_port");
            };
            match self.shared.udp_pair(self.local.ip()).await {
                Ok((rtp, rtcp, lease)) => {
                    let ports = (
                        rtp.local_addr().map(|a| a.port()).unwrap_or(0),
                        rtcp.local_addr().map(|a| a.port()).unwrap_or(0),
                    );
                    server_ports = Some(ports);
                    Carrier::Udp {
                        rtp,
                        rtcp,
                        to_rtp: SocketAddr::new(self.peer.ip(), crtp),
                        to_rtcp: SocketAddr::new(self.peer.ip(), crtcp),
                        _lease: lease,
                    }
                }
                Err(e) => return Answer::new(453).header("X-Reason", e.to_string()),
            }
        };
        if self.session.is_none() {
            let place = match self
                .shared
                .places
                .try_take(&cam.config.id)
                .map_err(|e| e.to_string())
            {
                Ok(p) => p,
                Err(why) => {
                    tracing::info!(peer = %self.peer, camera = %cam.config.id, why = %why, "rtsp client refused");
                    return Answer::new(453).header("X-Reason", why);
                }
            };
            let id = format!("{:016X}", rand::random::<u64>());
            let consumer = self.consumer(&cam, "ready");
            *consumer.answer.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(describe_sdp(&cam.config.id, &info, self.local.ip()));
            let guard = cam.consumers.register(consumer);
            self.describing = None;
            let timeout = self.shared.config.session_timeout;
            tracing::info!(peer = %self.peer, camera = %cam.config.id, session = %id, secure = self.secure, "rtsp session set up");
            self.session = Some(Session {
                id,
                camera: cam,
                _place: place,
                guard,
                tracks: [None, None],
                player: None,
                gop: Vec::new(),
                expires: Instant::now() + timeout,
                next_sr: Instant::now() + SR_INTERVAL,
            });
        }
        let s = self.session.as_mut().expect("set just above");
        let t = Track {
            carrier,
            out: OutStream::new(clock),
        };
        let answer = t.transport_answer(server_ports);
        s.tracks[track] = Some(t);
        Answer::new(200)
            .header(
                "Session",
                format!(
                    "{};timeout={}",
                    s.id,
                    self.shared.config.session_timeout.as_secs()
                ),
            )
            .header("Transport", answer)
    }

    pub(super) fn play(&mut self, req: &Request) -> Answer {
        let Some(s) = &mut self.session else {
            return Answer::new(455).header("X-Reason", "PLAY before SETUP");
        };
        if !session_matches(req, &s.id) {
            return Answer::new(454);
        }
        if s.tracks[0].is_none() {
            return Answer::new(455).header("X-Reason", "set up the video track (trackID=0) first");
        }
        let session = format!(
            "{};timeout={}",
            s.id,
            self.shared.config.session_timeout.as_secs()
        );
        if s.player.is_none() {
            let (player, gop) = Player::start(&s.camera);
            s.player = Some(player);
            s.gop = gop;
        }
        let player = s.player.as_ref().expect("set just above");
        let base = content_base(&req.uri, &s.camera.config.id);
        let base = base.trim_end_matches('/');
        // npt 0 is the first picture sent: the cached keyframe, taken this
        // long ago. Audio starts live, so its rtptime is dated back to it,
        // and a client that lines tracks up by RTP-Info has them in step
        // before the first sender report.
        let since_keyframe = s
            .gop
            .first()
            .map_or(0.0, |f| f.received.elapsed().as_secs_f64());
        let mut info = Vec::new();
        for (i, t) in s.tracks.iter().enumerate() {
            let Some(t) = t else { continue };
            let rtptime = if i == 0 {
                player.first_video_timestamp()
            } else {
                let timeline = &t.out.timeline;
                let live = if t.out.packets == 0 {
                    timeline.first_output()
                } else {
                    // PLAY after PAUSE: the audio timeline went on; its
                    // first output is long past.
                    timeline
                        .now_output(std::time::Instant::now())
                        .unwrap_or_else(|| timeline.first_output())
                };
                live.wrapping_sub((since_keyframe * f64::from(timeline.clock_rate())) as u32)
            };
            info.push(format!(
                "url={base}/trackID={i};seq={};rtptime={rtptime}",
                t.out.seq
            ));
        }
        Answer::new(200)
            .header("Session", session)
            .header("Range", "npt=0.000-")
            .header("RTP-Info", info.join(","))
    }

    pub(super) fn pause(&mut self, req: &Request) -> Answer {
        let Some(s) = &mut self.session else {
            return Answer::new(455);
        };
        if !session_matches(req, &s.id) {
            return Answer::new(454);
        }
        s.player = None;
        s.guard.consumer().set_state("paused");
        Answer::new(200).header("Session", s.id.clone())
    }

    pub(super) fn keepalive(&mut self, req: &Request) -> Answer {
        match &self.session {
            Some(s) if req.headers.get("Session").is_some() && !session_matches(req, &s.id) => {
                Answer::new(454)
            }
            Some(s) => Answer::new(200).header("Session", s.id.clone()),
            None => Answer::new(200),
        }
    }

    pub(super) fn teardown(&mut self, req: &Request) -> Answer {
        match &self.session {
            Some(s) if session_matches(req, &s.id) => Answer::new(200),
            _ => Answer::new(454),
        }
    }
}

/// The camera's first picture description, waiting for an on-demand or
/// starting camera; `None` when it does not come.
async fn wait_for_video(cam: &CameraHandle) -> Option<crate::camera::StreamInfo> {
    let mut info = cam.hub.watch_info();
    let deadline = Instant::now() + DESCRIBE_WAIT;
    loop {
        {
            let now = info.borrow_and_update();
            if now.video_params.is_some() {
                return Some(now.clone());
            }
        }
        let state = cam.status.borrow().state;
        if !cam.config.on_demand && !matches!(state, CameraState::Connecting | CameraState::Playing)
        {
            return None;
        }
        if tokio::time::timeout_at(deadline, info.changed())
            .await
            .is_err()
        {
            return None;
        }
    }
}

/// The SDP of a DESCRIBE answer: the repaired stream as camgate sends it,
/// one `a=control` per track.
fn describe_sdp(camera: &str, info: &crate::camera::StreamInfo, local: IpAddr) -> String {
    let net = if local.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!(
        "v=0\r\no=- 0 0 IN {net} {local}\r\ns=camgate {camera}\r\nc=IN {net} 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=0-\r\n"
    );
    crate::egress::rtp::write_media(&mut sdp, info, [0, 0], true);
    sdp
}

/// Whether the request's `Session` header names `id`.
pub(super) fn session_matches(req: &Request, id: &str) -> bool {
    req.headers
        .get("Session")
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == id)
}

/// `Content-Base` of a camera: the request URI up to the camera id, with a
/// trailing `/`.
fn content_base(uri: &str, camera: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let cut = uri.trim_end_matches('/');
    let cut = match cut.rfind("/trackID=") {
        Some(i) => &cut[..i],
        None => cut,
    };
    if cut.starts_with("rtsp") {
        format!("{cut}/")
    } else {
        format!("rtsp://127.0.0.1/{camera}/")
    }
}
