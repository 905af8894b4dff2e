// The upload page (tracks/upload_page.py): Uppy's Dashboard sends the file
// in chunks over tus 1.0.0 to /api/v1/uploads/tus/, then the page polls the
// upload session until its track is ready and links to the player.
//
// A dropped connection resumes on its own: tus-js-client retries after
// `retryDelays`, and while the browser is offline Uppy holds the retry until
// it is back, then asks the server for its offset (HEAD) and sends only what
// is missing. The same file added again after a reload resumes too (the
// upload URL is kept in localStorage until the upload succeeds).
//
// S3 multipart (@uppy/aws-s3 against /api/v1/uploads/s3/multipart…, parts
// straight to the bucket) will be a second transport here later.
(() => {
  "use strict";

  const root = document.getElementById("upload");
  const $ = (id) => document.getElementById(id);
  const data = root.dataset;
  const maxBytes = Number(data.maxBytes);

  const ACCEPTED_TYPES = [
    "audio/*",
    ".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus",
    ".m4a", ".aif", ".aiff", ".aac", ".webm",
  ];
  // Between tries of a failed request, in ms; the count starts again once a
  // chunk gets through. While offline a try waits for the network instead.
  const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  // Between polls of a session being processed, in ms (the last repeats).
  const POLL_DELAYS_MS = [500, 1000, 2000, 3000, 5000];
  const FINAL = new Set(["ready", "failed", "expired", "error", "cancelled"]);
  const EXPIRED = {
    code: "upload_expired",
    message: "The upload was not finished in time; send the file again.",
  };
  const STOPPED = {
    code: "upload_stopped",
    message: "The server could not be reached. Retry resumes the upload.",
  };

  // What tests and the curious can read: one entry per file sent.
  const api = { uppy: null, results: {}, polls: 0 };
  window.vezaUpload = api;

  function setState(state) {
    root.dataset.state = state;
  }

  function megabytes(bytes) {
    return `${Math.floor(bytes / (1024 * 1024))} MB`;
  }

  // The form's fields become the metadata of the next upload (tus
  // Upload-Metadata `title` and `visibility`; Uppy adds `filename`).
  function details() {
    return { title: $("title").value.trim(), visibility: $("visibility").value };
  }

  const uppy = new Uppy.Uppy({
    id: "veza-upload",
    autoProceed: false,
    restrictions: {
      maxNumberOfFiles: 1,
      maxFileSize: maxBytes,
      allowedFileTypes: ACCEPTED_TYPES,
    },
    meta: details(),
  });
  api.uppy = uppy;

  uppy.use(Uppy.Dashboard, {
    inline: true,
    target: "#dashboard",
    width: "100%",
    height: 360,
    note: `One audio file (WAV, FLAC, MP3, AAC, Ogg…) up to ${megabytes(maxBytes)}.`,
    proudlyDisplayPoweredByUppy: false,
    // Audio only: no image thumbnails (nor the blob: URLs they need).
    disableThumbnailGenerator: true,
    showProgressDetails: true,
    theme: "auto",
  });

  uppy.use(Uppy.Tus, {
    endpoint: data.tusEndpoint,
    chunkSize: Number(data.chunkBytes),
    retryDelays: RETRY_DELAYS_MS,
    // Same origin: the session cookie goes along; unsafe methods (POST,
    // PATCH, DELETE) also need the CSRF token.
    headers: { "X-CSRFToken": data.csrfToken },
    allowedMetaFields: ["name", "type", "title", "visibility"],
    removeFingerprintOnSuccess: true,
    limit: 1,
  });

  const form = $("details");
  const fieldset = [$("title"), $("visibility")];
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("input", () => uppy.setMeta(details()));
  form.addEventListener("change", () => uppy.setMeta(details()));

  function lockDetails(locked) {
    for (const field of fieldset) field.disabled = locked;
  }

  // One list item per file, rewritten as it goes.
  function resultItem(file) {
    let item = document.getElementById(`result-${file.id}`);
    if (!item) {
      item = document.createElement("li");
      item.id = `result-${file.id}`;
      $("results").prepend(item);
    }
    return item;
  }

  function show(file, status, parts, extra = {}) {
    const item = resultItem(file);
    item.dataset.status = status;
    item.replaceChildren(...parts);
    api.results[file.id] = { ...(api.results[file.id] || {}), ...extra, status };
  }

  function text(value, className) {
    const span = document.createElement("span");
    span.textContent = value;
    if (className) span.className = className;
    return span;
  }

  function errorText(error) {
    if (!error) return [text("Unknown error.", "message")];
    const code = document.createElement("code");
    code.textContent = error.code;
    return [code, text(`: ${error.message}`, "message")];
  }

  // The API's error body, {"error": {"code", "message"}}, if there is one.
  function apiError(body) {
    try {
      const parsed = typeof body === "string" ? JSON.parse(body) : body;
      if (parsed && parsed.error && parsed.error.code) return parsed.error;
    } catch (_) {
      // not JSON: a proxy's page, or no answer at all
    }
    return null;
  }

  function httpError(status) {
    return { code: `http_${status}`, message: `The server answered ${status}.` };
  }

  // The session id is the last segment of the tus upload URL.
  function uploadIdOf(uploadURL) {
    const path = new URL(uploadURL, location.href).pathname;
    return path.split("/").filter(Boolean).pop();
  }

  function playerUrl(track) {
    return data.playerPath.replace("{track}", encodeURIComponent(track));
  }

  async function fetchSession(uploadId) {
    const response = await fetch(data.uploadsUrl + encodeURIComponent(uploadId), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    const body = await response.json().catch(() => null);
    if (response.ok && body) return { session: body };
    // 4xx: asking again gives the same answer; 5xx: try later.
    if (response.status >= 400 && response.status < 500) {
      return { error: apiError(body) || httpError(response.status) };
    }
    return {};
  }

  async function poll(file, uploadId, attempt = 0) {
    let answer = {};
    try {
      answer = await fetchSession(uploadId);
    } catch (_) {
      // offline for a moment: the next poll tells
    }
    api.polls += 1;
    const session = answer.session;
    // The track's title: the one given, else the file's name without its
    // extension (as the server names it).
    const name =
      (session && session.title) || file.name.replace(/\.[^.]*$/, "") || file.name;
    if (answer.error) {
      const error = answer.error;
      show(file, "error", [text(`${file.name}: `), ...errorText(error)], { uploadId, error });
    } else if (session && session.status === "ready" && session.track) {
      const link = document.createElement("a");
      link.href = playerUrl(session.track);
      link.textContent = `Play “${name}”`;
      link.className = "player-link";
      const track = session.track;
      show(file, "ready", [text(`${file.name} is ready: `), link], { uploadId, track });
    } else if (session && session.status === "failed") {
      const error = session.error;
      const parts = [text(`${file.name} could not be made into a track: `), ...errorText(error)];
      show(file, "failed", parts, { uploadId, error });
    } else if (session && session.status === "expired") {
      const error = EXPIRED;
      show(file, "expired", [text(`${file.name}: `), ...errorText(error)], { uploadId, error });
    } else {
      const delay = POLL_DELAYS_MS[Math.min(attempt, POLL_DELAYS_MS.length - 1)];
      setTimeout(() => poll(file, uploadId, attempt + 1), delay);
      return;
    }
    settle();
  }

  // The page's own state: processing while any session is, then done.
  function settle() {
    const all = Object.values(api.results);
    if (all.some((r) => !FINAL.has(r.status))) return;
    setState(all.some((r) => r.status !== "ready") ? "failed" : "done");
  }

  uppy.on("upload", () => {
    lockDetails(true);
    setState("uploading");
    for (const file of uppy.getFiles()) {
      if (!file.progress.uploadComplete) {
        show(file, "uploading", [text(`Uploading ${file.name}…`)]);
      }
    }
  });

  uppy.on("upload-success", (file, response) => {
    const uploadId = uploadIdOf(response.uploadURL);
    setState("processing");
    const parts = [text(`${file.name} is uploaded; making it into a track…`)];
    show(file, "processing", parts, { uploadId });
    poll(file, uploadId);
  });

  // Given up after the retries, or refused by the server (a quota, a size):
  // the Dashboard offers Retry, which resumes from the server's offset.
  uppy.on("upload-error", (file, _error, response) => {
    const xhr = response && response.body && response.body.xhr;
    const error =
      apiError(xhr && xhr.responseText) ||
      (response && response.status ? httpError(response.status) : STOPPED);
    show(file, "stopped", [text(`${file.name}: `), ...errorText(error)], { error });
  });

  uppy.on("upload-retry", (file) => {
    if (file) show(file, "uploading", [text(`Uploading ${file.name}…`)]);
  });

  uppy.on("complete", (result) => {
    lockDetails(false);
    if (result.failed && result.failed.length) setState("stopped");
    if (result.successful && result.successful.length) {
      $("title").value = "";
      uppy.setMeta(details());
    }
  });

  // Removed before it was sent: the server ends the session (tus DELETE).
  uppy.on("file-removed", (file) => {
    const result = api.results[file.id];
    if (result && ["uploading", "stopped"].includes(result.status)) {
      show(file, "cancelled", [text(`${file.name}: upload cancelled.`)]);
    }
  });

  uppy.on("cancel-all", () => {
    lockDetails(false);
    setState("ready");
  });

  setState("ready");
})();
