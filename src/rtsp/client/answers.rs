//! How the client takes the camera's answers: each response by what its
//! request was for (DESCRIBE, SETUP, PLAY, a keepalive), and the 401 that
//! asks for credentials.

use super::*;

impl Client {
    pub(super) fn on_response(&mut self, r: Response, now: Instant) {
        if let Some(s) = r.headers.get("Server") {
            self.server = Some(quote_limit(s));
        }
        // Match by CSeq; an answer without one (seen from cheap firmware)
        // can only be for the sole request in flight.
        let pos = match r.headers.cseq() {
            Some(cseq) => self.pending.iter().position(|p| p.cseq == cseq),
            None if self.pending.len() == 1 => Some(0),
            None => None,
        };
        // An answer to nothing we wait for (late, or after a resend) is
        // ignored.
        let Some(pos) = pos else { return };
        let p = self.pending.remove(pos);
        if p.purpose == Purpose::Teardown {
            self.events.push_back(Event::TornDown);
            self.state = State::Done;
            self.pending.clear();
            return;
        }
        if r.status == 401 {
            return self.on_unauthorized(p, &r, now);
        }
        if p.purpose == Purpose::Keepalive {
            return self.on_keepalive_answer(&p, &r);
        }
        if (300..400).contains(&r.status) {
            let location = r.headers.get("Location").and_then(|l| p.url.join(l).ok());
            return match location {
                Some(mut url) => {
                    sdp::strip_credentials(&mut url);
                    self.events.push_back(Event::Redirect(url));
                    self.state = State::Done;
                    self.pending.clear();
                }
                None => self.fail(status_error(&p, &r)),
            };
        }
        if p.purpose == Purpose::Options {
            // Whatever OPTIONS says (some cameras do not implement it, or
            // want credentials only for DESCRIBE), DESCRIBE decides.
            return self.send_describe(now);
        }
        if r.status == 404 {
            return self.fail(ClientError::NotFound {
                method: p.method.to_string(),
                cseq: p.cseq,
            });
        }
        if !(200..300).contains(&r.status) {
            return self.fail(status_error(&p, &r));
        }
        match p.purpose {
            Purpose::Describe => self.on_described(r),
            Purpose::Setup(i) => self.on_setup(i, &r, now),
            Purpose::Play => self.on_play(&r, now),
            Purpose::Options | Purpose::Keepalive | Purpose::Teardown => {}
        }
    }

    fn on_unauthorized(&mut self, p: Pending, r: &Response, now: Instant) {
        if p.purpose == Purpose::Options {
            // Adopt the challenge so DESCRIBE goes out answered; if it
            // cannot be used, DESCRIBE will meet its own 401.
            let _ = self.auth.on_challenge(&r.headers, p.authorized);
            return self.send_describe(now);
        }
        let unauthorized = ClientError::Unauthorized {
            method: p.method.to_string(),
            cseq: p.cseq,
        };
        if p.retried {
            return self.fail(unauthorized);
        }
        if let Err(e) = self.auth.on_challenge(&r.headers, p.authorized) {
            return self.fail(match e {
                AuthError::CannotRespond(_) => auth_error(e, p.method, p.cseq),
                _ => unauthorized,
            });
        }
        self.send(p.purpose, p.method, p.url, p.headers, now, true);
    }

    fn on_keepalive_answer(&mut self, p: &Pending, r: &Response) {
        if (200..300).contains(&r.status) {
            return;
        }
        if r.status == 454 {
            return self.fail(status_error(p, r));
        }
        // Cameras that do not implement GET_PARAMETER (405, 501, 551...)
        // still refresh the session on any request; OPTIONS is universal.
        self.keepalive_method = "OPTIONS";
    }

    fn on_described(&mut self, r: Response) {
        let h = &r.headers;
        if r.body.len() > MAX_SDP_BYTES {
            return self.fail(ClientError::Protocol(format!(
                "DESCRIBE answer: SDP of {} bytes exceeds the {MAX_SDP_BYTES} byte limit",
                r.body.len()
            )));
        }
        let base = sdp::base_url(
            &self.config.url,
            h.get("Content-Base"),
            h.get("Content-Location"),
        );
        match Presentation::parse(r.body.clone(), base, h.get("Server")) {
            Ok(p) => {
                self.describe_session = h
                    .get("Session")
                    .and_then(SessionHeader::parse)
                    .map(|s| s.id);
                self.presentation = Some(p.clone());
                self.state = State::Described;
                self.events.push_back(Event::Described(p));
            }
            Err(e) => self.fail(ClientError::Protocol(format!("DESCRIBE answer: {e}"))),
        }
    }

    fn on_setup(&mut self, i: usize, r: &Response, now: Instant) {
        let Some(&(stream, request)) = self.plan.get(i) else {
            return;
        };
        if let Some(s) = r.headers.get("Session").and_then(SessionHeader::parse) {
            if let Some(t) = s.timeout {
                self.session_timeout = t;
            }
            self.session.get_or_insert(s.id);
        }
        if self.session.is_none() {
            self.session = self.describe_session.take();
        }
        if self.session.is_none() {
            return self.fail(ClientError::Protocol(
                "SETUP answer has no Session header".into(),
            ));
        }
        let t = r
            .headers
            .get("Transport")
            .map(Transport::parse)
            .unwrap_or_default();
        if let (TransportRequest::Tcp { .. }, Some((rtp, _))) = (request, t.interleaved) {
            // The camera may pick other channels than asked.
            self.framer.expect_channels(rtp);
        }
        self.setups.push(StreamSetup {
            stream,
            request,
            channels: t.interleaved,
            server_ports: t.server_port,
            source: t.source,
            ssrc: t.ssrc,
            rtp_info_seq: None,
            rtp_info_rtptime: None,
        });
        if i + 1 < self.plan.len() {
            self.send_setup(i + 1, now);
        } else {
            self.send_play(now);
        }
    }

    fn on_play(&mut self, r: &Response, now: Instant) {
        if let Some(t) = r
            .headers
            .get("Session")
            .and_then(SessionHeader::parse)
            .and_then(|s| s.timeout)
        {
            self.session_timeout = t;
        }
        if let (Some(value), Some(p)) = (r.headers.get("RTP-Info"), &self.presentation) {
            for info in parse_rtp_info(value) {
                let resolved = sdp::join_control(&p.base_url, &info.url).ok();
                let control = |s: &StreamSetup| p.streams.get(s.stream).map(|d| &d.control);
                let by_url = self
                    .setups
                    .iter()
                    .position(|s| control(s).is_some_and(|c| Some(c) == resolved.as_ref()));
                // Relative URLs may be relative to something else than our
                // base; a unique suffix match is still unambiguous.
                let by_suffix = || {
                    let mut m = self.setups.iter().enumerate().filter(|(_, s)| {
                        !info.url.is_empty()
                            && control(s).is_some_and(|c| c.as_str().ends_with(&info.url))
                    });
                    match (m.next(), m.next()) {
                        (Some((i, _)), None) => Some(i),
                        _ => None,
                    }
                };
                // RFC 2326 section 14.3 asks to be forgiving with one stream.
                let single = || (self.setups.len() == 1).then_some(0);
                if let Some(i) = by_url.or_else(by_suffix).or_else(single) {
                    self.setups[i].rtp_info_seq = info.seq;
                    self.setups[i].rtp_info_rtptime = info.rtptime;
                }
            }
        }
        self.state = State::Playing;
        self.next_keepalive = Some(now + self.keepalive_interval());
        self.events.push_back(Event::Playing(self.setups.clone()));
    }
}

fn status_error(p: &Pending, r: &Response) -> ClientError {
    ClientError::Status {
        method: p.method.to_string(),
        cseq: p.cseq,
        status: r.status,
        reason: quote_limit(&r.reason),
    }
}
