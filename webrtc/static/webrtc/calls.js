// The call page: signaling over /ws/calls/ (docs/SIGNALING.md), one
// RTCPeerConnection per call, perfect negotiation with the callee polite.
(() => {
  "use strict";

  // Used only when the configuration cannot be fetched at all.
  const FALLBACK_SERVERS = [{ urls: ["stun:stun.l.google.com:19302"] }];
  const NO_TURN_HINT =
    "No TURN relay is configured: calls between people behind strict NATs " +
    "or firewalls may fail to connect.";
  const DISCONNECTED_GRACE_MS = 3000;
  const RESUME_REF = "resume";

  const root = document.getElementById("calls");
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  // ?policy=relay forces TURN (iceTransportPolicy "relay"), for testing.
  const transportPolicy = params.get("policy") === "relay" ? "relay" : "all";

  const ice = { hasTurn: false, loaded: false, fallback: false, ttl: null };
  let iceServers = null;
  let iceFetchedAt = 0;
  let icePromise = null;
  let iceWaiters = [];

  let ws = null;
  let wsReady = null;
  let call = null; // the current call
  let incoming = null; // a ringing call offered to this device
  let inbox = Promise.resolve(); // frames are handled one after the other

  const api = {
    ice,
    get call() { return call; },
    get pc() { return call && call.pc; },
    get state() { return root.dataset.state; },
    get socketOpen() { return Boolean(ws && ws.readyState === WebSocket.OPEN); },
    loadIce,
    selectedCandidatePair,
  };
  window.vezaCalls = api;

  // What the status line says for each state (data-state keeps the name).
  const STATE_LABELS = {
    idle: "Ready to call",
    calling: "Calling…",
    ringing: "Ringing…",
    incoming: "Incoming call",
    connecting: "Connecting…",
    connected: "In a call",
    ended: "Call ended",
    "signed out": "Signed out",
  };

  function setState(state, detail) {
    root.dataset.state = state;
    const label = STATE_LABELS[state] || state;
    $("status").textContent = detail ? `${label}: ${detail}` : label;
    const inCall = ["calling", "ringing", "connecting", "connected"].includes(state);
    $("hangup").disabled = !inCall;
    $("mute").disabled = !inCall;
    $("call").disabled = inCall || !ice.loaded || !$("callee").value;
  }

  // ICE configuration: fetched once and kept for the page's lifetime.
  function loadIce() {
    if (!icePromise) {
      icePromise = fetch(root.dataset.configUrl, { credentials: "same-origin" })
        .then((response) => {
          if (!response.ok) throw new Error(`config: HTTP ${response.status}`);
          return response.json();
        })
        .then((config) => useIceConfig(config))
        .catch(() => {
          iceServers = FALLBACK_SERVERS;
          ice.hasTurn = false;
          ice.fallback = true;
        })
        .then(() => {
          ice.loaded = true;
          iceFetchedAt = Date.now();
          const button = $("call");
          button.title = ice.hasTurn ? "Call" : NO_TURN_HINT;
          $("turn-warning").hidden = ice.hasTurn;
          setState(root.dataset.state);
        });
    }
    return icePromise;
  }

  function useIceConfig(config) {
    iceServers = config.iceServers;
    ice.hasTurn = Boolean(config.hasTurn);
    ice.ttl = config.ttl;
    iceFetchedAt = Date.now();
  }

  function rtcConfiguration() {
    return { iceServers: iceServers || FALLBACK_SERVERS, iceTransportPolicy: transportPolicy };
  }

  // Fresh TURN credentials over the socket (an ICE restart needs them).
  function refreshIce() {
    return new Promise((resolve) => {
      iceWaiters.push(resolve);
      send({ type: "ice.refresh" });
      setTimeout(resolve, 3000);
    });
  }

  function iceIsStale() {
    return ice.ttl && Date.now() - iceFetchedAt > (ice.ttl * 1000) / 2;
  }

  // Signaling socket ---------------------------------------------------------

  function openSocket() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + root.dataset.wsPath);
    wsReady = new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    ws.addEventListener("open", () => {
      // A new socket is a new device to the server: take the call back
      // before the old socket's grace runs out and the call ends peer_gone.
      if (call && call.bound) send({ type: "call.resume", id: RESUME_REF, call_id: call.id });
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      inbox = inbox.then(() => handle(frame)).catch((error) => console.warn("signaling", error));
    });
    ws.addEventListener("close", (event) => {
      if (event.code === 4401) { setState("signed out"); return; }
      setTimeout(openSocket, 1000);
    });
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  async function handle(frame) {
    switch (frame.type) {
      case "ice.servers":
        useIceConfig(frame);
        iceWaiters.splice(0).forEach((resolve) => resolve());
        return;
      case "call.incoming":
        if (call) return; // the server answers busy; a stray frame is ignored
        incoming = { id: frame.call_id, from: frame.from, media: frame.media, offer: frame.sdp, candidates: [] };
        $("incoming-from").textContent = frame.from.username;
        $("incoming").hidden = false;
        setState("incoming", frame.from.username);
        return;
      case "call.ringing":
        if (call && call.id === frame.call_id) setState("ringing");
        return;
      case "call.busy":
        if (call && call.id === frame.call_id) endCall("busy");
        return;
      case "call.answered":
        if (call && call.id === frame.call_id) {
          setState("connecting");
          await acceptDescription(frame.sdp);
        }
        return;
      case "call.candidate":
        if (incoming && incoming.id === frame.call_id && !call) {
          incoming.candidates.push(frame.candidate);
        } else if (call && call.id === frame.call_id) {
          await addCandidate(frame.candidate);
        }
        return;
      case "call.negotiate":
        if (call && call.id === frame.call_id) await acceptDescription(frame.sdp);
        return;
      case "call.resumed":
        // The media may have broken with the network that broke the socket.
        if (call && call.id === frame.call_id && call.pc.connectionState !== "connected") {
          await restartIce(call);
        }
        return;
      case "call.resumed_elsewhere":
        if (call && call.id === frame.call_id) endCall("moved to another device");
        return;
      case "call.answered_elsewhere":
      case "call.rejected":
      case "call.ended":
        if (incoming && incoming.id === frame.call_id) {
          incoming = null;
          $("incoming").hidden = true;
          if (!call) setState("idle");
        }
        if (call && call.id === frame.call_id) {
          endCall(frame.type === "call.rejected" ? "rejected" : frame.reason || "answered elsewhere");
        }
        return;
      case "error":
        console.warn("signaling error", frame.code, frame.message);
        if (call && !call.invited && frame.ref === call.id) endCall(frame.code);
        if (call && frame.ref === RESUME_REF) endCall(frame.code); // ended meanwhile
        return;
      default:
        return;
    }
  }

  // Calls ------------------------------------------------------------------------

  function newCall(id, polite, media) {
    const pc = new RTCPeerConnection(rtcConfiguration());
    const c = { id, polite, media, pc, makingOffer: false, ignoreOffer: false, invited: polite,
      remoteSet: false, pending: [], stream: null, restartTimer: null, to: null,
      bound: false }; // bound: the server has this device as the call's party
    pc.onicecandidate = ({ candidate }) => {
      send({ type: "call.candidate", call_id: id, candidate: candidate ? candidate.toJSON() : null });
    };
    pc.ontrack = ({ streams }) => { $("remote").srcObject = streams[0]; };
    pc.onnegotiationneeded = async () => {
      try {
        c.makingOffer = true;
        await pc.setLocalDescription();
        const sdp = { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
        if (!c.invited) {
          c.invited = true;
          send({ type: "call.invite", id, call_id: id, to: c.to, media, sdp });
          c.bound = true;
        } else {
          send({ type: "call.negotiate", call_id: id, sdp });
        }
      } catch (error) {
        console.warn("negotiation", error);
      } finally {
        c.makingOffer = false;
      }
    };
    pc.onconnectionstatechange = () => {
      if (call !== c) return;
      if (pc.connectionState === "connected") {
        clearTimeout(c.restartTimer);
        setState("connected");
      } else if (pc.connectionState === "failed") {
        restartIce(c);
      } else if (pc.connectionState === "disconnected") {
        // "disconnected" often heals by itself; "failed" can take 30 s.
        clearTimeout(c.restartTimer);
        c.restartTimer = setTimeout(() => {
          if (pc.connectionState === "disconnected") restartIce(c);
        }, DISCONNECTED_GRACE_MS);
      }
    };
    return c;
  }

  async function restartIce(c) {
    // TURN credentials may have expired: coturn checks them per allocation.
    await refreshIce();
    if (call !== c) return;
    c.pc.setConfiguration(rtcConfiguration());
    c.pc.restartIce();
  }

  // Perfect negotiation: the polite peer (the callee) yields on collisions.
  async function acceptDescription(description) {
    const c = call;
    const pc = c.pc;
    const collision = description.type === "offer" && (c.makingOffer || pc.signalingState !== "stable");
    c.ignoreOffer = !c.polite && collision;
    if (c.ignoreOffer) return;
    await pc.setRemoteDescription(description);
    c.remoteSet = true;
    for (const candidate of c.pending.splice(0)) await addCandidate(candidate);
    if (description.type === "offer") {
      await pc.setLocalDescription();
      send({ type: "call.negotiate", call_id: c.id,
        sdp: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
    }
  }

  async function addCandidate(candidate) {
    const c = call;
    if (!c.remoteSet) { c.pending.push(candidate); return; }
    try {
      await c.pc.addIceCandidate(candidate || undefined);
    } catch (error) {
      if (!c.ignoreOffer) console.warn("candidate", error);
    }
  }

  async function getMedia(media) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: media === "video" });
    $("local").srcObject = stream;
    return stream;
  }

  async function placeCall() {
    const to = Number($("callee").value);
    if (!to || call) return;
    await Promise.all([loadIce(), wsReady]);
    if (iceIsStale()) await refreshIce();
    const media = $("video").checked ? "video" : "audio";
    const c = newCall(crypto.randomUUID(), false, media);
    c.to = to;
    call = c;
    setState("calling");
    try {
      c.stream = await getMedia(media);
    } catch (error) {
      endCall("media_failed");
      return;
    }
    // Adding the tracks fires negotiationneeded, which sends the invite.
    for (const track of c.stream.getTracks()) c.pc.addTrack(track, c.stream);
  }

  async function answerCall() {
    if (!incoming || call) return;
    const offer = incoming;
    incoming = null;
    $("incoming").hidden = true;
    await Promise.all([loadIce(), wsReady]);
    if (iceIsStale()) await refreshIce();
    const c = newCall(offer.id, true, offer.media);
    call = c;
    setState("connecting");
    await c.pc.setRemoteDescription(offer.offer);
    c.remoteSet = true;
    try {
      c.stream = await getMedia(offer.media);
    } catch (error) {
      send({ type: "call.hangup", call_id: c.id, reason: "media_failed" });
      endCall("media_failed");
      return;
    }
    for (const track of c.stream.getTracks()) c.pc.addTrack(track, c.stream);
    for (const candidate of offer.candidates) await addCandidate(candidate);
    await c.pc.setLocalDescription();
    send({ type: "call.answer", call_id: c.id,
      sdp: { type: c.pc.localDescription.type, sdp: c.pc.localDescription.sdp } });
    c.bound = true;
  }

  function rejectCall() {
    if (!incoming) return;
    send({ type: "call.reject", call_id: incoming.id });
  }

  function hangUp() {
    if (!call) return;
    send({ type: "call.hangup", call_id: call.id, reason: "hangup" });
  }

  function endCall(reason) {
    const c = call;
    if (!c) return;
    call = null;
    clearTimeout(c.restartTimer);
    if (c.stream) c.stream.getTracks().forEach((track) => track.stop());
    c.pc.close();
    api.lastCall = { id: c.id, reason, pc: c.pc };
    $("remote").srcObject = null;
    $("local").srcObject = null;
    $("mute").textContent = "Mute";
    $("mute").setAttribute("aria-pressed", "false");
    setState("ended", reason);
  }

  function toggleMute() {
    if (!call || !call.stream) return;
    const tracks = call.stream.getAudioTracks();
    const muted = tracks.some((track) => track.enabled);
    tracks.forEach((track) => { track.enabled = !muted; });
    $("mute").textContent = muted ? "Unmute" : "Mute";
    $("mute").setAttribute("aria-pressed", String(muted));
  }

  // The candidate types of the pair in use, e.g. {local: "relay", remote: "host"}.
  async function selectedCandidatePair() {
    if (!call) return null;
    const stats = await call.pc.getStats();
    let pair = null;
    stats.forEach((report) => {
      if (report.type === "transport" && report.selectedCandidatePairId) {
        pair = stats.get(report.selectedCandidatePairId);
      }
    });
    if (!pair) {
      stats.forEach((report) => {
        if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") pair = report;
      });
    }
    if (!pair) return null;
    return {
      local: stats.get(pair.localCandidateId).candidateType,
      remote: stats.get(pair.remoteCandidateId).candidateType,
    };
  }

  $("call").addEventListener("click", placeCall);
  $("answer").addEventListener("click", answerCall);
  $("reject").addEventListener("click", rejectCall);
  $("hangup").addEventListener("click", hangUp);
  $("mute").addEventListener("click", toggleMute);
  $("callee").addEventListener("change", () => setState(root.dataset.state));
  openSocket();
  loadIce();
  setState("idle");
})();
