// The embeddable HLS player (streaming/player.py, streaming/player.html).
//
// 1. Ask the HLS API for the track's master playlist URL (GET
//    /api/v1/tracks/<id>/hls, same-origin credentials so a private track
//    plays for its owner). Until the package is ready, say "Preparing…" and
//    ask again every few seconds.
// 2. Play it with hls.js (vendored, see vendor/hls.js/README.md), or with the
//    browser's own HLS where hls.js cannot run (Safari on iOS).
// 3. Show the bitrate hls.js has chosen, updated on every LEVEL_SWITCHED.
// 4. Draw the track's waveform (waveform.js, peaks from GET
//    /api/v1/tracks/<id>/waveform once the package is ready), its played part
//    following the audio; a click or drag on it seeks. It is a slider to
//    assistive technology: arrows step 5 s, Page Up/Down a tenth, Home/End.
//    Space plays and pauses anywhere on the page but in a control.
//
// 5. Even out loudness: the API's `loudness.gain_db` brings the track to the
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
  var playButton = document.getElementById("play");
  var waveEl = document.getElementById("waveform");
  var positionEl = document.getElementById("position");
  var durationEl = document.getElementById("duration");
  // From the database; the media's own duration wins once it is known.
  var knownDuration = parseFloat(root.dataset.duration) || 0;
  var apiUrl = root.dataset.hlsUrl;
  var autoplay = root.dataset.autoplay === "true";
  // CloudFront signed cookies: the CDN needs them on every hls.js request.
  var cdnCredentials = root.dataset.cdnCredentials === "true";

  var POLL_FIRST_MS = 3000;
  var POLL_MAX_MS = 15000;
  var MAX_RELOADS = 3;
  var SEEK_STEP_S = 5;
  var WAVEFORM_RETRIES = 6;
  var WAVEFORM_RETRY_MS = 10000;
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
    waveform: { status: "loading", points: 0, tries: 0 },
    duration: function () {
      return duration();
    },
    // The hls.js instance (null with the browser's own HLS), to switch rungs.
    hls: function () {
      return hls;
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
  var refreshing = false; // a new URL has been asked for after a refusal
  var lastReloadAt = 0;
  var RELOAD_WINDOW_MS = 60000;

  function setState(name, message) {
    state.state = name;
    root.dataset.state = name;
    if (message !== undefined) {
      statusEl.textContent = message;
    }
    playButton.disabled = !canToggle();
    if ((name === "error" || name === "unavailable") && waveEl.dataset.state === "loading") {
      waveEl.dataset.state = "off";
    }
  }

  function canToggle() {
    return Boolean(state.masterUrl) && (state.state === "ready" || state.state === "playing");
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
          if (state.waveform.status === "loading") {
            loadWaveform();
          }
        } else if (answer.http === 200 && body.status === "failed") {
          stopEngine();
          setState("error", "This track cannot be played right now.");
        } else if (answer.http === 200) {
          setState("preparing", "Preparing…");
          schedulePoll();
        } else if (answer.http === 404 || answer.http === 451) {
          stopEngine();
          setState(
            "unavailable",
            errorMessage(body, "This track is not available.")
          );
        } else if (answer.http === 401 || answer.http === 403) {
          stopEngine();
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

  // The track was taken down, made private or failed while the page played
  // an older URL: stop what is buffered too.
  function stopEngine() {
    refreshing = false;
    if (hls) {
      hls.destroy();
      hls = null;
    }
    if (state.engine === "native") {
      audio.removeAttribute("src");
      audio.load();
    }
    audio.pause();
  }

  function start(masterUrl) {
    refreshing = false;
    var resumeAt = position();
    var first = state.masterUrl === null;
    // ?autoplay=1 starts the first source only: a new URL after a pause
    // must not start playing again.
    var play = first ? autoplay : !audio.paused;
    state.masterUrl = masterUrl;
    // Until the new source can seek, the page shows (and applies, on
    // loadedmetadata) the position it left, or a later seek.
    pendingSeek = resumeAt > 0 ? resumeAt : null;
    if (canUseHlsJs()) {
      startHlsJs(masterUrl, resumeAt, play);
    } else if (canPlayNatively()) {
      startNative(masterUrl, play);
    } else {
      setState("error", "This browser cannot play HLS audio.");
      return;
    }
    if (state.state !== "playing") {
      setState("ready", "Ready to play.");
    }
  }

  function startNative(masterUrl, play) {
    state.engine = "native";
    // The browser picks the rung itself and does not say which.
    bitrateEl.textContent = "chosen by the browser";
    audio.preload = "metadata";
    audio.src = masterUrl;
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
      // Audio only: no need for a big forward buffer. hls.js would otherwise
      // fill up to 60 MB (half an hour at 256 kb/s) of a track the listener
      // may skip; a minute ahead is 2 MB and rides out a dropped network.
      maxBufferLength: 30,
      maxMaxBufferLength: 60,
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
      // A fragment loaded a while after the last new URL: that token
      // worked, so a later failure starts a fresh count. Not at once: an
      // object missing behind the CDN (403 on S3) would otherwise reload
      // for ever, each reload's init segment resetting the count.
      if (Date.now() - lastReloadAt > RELOAD_WINDOW_MS) {
        state.reloads = 0;
      }
    });
    hls.on(Hls.Events.ERROR, function (_event, data) {
      state.errors.push({ type: data.type, details: data.details, fatal: data.fatal });
      if (state.errors.length > 20) {
        state.errors.shift();
      }
      // A refused playlist or segment (403) is the URL's token expired:
      // hls.js counts that as recoverable and kept retrying the dead URL
      // (30 s and on, in the test), so act on the first one.
      var refused =
        data.type === Hls.ErrorTypes.NETWORK_ERROR &&
        data.response &&
        (data.response.code === 401 || data.response.code === 403);
      if (refreshing || (!data.fatal && !refused)) {
        return;
      }
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (
        data.type === Hls.ErrorTypes.NETWORK_ERROR &&
        state.reloads < MAX_RELOADS
      ) {
        // Most likely the URL's token expired: get a new one, at once the
        // first time and a little later each time after.
        state.reloads += 1;
        refreshing = true;
        lastReloadAt = Date.now();
        setState("preparing", "Reconnecting…");
        setTimeout(load, state.reloads > 1 ? 1000 * Math.pow(2, state.reloads - 2) : 0);
      } else {
        stopEngine();
        setState("error", "Playback failed. Reload the page to try again.");
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
      played.catch(function (error) {
        // Autoplay refused (no user gesture): the controls are there. An
        // AbortError is a pause or a new source, not a refusal; and an
        // error already shown stays.
        if ((error && error.name === "AbortError") || state.state !== "ready") {
          return;
        }
        setState("ready", "Press play to listen.");
      });
    }
  }

  audio.addEventListener("play", function () {
    // The button follows the listener's intent, not the buffering after it.
    showPlaying(true);
    // Within the press on play: an audio context made now may run.
    buildGraph();
    if (graph && graph.context.state === "suspended") {
      graph.context.resume();
    }
  });
  audio.addEventListener("playing", function () {
    setState("playing", "Playing.");
    if (!frame) {
      frame = window.requestAnimationFrame(tick);
    }
  });
  audio.addEventListener("pause", function () {
    showPlaying(false);
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

  // The waveform, the position and the seeking.

  var pendingSeek = null; // seconds asked for before the media could seek
  var shownSecond = -1;
  var ariaStale = false; // the slider's value lags the shown position
  var frame = null;
  var waveform = new window.VezaWaveform(waveEl, function (fraction) {
    seekTo(fraction * duration());
  });

  function formatTime(seconds) {
    var total = Math.max(0, Math.floor(seconds || 0));
    var hours = Math.floor(total / 3600);
    var minutes = Math.floor((total % 3600) / 60);
    var secs = total % 60;
    var mm = hours ? String(minutes).padStart(2, "0") : String(minutes);
    return (hours ? hours + ":" : "") + mm + ":" + String(secs).padStart(2, "0");
  }

  function duration() {
    return isFinite(audio.duration) && audio.duration > 0 ? audio.duration : knownDuration;
  }

  function position() {
    return pendingSeek !== null ? pendingSeek : audio.currentTime || 0;
  }

  // The total as the server writes it (rounded); positions count whole
  // seconds gone by.
  function formatTotal(seconds) {
    return formatTime(Math.round(seconds || 0));
  }

  // `sayNow`: a key, a seek, focus or a pause. A screen reader reads out
  // every change of the focused slider, so while the track plays under
  // focus its value waits for one of those rather than ticking each second.
  function render(sayNow) {
    var total = duration();
    var at = position();
    waveform.setProgress(total ? at / total : 0);
    var second = Math.floor(at);
    if (second !== shownSecond) {
      shownSecond = second;
      positionEl.textContent = formatTime(at);
      ariaStale = true;
    }
    if (ariaStale && (sayNow === true || audio.paused || document.activeElement !== waveEl)) {
      ariaStale = false;
      waveEl.setAttribute("aria-valuenow", String(second));
      waveEl.setAttribute("aria-valuetext", formatTime(at) + " of " + formatTotal(total));
    }
  }

  function sayPosition() {
    render(true);
  }

  function tick() {
    render();
    frame = audio.paused ? null : window.requestAnimationFrame(tick);
  }

  function seekTo(seconds) {
    var total = duration();
    if (!total) {
      return;
    }
    var to = Math.max(0, Math.min(seconds, total));
    if (audio.readyState >= 1) {
      pendingSeek = null;
      audio.currentTime = to;
    } else {
      // No media yet: applied on loadedmetadata, or as hls.js's start.
      pendingSeek = to;
    }
    render();
  }

  function loadWaveform() {
    state.waveform.status = "fetching";
    fetch(root.dataset.waveformUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status !== 200) {
          throw response.status;
        }
        return response.json();
      })
      .then(
        function (peaks) {
          state.waveform.status = "ready";
          state.waveform.points = peaks.length || 0;
          waveform.setPeaks(peaks.data);
          waveEl.dataset.state = "ready";
          render();
        },
        function (status) {
          // A flat line still shows progress and seeks. 409: the package
          // predates peaks and is being rebuilt, so ask again a while later.
          state.waveform.status = "flat";
          waveEl.dataset.state = "flat";
          waveform.setPeaks(null);
          render();
          if (status === 409 && state.waveform.tries < WAVEFORM_RETRIES) {
            state.waveform.tries += 1;
            setTimeout(loadWaveform, WAVEFORM_RETRY_MS);
          }
        }
      );
  }

  function togglePlay() {
    if (!canToggle()) {
      return;
    }
    if (audio.paused) {
      tryPlay();
    } else {
      audio.pause();
    }
  }

  // The slider's keys; true when the key was one of them.
  function keySeek(key) {
    var total = duration();
    var at = position();
    var steps = {
      ArrowRight: at + SEEK_STEP_S,
      ArrowUp: at + SEEK_STEP_S,
      ArrowLeft: at - SEEK_STEP_S,
      ArrowDown: at - SEEK_STEP_S,
      PageUp: at + total / 10,
      PageDown: at - total / 10,
      Home: 0,
      End: total,
    };
    if (!Object.prototype.hasOwnProperty.call(steps, key)) {
      return false;
    }
    seekTo(steps[key]);
    return true;
  }

  function showPlaying(playing) {
    playButton.dataset.playing = String(playing);
    playButton.setAttribute("aria-label", playing ? "Pause" : "Play");
  }

  playButton.addEventListener("click", togglePlay);
  waveEl.addEventListener("keydown", function (event) {
    if (!event.altKey && !event.ctrlKey && !event.metaKey && keySeek(event.key)) {
      event.preventDefault();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var target = event.target instanceof Element ? event.target : document.body;
    var field = target.closest("input, select, textarea, [contenteditable]");
    if (event.key === " " && !field && !target.closest("button, a[href]")) {
      event.preventDefault();
      if (!event.repeat) {
        togglePlay();
      }
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && !field) {
      event.preventDefault();
      keySeek(event.key);
    }
  });
  audio.addEventListener("loadedmetadata", function () {
    if (pendingSeek !== null) {
      audio.currentTime = pendingSeek;
      pendingSeek = null;
    }
  });
  audio.addEventListener("durationchange", function () {
    if (!knownDuration && isFinite(audio.duration)) {
      durationEl.textContent = formatTotal(audio.duration);
    }
    waveEl.setAttribute("aria-valuemax", String(Math.round(duration())));
    shownSecond = -1;
    render();
  });
  ["timeupdate", "seeking"].forEach(function (name) {
    audio.addEventListener(name, function () {
      render();
    });
  });
  audio.addEventListener("seeked", sayPosition);
  audio.addEventListener("pause", sayPosition);
  waveEl.addEventListener("focus", sayPosition);

  load();
})();
