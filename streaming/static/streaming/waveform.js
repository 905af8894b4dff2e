// The player's waveform (streaming/player.html, driven by player.js).
//
// Draws the peaks of GET /api/v1/tracks/<id>/waveform (BBC audiowaveform JSON
// version 2: 8-bit [min, max] pairs) as bars on a canvas, colours the part
// already played, and turns a click or a drag into one seek on release.
//
// A canvas of our own rather than wavesurfer.js (52 KB minified) or peaks.js
// (Konva besides): the peaks come ready-made from the packager, the audio
// element belongs to hls.js, and the slider's semantics (role, keys, value
// text) would be ours to add either way. This is the part that is left.
(function () {
  "use strict";

  var BAR = 3; // CSS px per bar, the gap included
  var GAP = 1;

  function Waveform(el, onSeek) {
    this.el = el;
    this.canvas = el.querySelector("canvas");
    this.onSeek = onSeek; // called with the fraction (0..1) released on
    this.data = null; // the JSON's [min, max, ...] list
    this.bars = []; // [top, bottom] per bar, as fractions of the height
    this.progress = 0;
    this.dragging = null; // the fraction under the pointer while dragging
    this.colours = null;
    this.width = 0;
    this.height = 0;
    this.listen();
    this.resize();
  }

  Waveform.prototype.setPeaks = function (data) {
    this.data = Array.isArray(data) ? data : null;
    this.layout();
    this.draw();
  };

  Waveform.prototype.setProgress = function (fraction) {
    var clamped = Math.max(0, Math.min(1, fraction || 0));
    if (Math.round(clamped * this.width) !== Math.round(this.progress * this.width)) {
      this.progress = clamped;
      this.draw();
    } else {
      this.progress = clamped;
    }
  };

  // One bar per BAR px: the lowest min and the highest max of the points it
  // covers. Without peaks (not ready, or none), a flat line.
  Waveform.prototype.layout = function () {
    var count = Math.max(1, Math.floor(this.width / BAR));
    var bars = [];
    var data = this.data;
    var points = data ? Math.floor(data.length / 2) : 0;
    for (var i = 0; i < count; i++) {
      if (!points) {
        bars.push([0, 0]);
        continue;
      }
      var from = Math.floor((i * points) / count);
      var to = Math.max(from + 1, Math.floor(((i + 1) * points) / count));
      var low = 127;
      var high = -128;
      for (var p = from; p < to && p < points; p++) {
        low = Math.min(low, data[2 * p]);
        high = Math.max(high, data[2 * p + 1]);
      }
      bars.push([high / 128, low / 128]);
    }
    this.bars = bars;
  };

  Waveform.prototype.readColours = function () {
    var style = window.getComputedStyle(this.el);
    this.colours = {
      wave: style.getPropertyValue("--wave").trim() || "#999",
      played: style.getPropertyValue("--wave-played").trim() || "#53c",
      cursor: style.getPropertyValue("--wave-cursor").trim() || "#000",
    };
  };

  Waveform.prototype.resize = function () {
    var box = this.el.getBoundingClientRect();
    var ratio = window.devicePixelRatio || 1;
    this.width = Math.max(1, Math.round(box.width));
    this.height = Math.max(1, Math.round(box.height));
    this.canvas.width = Math.round(this.width * ratio);
    this.canvas.height = Math.round(this.height * ratio);
    this.ratio = ratio;
    this.readColours();
    this.layout();
    this.draw();
  };

  Waveform.prototype.draw = function () {
    var context = this.canvas.getContext("2d");
    var ratio = this.ratio;
    var mid = this.height / 2;
    var shown = this.dragging !== null ? this.dragging : this.progress;
    var playedUpTo = shown * this.width;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, this.width, this.height);
    for (var i = 0; i < this.bars.length; i++) {
      var x = i * BAR;
      var top = mid - this.bars[i][0] * mid;
      var bottom = mid - this.bars[i][1] * mid;
      // Silence still shows as a line one device pixel high.
      var height = Math.max(bottom - top, 1 / ratio);
      context.fillStyle = x + (BAR - GAP) / 2 < playedUpTo ? this.colours.played : this.colours.wave;
      context.fillRect(x, Math.min(top, mid - height / 2), BAR - GAP, height);
    }
    if (this.dragging !== null || this.progress > 0) {
      context.fillStyle = this.colours.cursor;
      context.fillRect(Math.min(playedUpTo, this.width - 1), 0, 1, this.height);
    }
  };

  Waveform.prototype.fractionAt = function (event) {
    var box = this.el.getBoundingClientRect();
    return Math.max(0, Math.min(1, (event.clientX - box.left) / box.width));
  };

  Waveform.prototype.listen = function () {
    var self = this;
    var el = this.el;
    el.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || el.dataset.state === "loading") {
        return;
      }
      el.setPointerCapture(event.pointerId);
      self.dragging = self.fractionAt(event);
      self.draw();
    });
    el.addEventListener("pointermove", function (event) {
      if (self.dragging !== null) {
        self.dragging = self.fractionAt(event);
        self.draw();
      }
    });
    el.addEventListener("pointerup", function (event) {
      if (self.dragging === null) {
        return;
      }
      var fraction = self.fractionAt(event);
      self.dragging = null;
      // The player moves the progress once it has seeked (or not at all,
      // with nothing to seek in yet).
      self.onSeek(fraction);
      self.draw();
    });
    // The drag ends without a seek: cancelled, or the capture taken away.
    ["pointercancel", "lostpointercapture"].forEach(function (name) {
      el.addEventListener(name, function () {
        if (self.dragging !== null) {
          self.dragging = null;
          self.draw();
        }
      });
    });
    if (window.ResizeObserver) {
      new window.ResizeObserver(function () {
        self.resize();
      }).observe(el);
    }
    if (window.matchMedia) {
      window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
        self.readColours();
        self.draw();
      });
    }
  };

  window.VezaWaveform = Waveform;
})();
