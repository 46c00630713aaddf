// camgate's monitor parts, used by app.js on `/` and `/cameras/{id}`: the
// health light with its reason and sparklines (from /api/v1/health), the
// pipeline picture camera → hub → each viewer and RTP consumer (from
// /api/v1/cameras/{id}/sessions) and the SDP offer/answer inspector.
// Plain JS and inline SVG, no library, nothing loaded from elsewhere.
"use strict";

const camgateDashboard = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  const svg = (tag, attrs = {}, ...children) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c);
    return e;
  };

  // The same wording as the server's reasons.
  function bitrate(bps) {
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " Mbit/s";
    if (bps >= 1e3) return Math.round(bps / 1e3) + " kbit/s";
    return Math.round(bps) + " bit/s";
  }
  const fps = (f) => (Math.round(f * 10) / 10).toString();

  // ---- health light, reason, sparklines --------------------------------

  // Points a sparkline holds: a minute of 2 s samples.
  const SLOTS = 30;

  function spark(label, key, format, kind) {
    const value = el("span", { class: "value", text: "–" });
    const pic = svg("svg", { class: "spark-pic", viewBox: "0 0 120 28", preserveAspectRatio: "none", "aria-hidden": "true" });
    const node = el("div", { class: "spark", "data-series": key },
      el("div", { class: "spark-head" }, el("span", { class: "label", text: label }), value), pic);
    const W = 120, H = 28, PAD = 2;
    return {
      node,
      update(points) {
        points = (points || []).slice(-SLOTS);
        pic.replaceChildren();
        const n = points.length;
        value.textContent = n ? format(points[n - 1]) : "–";
        node.dataset.points = n;
        if (!n) return;
        const max = Math.max(...points) || 1;
        const slot = W / SLOTS;
        if (kind === "bars") {
          points.forEach((p, i) => {
            const h = p > 0 ? Math.max(2, (p / max) * (H - PAD)) : 1;
            pic.append(svg("rect", {
              class: p > 0 ? "bar bad" : "bar",
              x: (W - (n - i) * slot + 0.5).toFixed(2), y: (H - h).toFixed(2),
              width: (slot - 1).toFixed(2), height: h.toFixed(2),
            }));
          });
        } else {
          // The newest point at the right edge; older ones to its left.
          const xy = points.map((p, i) => [
            W - (n - 1 - i) * slot - 1,
            H - PAD - (p / max) * (H - 2 * PAD),
          ]);
          const line = xy.map(([x, y]) => x.toFixed(2) + "," + y.toFixed(2)).join(" ");
          const [x0] = xy[0], [x1] = xy[n - 1];
          pic.append(
            svg("polygon", { class: "area", points: `${x0.toFixed(2)},${H} ${line} ${x1.toFixed(2)},${H}` }),
            svg("polyline", { class: "line", points: line }),
          );
        }
        pic.append(svg("title", { text: `${label}: last ${format(points[n - 1])}, max ${format(max)} (last minute)` }));
      },
    };
  }

  // The light dot of a tile's head.
  function light() {
    return el("span", { class: "light", "data-light": "unknown", role: "img", "aria-label": "health unknown" });
  }

  // The reason and the three sparklines.
  function healthView() {
    const reason = el("p", { class: "reason", text: "…" });
    const sparks = [
      spark("bitrate", "bitrate_bps", bitrate, "line"),
      spark("fps", "fps", fps, "line"),
      spark("lost", "lost", (n) => String(n), "bars"),
    ];
    const node = el("div", { class: "health" }, reason, el("div", { class: "sparks" }, ...sparks.map((s) => s.node)));
    return { node, sparks };
  }

  // Shows `h` (one entry of /api/v1/health) on a tile.
  function showHealth(tile, h) {
    const dot = tile.querySelector(".light");
    const reason = tile.querySelector(".reason");
    if (!h) return;
    tile.dataset.light = h.light;
    dot.dataset.light = h.light;
    dot.setAttribute("aria-label", "health " + h.light);
    dot.title = h.reason;
    reason.textContent = h.reason;
    reason.dataset.light = h.light;
    for (const s of tile.health.sparks) s.update(h[s.node.dataset.series]);
  }

  // ---- pipeline --------------------------------------------------------

  const W = 640, ROW = 40;
  const CAM = { x: 4, w: 96 }, HUB = { x: 164, w: 64 }, OUT = { x: 284, w: 352 };

  function pipelineView(camera) {
    const pic = svg("svg", { class: "pipe", viewBox: `0 0 ${W} ${ROW + 8}`, role: "img", "aria-label": "pipeline" });
    const node = el("div", { class: "pipeline" }, pic);
    // Last poll's byte counters, to colour each link by its flow.
    let lastCam = null;
    let last = new Map();
    return {
      node,
      update(cam, sessions, own) {
        const now = performance.now();
        sessions = sessions || [];
        const rows = Math.max(sessions.length, 1);
        const H = rows * ROW + 8;
        pic.setAttribute("viewBox", `0 0 ${W} ${H}`);
        pic.replaceChildren();
        const mid = H / 2;

        // camera → hub
        const bytes = cam.stats ? cam.stats.bytes_received : 0;
        let camFlow = "idle", camRate = null;
        if (cam.state !== "playing") camFlow = "down";
        else if (lastCam && bytes > lastCam.bytes) camFlow = "flow";
        if (lastCam && now > lastCam.at) camRate = ((bytes - lastCam.bytes) * 8000) / (now - lastCam.at);
        lastCam = { bytes, at: now };
        pic.append(
          svg("path", { class: "link camera-link", "data-flow": camFlow, d: `M${CAM.x + CAM.w},${mid} L${HUB.x},${mid}` }),
          svg("text", { class: "link-label", x: (CAM.x + CAM.w + HUB.x) / 2, y: mid - 6, "text-anchor": "middle",
            text: camFlow === "down" ? cam.state.replace(/_/g, " ") : camRate === null ? "" : bitrate(Math.max(0, camRate)) }),
          box("camera", CAM, mid, camera, cam.video ? cam.video.split(" ").slice(0, 2).join(" ") : cam.state.replace(/_/g, " ")),
          box("hub", HUB, mid, "hub", sessions.length + " out"),
        );

        // hub → each viewer and RTP consumer
        const seen = new Map();
        if (!sessions.length) {
          pic.append(
            svg("path", { class: "link", "data-flow": "none", d: `M${HUB.x + HUB.w},${mid} L${OUT.x},${mid}` }),
            svg("text", { class: "node-sub", x: OUT.x + 8, y: mid + 4, text: "no viewer or RTP consumer" }),
          );
        }
        sessions.forEach((s, i) => {
          const y = 4 + i * ROW + ROW / 2;
          const prev = last.get(s.id);
          let flow = "idle", rate = null;
          if (s.state === "closed" || s.state === "disconnected") flow = "down";
          else if (prev && s.bytes_sent > prev.bytes) flow = "flow";
          if (prev && now > prev.at) rate = ((s.bytes_sent - prev.bytes) * 8000) / (now - prev.at);
          seen.set(s.id, { bytes: s.bytes_sent, at: now });
          const cx = (HUB.x + HUB.w + OUT.x) / 2;
          pic.append(svg("path", {
            class: "link session-link", "data-flow": flow, "data-session": s.id,
            d: `M${HUB.x + HUB.w},${mid} C${cx},${mid} ${cx},${y} ${OUT.x},${y}`,
          }));
          pic.append(sessionBox(camera, s, y, flow, rate, own && own.has(s.id)));
        });
        last = seen;
        refreshInspector(camera, sessions);
      },
    };
  }

  function box(kind, at, mid, title, sub) {
    return svg("g", { class: "node " + kind },
      svg("rect", { x: at.x, y: mid - 16, width: at.w, height: 32, rx: 5 }),
      svg("text", { class: "node-title", x: at.x + at.w / 2, y: mid - 3, "text-anchor": "middle", text: clip(title, 16) }),
      svg("text", { class: "node-sub", x: at.x + at.w / 2, y: mid + 10, "text-anchor": "middle", text: clip(sub, 18) }));
  }

  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

  function sessionStats(s, rate) {
    const rtt = s.rtt_seconds == null ? "–" : (s.rtt_seconds * 1000).toFixed(1) + " ms";
    const loss = (s.fraction_lost * 100).toFixed(1) + "%" + (s.packets_lost ? ` (${s.packets_lost})` : "");
    const parts = [rate === null ? "…" : bitrate(Math.max(0, rate)), s.packets_sent + " pkts"];
    if (s.kind === "viewer") parts.push("PLI " + s.plis, "NACK " + s.nacks, "RTT " + rtt, "loss " + loss);
    else if (s.kind === "rtsp") parts.push("PLI " + s.plis, "RTT " + rtt, "loss " + loss, "skipped " + s.skips + "×");
    else parts.push("skipped to a keyframe " + s.skips + "×");
    return parts.join(" · ");
  }

  function sessionBox(camera, s, y, flow, rate, own) {
    const who = s.kind === "viewer" ? "viewer" : s.kind === "rtsp" ? "RTSP" : "RTP";
    const head = [who, s.remote || "…", s.state.replace(/_/g, " ")];
    if (own) head.push("this page");
    const g = svg("g", {
      class: "node session", "data-kind": s.kind, "data-session": s.id, "data-flow": flow,
      tabindex: 0, role: "button", "aria-label": `inspect the SDP of ${who} ${s.remote || s.id}`,
    },
      svg("rect", { x: OUT.x, y: y - 17, width: OUT.w, height: 34, rx: 5 }),
      svg("text", { class: "node-title", x: OUT.x + 8, y: y - 4, text: clip(head.join(" · "), 60) }),
      svg("text", { class: "node-sub", x: OUT.x + 8, y: y + 10, text: clip(sessionStats(s, rate), 68) }),
      svg("title", { text: `${head.join(" · ")}\n${sessionStats(s, rate)}\nfor ${Math.round(s.duration_seconds)} s; click for the SDP offer and answer` }));
    const open = () => inspect(camera, s);
    g.addEventListener("click", open);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
    return g;
  }

  // ---- SDP inspector ---------------------------------------------------

  let panel = null;

  function inspector() {
    if (panel) return panel;
    const title = el("h2", {});
    const close = el("button", { type: "button", class: "close", text: "close" });
    const offer = el("pre", { class: "sdp offer" });
    const answer = el("pre", { class: "sdp answer" });
    const offerHead = el("h3", { text: "offer (from the viewer)" });
    const answerHead = el("h3", { text: "answer (from camgate)" });
    const node = el("aside", { id: "inspector", class: "inspector", hidden: "" },
      el("div", { class: "inspector-head" }, title, close),
      el("div", { class: "sdps" },
        el("section", {}, offerHead, offer),
        el("section", {}, answerHead, answer)));
    close.addEventListener("click", () => { node.hidden = true; });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") node.hidden = true; });
    document.body.append(node);
    panel = { node, title, offer, answer, offerHead, answerHead, camera: null, session: null };
    return panel;
  }

  function fill(p, camera, s) {
    const who = s.kind === "viewer" ? "viewer" : s.kind === "rtsp" ? "RTSP client" : "RTP consumer";
    p.title.textContent = `${camera}: ${who} ${s.remote || ""} · session ${s.id.slice(0, 8)} · ${s.state.replace(/_/g, " ")}`;
    const offer = s.offer || (s.kind === "rtp" ? "(none: an RTP consumer makes no offer)" : s.kind === "rtsp" ? "(none: an RTSP client makes no offer)" : "(none)");
    const answer = s.answer || "(no answer yet)";
    p.offerHead.textContent = s.kind === "rtp" ? "offer" : "offer (from the viewer)";
    p.answerHead.textContent = s.kind === "rtp" ? "SDP of the RTP stream (GET /cameras/ID.sdp)" : s.kind === "rtsp" ? "SDP of the DESCRIBE answer" : "answer (from camgate)";
    if (p.offer.textContent !== offer) p.offer.textContent = offer;
    if (p.answer.textContent !== answer) p.answer.textContent = answer;
  }

  function inspect(camera, s) {
    const p = inspector();
    p.camera = camera;
    p.session = s.id;
    p.node.dataset.camera = camera;
    p.node.dataset.session = s.id;
    p.node.dataset.kind = s.kind;
    fill(p, camera, s);
    p.node.hidden = false;
  }

  // Keeps an open inspector current (its session's state), and says when
  // the session has ended.
  function refreshInspector(camera, sessions) {
    if (!panel || panel.node.hidden || panel.camera !== camera) return;
    const s = sessions.find((x) => x.id === panel.session);
    if (s) fill(panel, camera, s);
    else panel.title.textContent = `${camera}: session ${String(panel.session).slice(0, 8)} has ended`;
  }

  return { light, healthView, showHealth, pipelineView, inspect, bitrate };
})();
