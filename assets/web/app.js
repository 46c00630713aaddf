// camgate's pages: the monitor dashboard (`/`) and one camera
// (`/cameras/{id}`). Each camera is a tile: its health light and reason,
// a live player, sparklines and the pipeline (dashboard.js draws those).
"use strict";

const camgate = (() => {
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

  const query = new URLSearchParams(location.search);
  const fastStart = query.get("fast_start") === "0" ? false : undefined;

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin" });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || "HTTP " + r.status);
    return r.json();
  }

  // A tile: light, title, state, live player, health, pipeline.
  function tile(cam, large) {
    const video = el("video", { muted: "", autoplay: "", playsinline: "" });
    video.muted = true;
    const overlay = el("div", { class: "overlay" });
    const state = el("span", { class: "state" });
    // Players start muted (browsers autoplay muted video only); a click
    // turns the camera's sound on (AAC cameras' sound arrives as Opus).
    const sound = el("button", {
      type: "button", class: "sound", "aria-pressed": "false",
      "aria-label": "sound of " + cam.id, title: "sound on or off", text: "sound off",
    });
    sound.addEventListener("click", () => {
      video.muted = !video.muted;
      sound.setAttribute("aria-pressed", String(!video.muted));
      sound.textContent = video.muted ? "sound off" : "sound on";
    });
    const title = large
      ? el("h2", { text: cam.id })
      : el("h2", {}, el("a", { href: "/cameras/" + encodeURIComponent(cam.id), text: cam.id }));
    const health = camgateDashboard.healthView();
    const pipeline = camgateDashboard.pipelineView(cam.id);
    const node = el("section", { class: "tile", "data-camera": cam.id },
      el("div", { class: "head" }, camgateDashboard.light(), title, state, sound),
      el("div", { class: "body" }, el("div", { class: "screen" }, video, overlay), health.node),
      pipeline.node,
      el("p", { class: "details" }));
    node.health = health;
    node.pipeline = pipeline;
    const player = new WhepPlayer(video, cam.id, {
      fastStart,
      onStatus: (status, message) => {
        node.dataset.player = status;
        overlay.textContent = status === "playing" ? "" : (message || status);
        overlay.hidden = status === "playing";
      },
    });
    node.player = player;
    update(node, cam);
    player.start();
    return node;
  }

  function update(node, cam) {
    const state = node.querySelector(".state");
    state.textContent = cam.state;
    state.dataset.state = cam.state;
    node.dataset.state = cam.state;
    node.querySelector(".sound").hidden = !cam.audio;
    const parts = [];
    if (cam.video) parts.push(cam.video);
    if (cam.audio) parts.push(cam.audio);
    // (A down camera's last error is in its health reason.)
    for (const w of cam.warnings || []) parts.push("⚠ " + w);
    node.querySelector(".details").textContent = parts.join(" · ");
  }

  function summary(cams, health) {
    const playing = cams.filter((c) => c.state === "playing").length;
    let text = playing + " of " + cams.length + " cameras playing";
    if (health) {
      const n = (light) => health.filter((h) => h.light === light).length;
      text += ` · ${n("green")} healthy, ${n("amber")} degraded, ${n("red")} down`;
      if (n("off")) text += `, ${n("off")} off`;
    }
    document.getElementById("summary").textContent = text;
  }

  // The WHEP sessions of this page's own players (the last segment of
  // their Location), marked "this page" in the pipeline.
  function ownSessions() {
    const own = new Set();
    for (const p of window.camgatePlayers || []) {
      if (p.location) own.add(p.location.split("/").pop());
    }
    return own;
  }

  // The health and the pipeline of one tile; each part fails alone.
  async function monitor(node, cam, health) {
    camgateDashboard.showHealth(node, health);
    let sessions = null;
    try { sessions = await api("/api/v1/cameras/" + encodeURIComponent(cam.id) + "/sessions"); } catch (_) {}
    if (sessions) node.pipeline.update(cam, sessions, ownSessions());
  }

  // Runs `refresh` now and 2 s after each run ends (a slow answer never
  // piles requests up).
  async function poll(refresh) {
    try { await refresh(); } finally { setTimeout(() => poll(refresh), 2000); }
  }

  async function index(root) {
    const tiles = new Map();
    const refresh = async () => {
      let cams;
      try { cams = await api("/api/v1/cameras"); } catch (e) {
        document.getElementById("summary").textContent = "cannot list cameras: " + e.message;
        return;
      }
      // The tiles (and their players) first, then what takes more requests.
      const seen = new Set();
      for (const cam of cams) {
        seen.add(cam.id);
        let node = tiles.get(cam.id);
        if (!node) {
          node = tile(cam, false);
          tiles.set(cam.id, node);
          root.append(node);
        } else update(node, cam);
      }
      for (const [id, node] of tiles) {
        if (!seen.has(id)) { node.player.stop(); node.remove(); tiles.delete(id); }
      }
      let health = null;
      try { health = await api("/api/v1/health"); } catch (_) {}
      summary(cams, health);
      const byId = new Map((health || []).map((h) => [h.camera, h]));
      await Promise.all(cams.map((cam) => monitor(tiles.get(cam.id), cam, byId.get(cam.id))));
    };
    poll(refresh);
  }

  async function single(root) {
    const id = decodeURIComponent(location.pathname.replace(/^\/cameras\//, ""));
    document.title = id + " · camgate";
    // The server answered 404 for an unknown camera: the tile (and its
    // player) can start before the first answer of the API.
    const node = tile({ id, state: "…" }, true);
    root.append(node);
    const refresh = async () => {
      let cam;
      try { cam = await api("/api/v1/cameras/" + encodeURIComponent(id)); } catch (e) {
        document.getElementById("summary").textContent = e.message;
        return;
      }
      document.getElementById("summary").textContent = "";
      update(node, cam);
      let health = null;
      try { health = await api("/api/v1/health/" + encodeURIComponent(id)); } catch (_) {}
      await monitor(node, cam, health);
    };
    poll(refresh);
  }

  return { index, single, api, el };
})();
