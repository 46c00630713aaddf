// camgate's WHEP player: plain JS, no build step.
//
//   const p = new WhepPlayer(videoElement, "front-door", { onStatus });
//   p.start();  // plays, and reconnects on its own
//   p.stop();   // ends the session (DELETE)
//
// Every player is listed in window.camgatePlayers so tests and the
// dashboard can read its RTCPeerConnection statistics.
"use strict";

window.camgatePlayers = window.camgatePlayers || [];

class WhepPlayer {
  constructor(video, camera, options = {}) {
    this.video = video;
    this.camera = camera;
    this.options = options;
    this.pc = null;
    this.location = null;
    this.stopped = true;
    this.retryTimer = null;
    this.retryDelay = 1000;
    this.status = "idle";
    this.message = "";
    // Time to first decoded frame of the current attempt, in ms.
    this.firstFrameMs = null;
    this.startedAt = null;
    this.attempts = 0;
    window.camgatePlayers.push(this);
  }

  setStatus(status, message) {
    this.status = status;
    this.message = message || "";
    if (this.options.onStatus) this.options.onStatus(status, this.message, this);
  }

  async start() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    await this.connect();
  }

  async connect() {
    this.close();
    if (this.stopped) return;
    this.attempts += 1;
    this.firstFrameMs = null;
    this.startedAt = performance.now();
    this.setStatus("connecting", "");
    const pc = new RTCPeerConnection({ iceServers: this.options.iceServers || [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === "failed" || s === "closed") this.retry("connection " + s);
      else if (s === "disconnected") {
        this.setStatus("connecting", "connection lost; waiting");
        clearTimeout(this.disconnectTimer);
        this.disconnectTimer = setTimeout(() => {
          if (pc === this.pc && pc.connectionState === "disconnected") this.retry("connection lost");
        }, 5000);
      }
    };
    this.watchFirstFrame(pc);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await this.gathered(pc);
      let url = "/whep/" + encodeURIComponent(this.camera);
      if (this.options.fastStart === false) url += "?fast_start=0";
      const r = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
        credentials: "same-origin",
      });
      if (pc !== this.pc) return;
      if (r.status !== 201) {
        let reason = "HTTP " + r.status;
        try { reason = (await r.json()).error || reason; } catch (_) {}
        this.close();
        // 422: this browser cannot take what the camera sends (an H.265
        // camera and a browser without an H.265 decoder): the sentence says
        // so; asking again soon would not change it.
        this.retry(reason, r.status === 404 || r.status === 403 || r.status === 401 || r.status === 422,
          r.status === 422 ? "unsupported" : "down");
        return;
      }
      this.location = r.headers.get("Location");
      this.note = r.headers.get("X-Camgate-Note") || "";
      const answer = await r.text();
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      this.watchDecoding(pc, /a=rtpmap:\d+ H265\//i.test(answer) ? "H.265" : "H.264");
      this.retryDelay = 1000;
    } catch (e) {
      if (pc === this.pc) this.retry(String(e && e.message ? e.message : e));
    }
  }

  // Non-trickle WHEP: the offer carries every candidate.
  gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); resolve(); };
      const t = setTimeout(resolve, 2000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") done();
      });
    });
  }

  watchFirstFrame(pc) {
    const v = this.video;
    const mark = () => {
      if (pc !== this.pc || this.firstFrameMs !== null) return;
      this.firstFrameMs = performance.now() - this.startedAt;
      this.setStatus("playing", this.note || "");
    };
    if (v.requestVideoFrameCallback) {
      const cb = () => (pc === this.pc ? mark() : null);
      v.requestVideoFrameCallback(cb);
    } else {
      v.addEventListener("playing", mark, { once: true });
    }
  }

  // Connected but no picture after a while: say so in words rather than
  // leave a black tile (a browser may offer H.265 and still fail to decode
  // it, without a hardware decoder).
  watchDecoding(pc, codec) {
    clearTimeout(this.decodeTimer);
    this.decodeTimer = setTimeout(() => {
      if (pc !== this.pc || this.firstFrameMs !== null) return;
      if (pc.connectionState !== "connected") return;
      this.setStatus("connecting", "connected, but no picture decoded yet: this browser may not decode the camera's "
        + codec + " video");
    }, 8000);
  }

  retry(reason, slow, status) {
    this.close();
    if (this.stopped) return;
    this.setStatus(status || "down", reason);
    clearTimeout(this.retryTimer);
    const delay = slow ? 10000 : this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, 10000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  close() {
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.decodeTimer);
    if (this.location) {
      fetch(this.location, { method: "DELETE", keepalive: true, credentials: "same-origin" }).catch(() => {});
      this.location = null;
    }
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.close();
    this.setStatus("idle", "");
  }

  // Inbound video statistics of the current connection.
  async videoStats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    let out = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out = {
          framesDecoded: s.framesDecoded || 0,
          framesReceived: s.framesReceived || 0,
          framesDropped: s.framesDropped || 0,
          keyFramesDecoded: s.keyFramesDecoded || 0,
          packetsLost: s.packetsLost || 0,
          packetsReceived: s.packetsReceived || 0,
          bytesReceived: s.bytesReceived || 0,
          pliCount: s.pliCount || 0,
          firCount: s.firCount || 0,
          nackCount: s.nackCount || 0,
          freezeCount: s.freezeCount || 0,
          totalFreezesDuration: s.totalFreezesDuration || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          framesPerSecond: s.framesPerSecond || 0,
          decoderImplementation: s.decoderImplementation || "",
          jitterBufferDelay: s.jitterBufferDelay || 0,
          jitterBufferEmittedCount: s.jitterBufferEmittedCount || 0,
        };
      }
    });
    return out;
  }
}

window.addEventListener("pagehide", () => {
  for (const p of window.camgatePlayers) p.stop();
});
