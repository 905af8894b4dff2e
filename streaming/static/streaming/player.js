// The embeddable HLS player (streaming/player.py, streaming/player.html).
//
// 1. Ask the HLS API for the track's master playlist URL (GET
//    /api/v1/tracks/<id>/hls, same-origin credentials so a private track
//    plays for its owner). Until the package is ready, say "Preparing…" and
//    ask again every few seconds.
// 2. Play it with hls.js (vendored, see vendor/hls.js/README.md), or with the
//    browser's own HLS where hls.js cannot run (Safari on iOS).
// 3. Show the bitrate hls.js has chosen, updated on every LEVEL_SWITCHED.
//
// 4. Even out loudness: the API's `loudness.gain_db` brings the track to the
//    platform's target (PLAYER_TARGET_LUFS). With hls.js the element feeds a
//    Web Audio gain node (its media are same-origin MSE buffers, so the
//    graph hears them); with the browser's own HLS only the element's volume
//    is there, which can lower but not raise. A checkbox turns it off; the
//    choice is kept in localStorage.
//
// The master URL carries a short-lived directory token: when it has expired
// (a fatal network error after a long pause), the page asks the API for a
// fresh one and carries on from the same position.
(function () {
  "use strict";

  var root = document.getElementById("player");
  var audio = document.getElementById("audio");
  var statusEl = document.getElementById("status");
  var bitrateEl = document.getElementById("bitrate");
  var apiUrl = root.dataset.hlsUrl;
  var autoplay = root.dataset.autoplay === "true";
  // CloudFront signed cookies: the CDN needs them on every hls.js request.
  var cdnCredentials = root.dataset.cdnCredentials === "true";

  var POLL_FIRST_MS = 3000;
  var POLL_MAX_MS = 15000;
  var MAX_RELOADS = 3;
  var NORMALISE_KEY = "veza.player.normalise";
  var normaliseBox = document.getElementById("normalise");

  // Exposed for tests and for debugging in the console.
  var state = {
    state: "loading",
    engine: null, // "hls.js" | "native"
    masterUrl: null,
    source: null,
    level: -1,
    bitrateKbps: null,
    polls: 0,
    reloads: 0,
    errors: [],
    gainDb: null, // the API's loudness.gain_db
    normalise: true,
    gain: 1, // the linear gain applied
    gainNodeValue: function () {
      return graph ? graph.gain.gain.value : null;
    },
  };
  window.vezaPlayer = state;

  var graph = null; // {context, gain}: built on the first play (a gesture)

  function readNormalise() {
    try {
      return window.localStorage.getItem(NORMALISE_KEY) !== "off";
    } catch (_) {
      return true; // storage refused (a sandboxed embed): the default
    }
  }

  function applyGain() {
    var value =
      state.normalise && typeof state.gainDb === "number"
        ? Math.pow(10, state.gainDb / 20)
        : 1;
    state.gain = value;
    if (graph) {
      graph.gain.gain.value = value;
    } else if (state.engine === "native") {
      audio.volume = Math.min(1, value);
    }
  }

  function buildGraph() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (graph || state.engine !== "hls.js" || !Context) {
      return;
    }
    var context = new Context();
    var gain = context.createGain();
    context.createMediaElementSource(audio).connect(gain).connect(context.destination);
    graph = { context: context, gain: gain };
    applyGain();
  }

  state.normalise = readNormalise();
  normaliseBox.checked = state.normalise;
  normaliseBox.addEventListener("change", function () {
    state.normalise = normaliseBox.checked;
    try {
      window.localStorage.setItem(NORMALISE_KEY, state.normalise ? "on" : "off");
    } catch (_) {
      // not kept: it still applies to this page
    }
    applyGain();
  });

  var hls = null;
  var pollTimer = null;

  function setState(name, message) {
    state.state = name;
    root.dataset.state = name;
    if (message !== undefined) {
      statusEl.textContent = message;
    }
  }

  function showBitrate(kbps) {
    state.bitrateKbps = kbps;
    bitrateEl.textContent = kbps ? kbps + " kb/s" : "–";
  }

  // The rung's nominal bitrate: rungs are named after it ("128k/index.m3u8"),
  // which reads better than the measured BANDWIDTH (container overhead
  // included). Fall back to AVERAGE-BANDWIDTH, then BANDWIDTH.
  function levelKbps(level) {
    if (!level) {
      return null;
    }
    var uri = level.uri || level.url || "";
    if (Array.isArray(uri)) {
      uri = uri[0] || "";
    }
    var named = /(?:^|\/)(\d+)k\/[^/]*$/.exec(String(uri).split("?")[0]);
    if (named) {
      return parseInt(named[1], 10);
    }
    var bps = level.averageBitrate || level.bitrate;
    return bps ? Math.round(bps / 1000) : null;
  }

  function canUseHlsJs() {
    return typeof window.Hls !== "undefined" && window.Hls.isSupported();
  }

  function canPlayNatively() {
    return audio.canPlayType("application/vnd.apple.mpegurl") !== "";
  }

  function fetchMaster() {
    return fetch(apiUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          return { http: response.status, body: body };
        });
    });
  }

  function pollDelay() {
    return Math.min(POLL_FIRST_MS * Math.pow(1.25, state.polls), POLL_MAX_MS);
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(load, pollDelay());
    state.polls += 1;
  }

  function errorMessage(body, fallback) {
    return (body && body.error && body.error.message) || fallback;
  }

  // Ask the API; play when ready, poll while the package is being built.
  function load() {
    fetchMaster().then(
      function (answer) {
        var body = answer.body || {};
        if (answer.http === 200 && body.status === "ready" && body.master_url) {
          state.source = body.source || null;
          state.gainDb = body.loudness ? body.loudness.gain_db : null;
          applyGain();
          start(body.master_url);
        } else if (answer.http === 200 && body.status === "failed") {
          setState("error", "This track cannot be played right now.");
        } else if (answer.http === 200) {
          setState("preparing", "Preparing…");
          schedulePoll();
        } else if (answer.http === 404 || answer.http === 451) {
          setState(
            "unavailable",
            errorMessage(body, "This track is not available.")
          );
        } else if (answer.http === 401 || answer.http === 403) {
          setState("unavailable", errorMessage(body, "You cannot play this track."));
        } else {
          // 429, 5xx: the service is busy or down; try again a bit later.
          setState("preparing", "Waiting for the server…");
          schedulePoll();
        }
      },
      function () {
        setState("preparing", "Waiting for the network…");
        schedulePoll();
      }
    );
  }

  function start(masterUrl) {
    var resumeAt = audio.currentTime || 0;
    var wasPlaying = state.masterUrl !== null && !audio.paused;
    state.masterUrl = masterUrl;
    if (canUseHlsJs()) {
      startHlsJs(masterUrl, resumeAt, wasPlaying || autoplay);
    } else if (canPlayNatively()) {
      startNative(masterUrl, resumeAt, wasPlaying || autoplay);
    } else {
      setState("error", "This browser cannot play HLS audio.");
      return;
    }
    if (state.state !== "playing") {
      setState("ready", "Ready to play.");
    }
  }

  function startNative(masterUrl, resumeAt, play) {
    state.engine = "native";
    // The browser picks the rung itself and does not say which.
    bitrateEl.textContent = "chosen by the browser";
    audio.preload = "metadata";
    audio.src = masterUrl;
    if (resumeAt) {
      audio.addEventListener(
        "loadedmetadata",
        function () {
          audio.currentTime = resumeAt;
        },
        { once: true }
      );
    }
    if (play) {
      tryPlay();
    }
  }

  function startHlsJs(masterUrl, resumeAt, play) {
    var Hls = window.Hls;
    state.engine = "hls.js";
    if (hls) {
      hls.destroy();
    }
    var config = {
      startPosition: resumeAt || -1,
      // Audio only: no need for a big forward buffer.
      maxBufferLength: 30,
    };
    if (cdnCredentials && state.source === "cdn") {
      config.xhrSetup = function (xhr) {
        xhr.withCredentials = true;
      };
    }
    hls = new Hls(config);
    hls.on(Hls.Events.MANIFEST_PARSED, function () {
      if (play) {
        tryPlay();
      }
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, function (_event, data) {
      state.level = data.level;
      showBitrate(levelKbps(hls.levels[data.level]));
    });
    hls.on(Hls.Events.FRAG_LOADED, function () {
      // A fragment loaded: the token worked, so a later failure starts a
      // fresh count of reloads.
      state.reloads = 0;
    });
    hls.on(Hls.Events.ERROR, function (_event, data) {
      state.errors.push({ type: data.type, details: data.details, fatal: data.fatal });
      if (state.errors.length > 20) {
        state.errors.shift();
      }
      if (!data.fatal) {
        return;
      }
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (
        data.type === Hls.ErrorTypes.NETWORK_ERROR &&
        state.reloads < MAX_RELOADS
      ) {
        // Most likely the URL's token expired: get a new one.
        state.reloads += 1;
        setState("preparing", "Reconnecting…");
        load();
      } else {
        setState("error", "Playback failed. Reload the page to try again.");
        hls.destroy();
        hls = null;
      }
    });
    hls.attachMedia(audio);
    hls.loadSource(masterUrl);
    // hls.js loads the playlists right away; the "none" preload only mattered
    // before there was a source.
    audio.preload = "auto";
  }

  function tryPlay() {
    var played = audio.play();
    if (played && typeof played.catch === "function") {
      played.catch(function () {
        // Autoplay refused (no user gesture): the controls are there.
        setState("ready", "Press play to listen.");
      });
    }
  }

  audio.addEventListener("play", function () {
    // Within the press on play: an audio context made now may run.
    buildGraph();
    if (graph && graph.context.state === "suspended") {
      graph.context.resume();
    }
  });
  audio.addEventListener("playing", function () {
    setState("playing", "Playing.");
  });
  audio.addEventListener("pause", function () {
    if (state.state === "playing") {
      setState("ready", "Paused.");
    }
  });
  audio.addEventListener("waiting", function () {
    if (state.state === "playing") {
      statusEl.textContent = "Buffering…";
    }
  });
  audio.addEventListener("ended", function () {
    setState("ready", "Finished.");
  });
  audio.addEventListener("error", function () {
    if (state.engine === "native" && state.reloads < MAX_RELOADS) {
      state.reloads += 1;
      load();
    } else if (state.engine === "native") {
      setState("error", "Playback failed. Reload the page to try again.");
    }
  });

  load();
})();
