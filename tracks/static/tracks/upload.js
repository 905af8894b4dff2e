// The upload page (tracks/upload_page.py): Uppy's Dashboard sends the file,
// then the page polls the upload session until its track is ready and links
// to the player. Two transports, as the server says (`data-transport`):
//
// - tus 1.0.0 to /api/v1/uploads/tus/, in chunks. A dropped connection
//   resumes on its own: tus-js-client retries after `retryDelays`, and while
//   the browser is offline Uppy holds the retry until it is back, then asks
//   the server for its offset (HEAD) and sends only what is missing. The
//   same file added again after a reload resumes too (the upload URL is kept
//   in localStorage until the upload succeeds).
// - s3: @uppy/aws-s3 against /api/v1/uploads/s3/multipart…, which opens a
//   multipart upload and signs each part; the parts go straight to the
//   bucket. The plugin tries a failed part a few times while online, but
//   gives up on a part cut while offline and on any failed call to our
//   endpoint; the page then tries again once the browser is online, and the
//   plugin asks the server which parts the bucket holds (ListParts) and
//   sends the others. Files of 5 MiB or less are one part, which the plugin
//   would send as a form POST the server has no route for: they go over tus.
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
  // The smallest S3 part but the last: @uppy/aws-s3 sends a file no larger
  // than this in one request (a presigned POST) instead of a multipart upload.
  const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
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
  const api = { uppy: null, results: {}, polls: 0, transport: null };
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

  const TRANSPORTS = {
    Tus: [
      Uppy.Tus,
      {
        endpoint: data.tusEndpoint,
        chunkSize: Number(data.chunkBytes),
        retryDelays: RETRY_DELAYS_MS,
        // Same origin: the session cookie goes along; unsafe methods (POST,
        // PATCH, DELETE) also need the CSRF token.
        headers: { "X-CSRFToken": data.csrfToken },
        allowedMetaFields: ["name", "type", "title", "visibility"],
        removeFingerprintOnSuccess: true,
        limit: 1,
      },
    ],
    AwsS3: [
      Uppy.AwsS3,
      {
        // The plugin asks `${companionEndpoint}/s3/multipart…`.
        companionEndpoint: data.s3Endpoint,
        shouldUseMultipart: true,
        getChunkSize: () => Number(data.chunkBytes),
        // The server needs the size up front (quota) and takes the title
        // and visibility from the metadata.
        allowedMetaFields: ["name", "type", "title", "visibility", "size"],
        limit: 1,
      },
    ],
  };

  // One uploader at a time, the one the file needs: Uppy hands every file
  // to every uploader installed.
  function useTransportFor(file) {
    const wanted =
      data.transport === "s3" && file.size > S3_MIN_PART_BYTES ? "AwsS3" : "Tus";
    for (const name of Object.keys(TRANSPORTS)) {
      const plugin = uppy.getPlugin(name);
      if (plugin && name !== wanted) uppy.removePlugin(plugin);
    }
    if (!uppy.getPlugin(wanted)) uppy.use(...TRANSPORTS[wanted]);
    api.transport = wanted;
  }

  // @uppy/aws-s3 calls its endpoint with a bare fetch(), with no headers
  // option: the CSRF token Django wants on its POST and DELETE is added
  // here, to requests for that endpoint only, and a refusal's error body
  // (a quota, a size) is kept for the page to show: the plugin's own error
  // says only "Companion request failed".
  let endpointError = null;
  const bareFetch = window.fetch.bind(window);
  window.fetch = async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : input, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(`${data.s3Endpoint}/s3/`)) {
      return bareFetch(input, init);
    }
    const headers = new Headers(init.headers || {});
    headers.set("X-CSRFToken", data.csrfToken);
    const response = await bareFetch(input, { ...init, headers, credentials: "same-origin" });
    // 4xx: a refusal, asking again gives the same answer; 5xx: tried again.
    if (response.status >= 400 && response.status < 500) {
      endpointError = apiError(await response.clone().text()) || httpError(response.status);
    }
    return response;
  };

  // After a network error, once online, the next try (S3 only: tus retries
  // by itself); the count starts again once a part gets through. One try
  // waits per file at most, and a Retry clicked meanwhile replaces it.
  const retries = {};
  const waiting = new Map(); // file id → how to call its next try off
  function retryWhenOnline(file) {
    const tries = retries[file.id] || 0;
    if (tries >= RETRY_DELAYS_MS.length) return false;
    retries[file.id] = tries + 1;
    const again = () => {
      waiting.delete(file.id);
      const current = uppy.getFile(file.id);
      if (current && current.error) uppy.retryUpload(file.id);
    };
    if (navigator.onLine) {
      const timer = setTimeout(again, RETRY_DELAYS_MS[tries]);
      waiting.set(file.id, () => clearTimeout(timer));
    } else {
      window.addEventListener("online", again, { once: true });
      waiting.set(file.id, () => window.removeEventListener("online", again));
    }
    return true;
  }

  function stopWaiting(fileId) {
    const callOff = waiting.get(fileId);
    if (callOff) callOff();
    waiting.delete(fileId);
  }

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
    endpointError = null;
    lockDetails(true);
    setState("uploading");
    for (const file of uppy.getFiles()) {
      if (!file.progress.uploadComplete) {
        show(file, "uploading", [text(`Uploading ${file.name}…`)]);
      }
    }
  });

  uppy.on("file-added", (file) => {
    uppy.setFileMeta(file.id, { size: file.size });
    useTransportFor(file);
  });

  uppy.on("s3-multipart:part-uploaded", (file) => {
    delete retries[file.id];
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
    const refused = endpointError;
    endpointError = null;
    const error =
      apiError(xhr && xhr.responseText) ||
      refused ||
      (response && response.status ? httpError(response.status) : STOPPED);
    // A refusal stays one; a network error is tried again, from the parts
    // the bucket holds.
    if (!refused && api.transport === "AwsS3" && retryWhenOnline(file)) {
      show(file, "uploading", [text(`Uploading ${file.name}… (waiting for the network)`)]);
      return;
    }
    show(file, "stopped", [text(`${file.name}: `), ...errorText(error)], { error });
  });

  uppy.on("upload-retry", (file) => {
    if (file) stopWaiting(file.id);
    if (file) show(file, "uploading", [text(`Uploading ${file.name}…`)]);
  });

  uppy.on("complete", (result) => {
    const failed = result.failed || [];
    // Waiting for the network to try again: still uploading.
    if (failed.length && failed.every((file) => waiting.has(file.id))) return;
    lockDetails(false);
    if (failed.length) setState("stopped");
    if (result.successful && result.successful.length) {
      $("title").value = "";
      uppy.setMeta(details());
    }
  });

  // Removed before it was sent: the server ends the session (tus DELETE, or
  // the multipart DELETE that aborts the upload in the bucket).
  uppy.on("file-removed", (file) => {
    stopWaiting(file.id);
    delete retries[file.id];
    // The plugin stops listening once an upload fails: a file removed after
    // that has its multipart upload aborted here, or it would hold the
    // user's quota until it expires.
    const opened = file.error && file.s3Multipart;
    if (opened && opened.uploadId) {
      const query = new URLSearchParams({ key: opened.key });
      const url = `${data.s3Endpoint}/s3/multipart/${encodeURIComponent(opened.uploadId)}?${query}`;
      fetch(url, { method: "DELETE" }).catch(() => {
        // offline: the upload expires by itself
      });
    }
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
