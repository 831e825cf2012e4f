// Detection explorer: anchor matching and step-by-step NMS on one scene. Python
// (detection_explorer.py) compared every anchor, score and pair of boxes with every slider
// position, as cnnbook.detection and torchvision compare them, and sends the results as
// integer "levels": a comparison holds at slider position k exactly when k < its level.
// The script only counts, runs the greedy NMS loop over those integers and draws.
// Wrapped by _html.py in a function after base.js (el, stepper, ...): nothing is global.
// Called as mountDetectionExplorer(root, data) with root the figure's <div>.

function mountDetectionExplorer(root, data) {
  "use strict";
  var S = data.steps; // a slider at position k stands for the threshold k / S
  var H = data.height;
  var W = data.width;
  var SCALE = data.scale; // screen pixels per image pixel
  var nA = data.anchors.length;
  var nB = data.boxes.length;
  var KEPT = "#E69F00"; // Okabe-Ito orange
  var CURRENT = "#fde725"; // viridis yellow: what the step is about
  var VICTIM = "#D55E00"; // Okabe-Ito vermillion, dashed
  var OUTLINE = "#1d1d1f";
  var GE = "\u2265";

  var pixels = unpack(data.image); // (H, W, 3) uint8
  var anchorLevel = unpack(data.anchor_level); // positive while fg position < level
  var strictLevel = unpack(data.anchor_level_strict); // the same without the claim rule
  var scoreLevel = unpack(data.score_level); // score > threshold while position < level
  var pairLevel = unpack(data.pair_level); // (nB, nB): IoU > threshold while position < level
  var state = {
    fg: data.start.fg, bg: data.start.bg, score: data.start.score, nms: data.start.nms,
    index: 0, timer: null,
  };
  var trace = []; // [{kept, victims}], one entry per NMS step
  var candidates = [];
  var view = {};
  var player = null;

  function threshold(k) {
    return (k / S).toFixed(S > 100 ? 3 : 2);
  }

  // ---------------------------------------------------------------- numbers

  function matchAnchors() {
    var status = [];
    var counts = { positive: 0, negative: 0, ignored: 0, claimed: 0 };
    for (var a = 0; a < nA; a += 1) {
      if (state.fg < anchorLevel[a]) {
        status.push(data.anchor_gt[a]);
        counts.positive += 1;
        if (state.fg >= strictLevel[a]) {
          counts.claimed += 1; // positive only because a box claims its best anchor
        }
      } else if (state.bg >= anchorLevel[a]) {
        status.push(-1);
        counts.negative += 1;
      } else {
        status.push(-2);
        counts.ignored += 1;
      }
    }
    counts.status = status;
    return counts;
  }

  // Greedy NMS over the candidates (score above the threshold, best first).
  function runNms() {
    candidates = data.order.filter(function (b) {
      return state.score < scoreLevel[b];
    });
    var out = new Uint8Array(nB);
    trace = [];
    for (var p = 0; p < candidates.length; p += 1) {
      var b = candidates[p];
      if (out[b]) {
        continue;
      }
      var victims = [];
      for (var q = p + 1; q < candidates.length; q += 1) {
        var c = candidates[q];
        if (!out[c] && state.nms < pairLevel[b * nB + c]) {
          out[c] = 1;
          victims.push(c);
        }
      }
      trace.push({ kept: b, victims: victims });
    }
  }

  // ---------------------------------------------------------------- drawing

  var picture = el("canvas", { width: String(W), height: String(H) });
  (function paintPicture() {
    var ctx = picture.getContext("2d");
    var image = ctx.createImageData(W, H);
    for (var p = 0; p < W * H; p += 1) {
      image.data[4 * p] = pixels[3 * p];
      image.data[4 * p + 1] = pixels[3 * p + 1];
      image.data[4 * p + 2] = pixels[3 * p + 2];
      image.data[4 * p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  })();

  function startCanvas(canvas) {
    var ctx = canvas.getContext("2d");
    ctx.setLineDash([]);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture, 0, 0, W * SCALE, H * SCALE);
    ctx.fillStyle = "rgba(0, 0, 0, 0.25)"; // dim the scene a little so boxes stand out
    ctx.fillRect(0, 0, W * SCALE, H * SCALE);
    return ctx;
  }

  function box(ctx, b, colour, width, dash, outline) {
    var x = b[0] * SCALE;
    var y = b[1] * SCALE;
    var w = (b[2] - b[0]) * SCALE;
    var h = (b[3] - b[1]) * SCALE;
    ctx.setLineDash(dash || []);
    if (outline) {
      ctx.strokeStyle = OUTLINE;
      ctx.lineWidth = width + 2;
      ctx.strokeRect(x, y, w, h);
    }
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.strokeRect(x, y, w, h);
    ctx.setLineDash([]);
  }

  function truth(ctx) {
    data.gt.forEach(function (b, g) {
      box(ctx, b, "#ffffff", 2, null, true);
      if (data.gt_names) {
        ctx.font = "12px sans-serif";
        ctx.fillStyle = "#ffffff";
        ctx.fillText(data.gt_names[g], b[0] * SCALE + 3, b[1] * SCALE + 13);
      }
    });
  }

  function gtColour(g) {
    return data.palette[g % data.palette.length];
  }

  function renderMatching() {
    var m = matchAnchors();
    var ctx = startCanvas(view.matchCanvas);
    m.status.forEach(function (s, a) {
      var b = data.anchors[a];
      if (s === -1) {
        ctx.fillStyle = "rgba(255, 255, 255, 0.55)";
        ctx.fillRect(((b[0] + b[2]) / 2) * SCALE - 1, ((b[1] + b[3]) / 2) * SCALE - 1, 2, 2);
      } else if (s === -2) {
        box(ctx, b, "#d9d9d9", 1, [4, 3]);
      }
    });
    m.status.forEach(function (s, a) {
      if (s >= 0) {
        box(ctx, data.anchors[a], gtColour(s), 1.5);
      }
    });
    truth(ctx);
    root.setAttribute("data-positives", String(m.positive));
    root.setAttribute("data-negatives", String(m.negative));
    root.setAttribute("data-ignored", String(m.ignored));
    root.setAttribute("data-claimed", String(m.claimed));
    root.setAttribute("data-fg", String(state.fg));
    root.setAttribute("data-bg", String(state.bg));
    view.matchCounts.textContent =
      m.positive + " positive (IoU " + GE + " " + threshold(state.fg) +
      (m.claimed ? ", " + m.claimed + " of them only as a box's best anchor" : "") + "), " +
      m.ignored + " ignored (dashed), " + m.negative + " negative (IoU < " +
      threshold(state.bg) + ", dots), of " + nA + " anchors.";
  }

  function renderNms() {
    var s = state.index;
    var ctx = startCanvas(view.nmsCanvas);
    var gone = new Uint8Array(nB);
    var kept = [];
    for (var t = 0; t < s; t += 1) {
      kept.push(trace[t].kept);
      trace[t].victims.forEach(function (v) {
        gone[v] = 1;
      });
    }
    var current = s > 0 ? trace[s - 1] : null;
    var isKept = new Uint8Array(nB);
    kept.forEach(function (b) {
      isKept[b] = 1;
    });
    var remaining = candidates.filter(function (b) {
      return !gone[b] && !isKept[b];
    });
    remaining.forEach(function (b) {
      box(ctx, data.boxes[b], "rgba(255, 255, 255, 0.6)", 1);
    });
    if (current) {
      current.victims.forEach(function (v) {
        box(ctx, data.boxes[v], VICTIM, 1.5, [5, 3]);
      });
    }
    kept.forEach(function (b) {
      if (!current || b !== current.kept) {
        box(ctx, data.boxes[b], KEPT, 2, null, true);
      }
    });
    if (current) {
      box(ctx, data.boxes[current.kept], CURRENT, 3, null, true);
    }
    var suppressed = 0;
    for (var i = 0; i < nB; i += 1) {
      suppressed += gone[i];
    }
    var finalKept = trace.map(function (e) {
      return e.kept;
    });
    root.setAttribute("data-candidates", String(candidates.length));
    root.setAttribute("data-kept-total", String(trace.length));
    root.setAttribute("data-final-kept", finalKept.join(","));
    root.setAttribute("data-step", String(s));
    root.setAttribute("data-kept", kept.join(","));
    root.setAttribute("data-suppressed", String(suppressed));
    root.setAttribute("data-remaining", String(remaining.length));
    root.setAttribute("data-score", String(state.score));
    root.setAttribute("data-nms", String(state.nms));
    view.nmsCounts.textContent =
      candidates.length + " boxes score above " + threshold(state.score) + "; NMS at IoU " +
      threshold(state.nms) + " keeps " + trace.length + " of them. Step " + s + " of " +
      trace.length + ": " + kept.length + " kept, " + suppressed + " suppressed, " +
      remaining.length + " still to decide.";
    var text;
    if (!candidates.length) {
      text = "No box scores above " + threshold(state.score) + ": nothing to suppress.";
    } else if (!current) {
      text = "Press Step: NMS keeps the best-scoring box, then suppresses every later box " +
        "whose IoU with it is above " + threshold(state.nms) + ".";
    } else {
      text = "Step " + s + ": keep box " + current.kept + " (score " +
        data.scores[current.kept].toFixed(3) + ", yellow), the best box left; it suppresses " +
        current.victims.length + (current.victims.length === 1 ? " box" : " boxes") +
        " overlapping it by IoU > " + threshold(state.nms) + " (dashed)." +
        (s === trace.length ? " No box is left: done." : "");
    }
    view.status.textContent = text;
  }

  // ---------------------------------------------------------------- controls

  function slider(bar, name, text, value, onInput) {
    var label = el("label", { class: "cnnbook-select cnnbook-dx-slider" });
    label.appendChild(el("span", null, text));
    var input = el("input", {
      type: "range", min: "0", max: String(S), step: "1", value: String(value),
      "data-control": name,
    });
    var shown = el("output", { "data-role": name + "-value" }, threshold(value));
    input.addEventListener("input", function () {
      onInput(Number(input.value));
    });
    label.appendChild(input);
    label.appendChild(shown);
    bar.appendChild(label);
    return { input: input, shown: shown };
  }

  function setSlider(s, k) {
    s.input.value = String(k);
    s.shown.textContent = threshold(k);
    s.input.setAttribute("aria-valuetext", threshold(k));
  }

  function onMatching(which, k) {
    state[which] = k;
    // match_anchors needs bg <= fg: the other slider follows
    if (state.bg > state.fg) {
      if (which === "fg") {
        state.bg = state.fg;
      } else {
        state.fg = state.bg;
      }
    }
    setSlider(view.fg, state.fg);
    setSlider(view.bg, state.bg);
    renderMatching();
  }

  function onNms(which, k) {
    player.stop();
    state[which] = k;
    setSlider(view.score, state.score);
    setSlider(view.nms, state.nms);
    runNms();
    state.index = trace.length; // show the result; Reset and Step walk through it
    renderNms();
  }

  function panel(caption, role) {
    var box = el("div", { class: "cnnbook-panel" });
    // as narrow as the picture (or the sliders): two panels side by side in a book column
    box.style.width = Math.max(W * SCALE + 2, 270) + "px";
    box.appendChild(el("div", { class: "cnnbook-caption" }, caption));
    var canvas = el("canvas", {
      width: String(W * SCALE), height: String(H * SCALE), "data-role": role, role: "img",
      "aria-label": caption,
    });
    box.appendChild(canvas);
    return { box: box, canvas: canvas };
  }

  var body = widgetBody(root, data.title);
  var panels = el("div", { class: "cnnbook-panels" });

  var left = panel("Anchor matching: true boxes white, positives in their box's colour",
    "match-canvas");
  var mbar = el("div", { class: "cnnbook-controls" });
  view.fg = slider(mbar, "fg-iou", "Positive if IoU " + GE, state.fg, function (k) {
    onMatching("fg", k);
  });
  view.bg = slider(mbar, "bg-iou", "Negative if IoU <", state.bg, function (k) {
    onMatching("bg", k);
  });
  left.box.insertBefore(mbar, left.canvas);
  view.matchCanvas = left.canvas;
  view.matchCounts = el("p", { class: "cnnbook-dx-counts", "data-role": "match-counts" });
  left.box.appendChild(view.matchCounts);

  var right = panel("NMS: kept orange, current step yellow, suppressed dashed",
    "nms-canvas");
  var nbar = el("div", { class: "cnnbook-controls" });
  view.score = slider(nbar, "score", "Score >", state.score, function (k) {
    onNms("score", k);
  });
  view.nms = slider(nbar, "nms-iou", "Suppress if IoU >", state.nms, function (k) {
    onNms("nms", k);
  });
  var sbar = el("div", { class: "cnnbook-controls" });
  player = stepper(root, sbar, state, function () {
    return trace.length;
  }, renderNms, 700);
  right.box.insertBefore(nbar, right.canvas);
  right.box.insertBefore(sbar, right.canvas);
  view.nmsCanvas = right.canvas;
  view.nmsCounts = el("p", { class: "cnnbook-dx-counts", "data-role": "nms-counts" });
  right.box.appendChild(view.nmsCounts);

  panels.appendChild(left.box);
  panels.appendChild(right.box);
  body.appendChild(panels);
  view.status = statusLine();
  body.appendChild(view.status);
  body.appendChild(el("p", { class: "cnnbook-dx-source", "data-role": "source" }, data.source));
  root.appendChild(body);

  setSlider(view.fg, state.fg);
  setSlider(view.bg, state.bg);
  setSlider(view.score, state.score);
  setSlider(view.nms, state.nms);
  renderMatching();
  runNms();
  state.index = trace.length;
  renderNms();
}
