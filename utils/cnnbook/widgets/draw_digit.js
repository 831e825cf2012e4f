// Draw-a-digit figure: the reader draws on a 28 x 28 canvas and the LeNet that Python
// exported (draw_digit.py: the layer list and its float32 numbers) runs here after every
// stroke, layer by layer in the module's order, on the canvas standardised with the
// chapter's mean and std. Every layer's output is drawn as small grey-scale maps and the
// ten class probabilities as bars.
// Page hook (for tests and other pages): dispatch on the root
//   new CustomEvent("cnnbook:load-digit", {detail: {pixels: <784 numbers in [0, 1]>}})
// to load a whole image. After each update the root carries data-probabilities (ten
// numbers, comma-separated), data-prediction, data-ink and data-forward-ms.
// Wrapped by _html.py in a function, after base.js, so nothing here is global.

function mountDrawDigit(root, data) {
  "use strict";
  var N = data.size; // 28
  var ZOOM = 10; // screen pixels per canvas pixel
  var weights = decodeFloat32(data.weights);
  var pixels = new Float64Array(N * N); // the canvas, 0 background .. 1 ink
  var view = { maps: [], bars: [] };
  var drawing = null; // {id, x, y} of the pointer drawing now
  var pending = false;
  var label = null; // the true class of a loaded test digit, until the reader draws

  // ---------------------------------------------------------------- decoding

  // base64 of little-endian float32 -> Float32Array (read with DataView: any byte order).
  function decodeFloat32(b64) {
    var bin = atob(b64);
    var view8 = new DataView(new ArrayBuffer(bin.length));
    for (var i = 0; i < bin.length; i += 1) {
      view8.setUint8(i, bin.charCodeAt(i));
    }
    var out = new Float32Array(bin.length / 4);
    for (var j = 0; j < out.length; j += 1) {
      out[j] = view8.getFloat32(4 * j, true);
    }
    return out;
  }

  function decodeUint8(packed) {
    var bin = atob(packed.b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i += 1) {
      out[i] = bin.charCodeAt(i);
    }
    return out;
  }

  // ---------------------------------------------------------------- the network

  // t: {c, h, w, v: Float64Array (c, h, w) row-major}; a vector has h = w = 1.
  function conv(layer, t) {
    var k = layer.k;
    var p = layer.padding;
    var H = t.h + 2 * p - k + 1;
    var W = t.w + 2 * p - k + 1;
    var out = new Float64Array(layer.c_out * H * W);
    for (var o = 0; o < layer.c_out; o += 1) {
      var b = layer.bias === null ? 0 : weights[layer.bias + o];
      for (var y = 0; y < H; y += 1) {
        for (var x = 0; x < W; x += 1) {
          var s = b;
          for (var i = 0; i < t.c; i += 1) {
            var wBase = layer.weight + ((o * t.c + i) * k) * k;
            var inBase = i * t.h * t.w;
            for (var ky = 0; ky < k; ky += 1) {
              var yy = y + ky - p;
              if (yy < 0 || yy >= t.h) {
                continue;
              }
              var row = inBase + yy * t.w;
              var wRow = wBase + ky * k;
              for (var kx = 0; kx < k; kx += 1) {
                var xx = x + kx - p;
                if (xx >= 0 && xx < t.w) {
                  s += weights[wRow + kx] * t.v[row + xx];
                }
              }
            }
          }
          out[(o * H + y) * W + x] = s;
        }
      }
    }
    return { c: layer.c_out, h: H, w: W, v: out };
  }

  function batchNorm(layer, t) {
    var out = new Float64Array(t.v.length);
    var plane = t.h * t.w;
    for (var c = 0; c < t.c; c += 1) {
      var scale = weights[layer.weight + c] / Math.sqrt(weights[layer.running_var + c] + layer.eps);
      var mean = weights[layer.running_mean + c];
      var shift = weights[layer.bias + c];
      for (var j = 0; j < plane; j += 1) {
        out[c * plane + j] = (t.v[c * plane + j] - mean) * scale + shift;
      }
    }
    return { c: t.c, h: t.h, w: t.w, v: out };
  }

  function pointwise(t, f) {
    var out = new Float64Array(t.v.length);
    for (var j = 0; j < out.length; j += 1) {
      out[j] = f(t.v[j]);
    }
    return { c: t.c, h: t.h, w: t.w, v: out };
  }

  function pool(t, useMax) {
    var H = Math.floor(t.h / 2);
    var W = Math.floor(t.w / 2);
    var out = new Float64Array(t.c * H * W);
    for (var c = 0; c < t.c; c += 1) {
      for (var y = 0; y < H; y += 1) {
        for (var x = 0; x < W; x += 1) {
          var at = (c * t.h + 2 * y) * t.w + 2 * x;
          var a = t.v[at];
          var b = t.v[at + 1];
          var d = t.v[at + t.w];
          var e = t.v[at + t.w + 1];
          out[(c * H + y) * W + x] = useMax
            ? Math.max(Math.max(a, b), Math.max(d, e))
            : (a + b + d + e) / 4;
        }
      }
    }
    return { c: t.c, h: H, w: W, v: out };
  }

  function linear(layer, t) {
    var out = new Float64Array(layer.n_out);
    for (var o = 0; o < layer.n_out; o += 1) {
      var s = weights[layer.bias + o];
      var base = layer.weight + o * layer.n_in;
      for (var i = 0; i < layer.n_in; i += 1) {
        s += weights[base + i] * t.v[i];
      }
      out[o] = s;
    }
    return { c: layer.n_out, h: 1, w: 1, v: out };
  }

  function sigmoid(x) {
    return 1 / (1 + Math.exp(-x));
  }

  function relu(x) {
    return x > 0 ? x : 0;
  }

  // The canvas through every layer: [{layer, t}], the last one the logits.
  function forward() {
    var x = new Float64Array(N * N);
    for (var j = 0; j < x.length; j += 1) {
      x[j] = (pixels[j] - data.mean) / data.std;
    }
    var t = { c: 1, h: N, w: N, v: x };
    var outputs = [];
    data.layers.forEach(function (layer) {
      if (layer.kind === "conv") {
        t = conv(layer, t);
      } else if (layer.kind === "bn") {
        t = batchNorm(layer, t);
      } else if (layer.kind === "relu") {
        t = pointwise(t, relu);
      } else if (layer.kind === "sigmoid") {
        t = pointwise(t, sigmoid);
      } else if (layer.kind === "tanh") {
        t = pointwise(t, Math.tanh);
      } else if (layer.kind === "maxpool" || layer.kind === "avgpool") {
        t = pool(t, layer.kind === "maxpool");
      } else if (layer.kind === "flatten") {
        t = { c: t.v.length, h: 1, w: 1, v: t.v };
      } else if (layer.kind === "linear") {
        t = linear(layer, t);
      }
      outputs.push({ layer: layer, t: t });
    });
    return outputs;
  }

  function softmax(logits) {
    var top = -Infinity;
    var j;
    for (j = 0; j < logits.length; j += 1) {
      top = Math.max(top, logits[j]);
    }
    var sum = 0;
    var out = new Float64Array(logits.length);
    for (j = 0; j < logits.length; j += 1) {
      out[j] = Math.exp(logits[j] - top);
      sum += out[j];
    }
    for (j = 0; j < logits.length; j += 1) {
      out[j] /= sum;
    }
    return out;
  }

  // ---------------------------------------------------------------- drawing

  // values (n) in [lo, hi] -> grey pixels of a w x h canvas (constant: mid grey).
  function paintGrey(canvas, values, start, w, h, lo, hi) {
    var ctx = canvas.getContext("2d");
    var image = ctx.createImageData(w, h);
    var span = hi - lo;
    for (var j = 0; j < w * h; j += 1) {
      var g = span > 0 ? Math.round((255 * (values[start + j] - lo)) / span) : 128;
      image.data[4 * j] = g;
      image.data[4 * j + 1] = g;
      image.data[4 * j + 2] = g;
      image.data[4 * j + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function paintCanvas() {
    paintGrey(view.canvas, pixels, 0, N, N, 0, 1);
  }

  // One round brush dab at (cx, cy) in canvas pixels: full ink within 0.9 px of the
  // centre, fading to none at 1.8 px, so strokes look like MNIST's anti-aliased pen.
  function dab(cx, cy) {
    var inner = 0.9;
    var outer = 1.8;
    for (var y = Math.max(0, Math.floor(cy - outer)); y < Math.min(N, cy + outer); y += 1) {
      for (var x = Math.max(0, Math.floor(cx - outer)); x < Math.min(N, cx + outer); x += 1) {
        var d = Math.sqrt((x + 0.5 - cx) * (x + 0.5 - cx) + (y + 0.5 - cy) * (y + 0.5 - cy));
        var ink = Math.min(1, Math.max(0, (outer - d) / (outer - inner)));
        if (ink > pixels[y * N + x]) {
          pixels[y * N + x] = ink;
        }
      }
    }
  }

  function strokeTo(x, y) {
    var steps = Math.max(1, Math.ceil(Math.hypot(x - drawing.x, y - drawing.y) / 0.25));
    for (var s = 1; s <= steps; s += 1) {
      dab(drawing.x + ((x - drawing.x) * s) / steps, drawing.y + ((y - drawing.y) * s) / steps);
    }
    drawing.x = x;
    drawing.y = y;
  }

  function canvasPoint(event) {
    var box = view.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * N) / box.width,
      y: ((event.clientY - box.top) * N) / box.height,
    };
  }

  // Redraw at the next frame at most once, however many pointer events come in.
  function schedule() {
    paintCanvas();
    if (pending) {
      return;
    }
    pending = true;
    var run = function () {
      pending = false;
      update();
    };
    if (window.requestAnimationFrame) {
      window.requestAnimationFrame(run);
    } else {
      setTimeout(run, 16);
    }
  }

  // ---------------------------------------------------------------- update

  function update() {
    var start = performance.now();
    var outputs = forward();
    var elapsed = performance.now() - start;
    var probs = softmax(outputs[outputs.length - 1].t.v);
    var best = 0;
    var ink = 0;
    for (var c = 0; c < probs.length; c += 1) {
      best = probs[c] > probs[best] ? c : best;
    }
    for (var j = 0; j < pixels.length; j += 1) {
      ink += pixels[j];
    }
    paintCanvas();
    outputs.forEach(function (o, i) {
      drawMaps(view.maps[i], o.t);
    });
    view.bars.forEach(function (bar, c) {
      bar.fill.style.width = (100 * probs[c]).toFixed(2) + "%";
      bar.value.textContent = (100 * probs[c]).toFixed(1) + "%";
      bar.row.classList.toggle("cnnbook-dd-best", c === best);
    });
    root.setAttribute("data-probabilities", Array.prototype.join.call(probs, ","));
    root.setAttribute("data-prediction", String(best));
    root.setAttribute("data-ink", String(ink));
    root.setAttribute("data-forward-ms", String(elapsed));
    view.status.textContent =
      ink === 0
        ? "The canvas is empty: this is what the network says about a blank image. " +
          "Draw a digit in the black square."
        : "The network reads a " + best + " (" + (100 * probs[best]).toFixed(1) + "%)" +
          (label === null ? "." : "; this test digit is a " + label + ".");
  }

  // The layer's output as grey maps: one canvas per channel, or one strip for a vector.
  function drawMaps(slot, t) {
    var lo = Infinity;
    var hi = -Infinity;
    for (var j = 0; j < t.v.length; j += 1) {
      lo = Math.min(lo, t.v[j]);
      hi = Math.max(hi, t.v[j]);
    }
    if (t.h === 1 && t.w === 1) {
      paintGrey(slot.canvases[0], t.v, 0, t.c, 1, lo, hi);
    } else {
      for (var c = 0; c < t.c; c += 1) {
        paintGrey(slot.canvases[c], t.v, c * t.h * t.w, t.w, t.h, lo, hi);
      }
    }
    slot.range.textContent = "min " + fmt(lo) + ", max " + fmt(hi);
  }

  function fmt(x) {
    return (x < 0 ? MINUS : "") + Math.abs(x).toFixed(2);
  }

  // ---------------------------------------------------------------- loading images

  function load(values, trueClass) {
    label = trueClass === undefined ? null : trueClass;
    for (var j = 0; j < N * N; j += 1) {
      pixels[j] = values[j];
    }
    view.error.hidden = true;
    update();
  }

  function onLoadEvent(event) {
    var values = event.detail && event.detail.pixels;
    var ok = values && values.length === N * N;
    for (var j = 0; ok && j < N * N; j += 1) {
      ok = typeof values[j] === "number" && values[j] >= 0 && values[j] <= 1;
    }
    if (!ok) {
      view.error.textContent =
        "cnnbook:load-digit needs detail.pixels: " + N * N + " numbers in [0, 1].";
      view.error.hidden = false;
      return;
    }
    load(values);
  }

  // ---------------------------------------------------------------- building

  function build() {
    var body = widgetBody(root, data.title);
    var bar = el("div", { class: "cnnbook-controls" });
    var clear = el("button", { type: "button", "data-action": "clear" }, "Clear");
    clear.addEventListener("click", function () {
      load(new Float64Array(N * N));
    });
    bar.appendChild(clear);
    if (data.examples.length) {
      bar.appendChild(el("span", { class: "cnnbook-dd-hint" }, "Load a test digit:"));
    }
    data.examples.forEach(function (example, i) {
      var values = decodeUint8(example.pixels);
      var button = el("button", {
        type: "button",
        "data-action": "example-" + i,
        "aria-label": "Load " + example.name,
        title: example.name,
      });
      var thumb = el("canvas", { width: N, height: N, class: "cnnbook-dd-thumb" });
      paintGrey(thumb, values, 0, N, N, 0, 255);
      button.appendChild(thumb);
      button.addEventListener("click", function () {
        load(
          Array.prototype.map.call(values, function (v) {
            return v / 255;
          }),
          example.label
        );
      });
      bar.appendChild(button);
    });
    body.appendChild(bar);

    var top = el("div", { class: "cnnbook-panels cnnbook-dd-top" });
    var left = el("div", { class: "cnnbook-panel" });
    left.appendChild(el("div", { class: "cnnbook-caption" }, "Draw here (28 " + TIMES + " 28)"));
    view.canvas = el("canvas", {
      width: N,
      height: N,
      class: "cnnbook-dd-canvas",
      "data-role": "canvas",
      "aria-label": "Drawing canvas, 28 by 28 pixels: draw a digit with the mouse or a finger",
      role: "img",
    });
    view.canvas.style.width = N * ZOOM + "px";
    view.canvas.style.height = N * ZOOM + "px";
    left.appendChild(view.canvas);
    top.appendChild(left);

    var right = el("div", { class: "cnnbook-panel", "data-role": "probabilities" });
    right.appendChild(el("div", { class: "cnnbook-caption" }, "Class probabilities"));
    for (var c = 0; c < 10; c += 1) {
      var row = el("div", { class: "cnnbook-dd-bar", "data-class": String(c) });
      row.appendChild(el("span", { class: "cnnbook-dd-digit" }, String(c)));
      var track = el("span", { class: "cnnbook-dd-track" });
      var fill = el("span", { class: "cnnbook-dd-fill" });
      track.appendChild(fill);
      row.appendChild(track);
      var value = el("span", { class: "cnnbook-dd-value" });
      row.appendChild(value);
      right.appendChild(row);
      view.bars.push({ row: row, fill: fill, value: value });
    }
    top.appendChild(right);
    body.appendChild(top);
    view.status = statusLine();
    body.appendChild(view.status);
    view.error = errorLine();
    view.error.hidden = true;
    body.appendChild(view.error);

    // one row per layer, in the module's order, sized from a pass on the empty canvas
    var maps = el("div", { class: "cnnbook-dd-layers", "data-role": "feature-maps" });
    maps.appendChild(
      el("div", { class: "cnnbook-caption" }, "Every layer's output (grey: low to high)")
    );
    forward().forEach(function (o) {
      var t = o.t;
      var vector = t.h === 1 && t.w === 1;
      var row = el("div", { class: "cnnbook-dd-layer", "data-layer": o.layer.name });
      var shape = vector ? String(t.c) : [t.c, t.h, t.w].join(" " + TIMES + " ");
      var name = el("div", { class: "cnnbook-dd-name" });
      name.appendChild(el("strong", null, o.layer.name));
      name.appendChild(el("span", null, " " + o.layer.kind + ", " + shape));
      var range = el("span", { class: "cnnbook-dd-range" });
      name.appendChild(range);
      row.appendChild(name);
      var cells = el("div", { class: "cnnbook-dd-maps" });
      var slot = { canvases: [], range: range };
      var count = vector ? 1 : t.c;
      var zoom = vector ? 4 : Math.max(3, Math.round(42 / t.h));
      for (var i = 0; i < count; i += 1) {
        var map = el("canvas", { width: vector ? t.c : t.w, height: vector ? 1 : t.h });
        map.style.width = (vector ? Math.min(Math.max(t.c * zoom, 160), 480) : t.w * zoom) + "px";
        map.style.height = (vector ? 14 : t.h * zoom) + "px";
        cells.appendChild(map);
        slot.canvases.push(map);
      }
      row.appendChild(cells);
      maps.appendChild(row);
      view.maps.push(slot);
    });
    body.appendChild(maps);
    root.appendChild(body);
  }

  function bindPointer() {
    var canvas = view.canvas;
    canvas.addEventListener("pointerdown", function (event) {
      if (drawing !== null) {
        return;
      }
      event.preventDefault();
      label = null;
      var p = canvasPoint(event);
      drawing = { id: event.pointerId, x: p.x, y: p.y };
      if (canvas.setPointerCapture) {
        canvas.setPointerCapture(event.pointerId);
      }
      dab(p.x, p.y);
      schedule();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (drawing === null || event.pointerId !== drawing.id) {
        return;
      }
      var p = canvasPoint(event);
      strokeTo(p.x, p.y);
      schedule();
    });
    var end = function (event) {
      if (drawing !== null && event.pointerId === drawing.id) {
        drawing = null;
        schedule();
      }
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("lostpointercapture", end); // else a lost "up" would stick
  }

  build();
  bindPointer();
  root.addEventListener("cnnbook:load-digit", onLoadEvent);
  if (data.examples.length) {
    root.querySelector('[data-action="example-0"]').click();
  } else {
    update();
  }
}
