// Receptive-field figure: looks up what Python computed for every stack the menus can
// build (see receptive_field.py) and draws it over the photo. The only arithmetic here is
// drawing geometry: where a unit's field lies, given the field size, jump and start.
// Wrapped by _html.py in a function, after base.js (el and the other shared helpers), so
// nothing here is global.
// Called as mountReceptiveField(root, data) with root the figure's <div>.

function mountReceptiveField(root, data) {
  "use strict";
  var NDASH = "\u2013";
  var N = data.size; // photo side in pixels
  var SCALE = data.scale; // screen pixels per photo pixel
  var nOptions = data.options.length;
  var table = {};
  Object.keys(data.table).forEach(function (name) {
    table[name] = unpack(data.table[name]);
  });
  var photo = unpack(data.photo); // (N, N, 3) uint8, row-major
  var state = { slots: [], unit: null, hover: null, showErf: true };
  var view = {};
  var info = null; // the current stack, see describe()

  // ---------------------------------------------------------------- helpers

  function optionIndex(key) {
    for (var c = 0; c < nOptions; c += 1) {
      if (data.options[c].key === key) {
        return c;
      }
    }
    return -1;
  }

  function label(key) {
    return data.options[optionIndex(key)].label;
  }

  function fmt(x) {
    return Number.isInteger(x) ? String(x) : x.toFixed(1);
  }

  function pct(pixels) {
    return (100 * pixels) / N + "%";
  }

  // ---------------------------------------------------------------- the current stack

  // Look the stack up: stack i followed by option c is stack i * n + 1 + c.
  function describe() {
    var keys = state.slots.filter(function (k) {
      return k !== "none";
    });
    var index = 0;
    var prefixes = [{ key: null, index: 0 }];
    keys.forEach(function (key) {
      index = index * nOptions + 1 + optionIndex(key);
      prefixes.push({ key: key, index: index });
    });
    var preset = null;
    data.presets.forEach(function (p) {
      if (p.index === index) {
        preset = p;
      }
    });
    return {
      keys: keys,
      index: index,
      prefixes: prefixes,
      out: table.out[index],
      rf: table.rf[index],
      jump: table.jump[index],
      start: table.start2[index] / 2,
      preset: preset,
    };
  }

  // The photo rows/cols a unit depends on: [first, last], clipped to the photo.
  function field(unit) {
    var half = (info.rf - 1) / 2;
    var top = Math.round(info.start + unit[0] * info.jump - half);
    var left = Math.round(info.start + unit[1] * info.jump - half);
    return {
      top: Math.max(top, 0),
      left: Math.max(left, 0),
      bottom: Math.min(top + info.rf - 1, N - 1),
      right: Math.min(left + info.rf - 1, N - 1),
    };
  }

  function centreUnit() {
    return [Math.floor(info.out / 2), Math.floor(info.out / 2)];
  }

  // ---------------------------------------------------------------- controls

  function buildControls() {
    var bar = el("div", { class: "cnnbook-controls" });
    var presets = data.presets.map(function (p, i) {
      return [String(i), p.name];
    });
    // shown while the menus below hold a stack that is no preset
    presets.push(["custom", "(your own stack)", true]);
    view.preset = labelledSelect(bar, "preset", "Preset", presets).select;
    view.preset.addEventListener("change", onPreset);

    view.erfBox = labelledCheckbox(bar, "show-erf", "Show effective RF (presets)", state.showErf,
      function () {
        state.showErf = view.erfBox.checked;
        renderUnit();
      });

    view.centre = el("button", { type: "button", "data-action": "centre" }, "Centre unit");
    view.centre.addEventListener("click", function () {
      if (info.out > 0) {
        state.unit = centreUnit();
        state.hover = null;
        renderUnit();
      }
    });
    bar.appendChild(view.centre);
    return bar;
  }

  function buildSlots() {
    var bar = el("div", {
      class: "cnnbook-controls cnnbook-rf-slots", role: "group", "aria-label": "Layer stack",
    });
    view.slots = [];
    for (var i = 0; i < data.max_layers; i += 1) {
      var box = el("label", { class: "cnnbook-rf-slot" });
      box.appendChild(el("span", { class: "cnnbook-rf-slotname" }, "Layer " + (i + 1)));
      var select = el("select", { "data-control": "layer-" + (i + 1) });
      select.appendChild(el("option", { value: "none" }, "none"));
      data.options.forEach(function (o) {
        select.appendChild(el("option", { value: o.key }, o.label));
      });
      select.addEventListener("change", onSlot);
      box.appendChild(select);
      bar.appendChild(box);
      view.slots.push(select);
    }
    return bar;
  }

  function setSlots(keys) {
    state.slots = view.slots.map(function (_, i) {
      return i < keys.length ? keys[i] : "none";
    });
    view.slots.forEach(function (select, i) {
      select.value = state.slots[i];
    });
  }

  function onPreset() {
    setSlots(data.presets[Number(view.preset.value)].keys);
    update();
  }

  function onSlot() {
    state.slots = view.slots.map(function (select) {
      return select.value;
    });
    update();
  }

  // ---------------------------------------------------------------- panels

  function buildPhotoPanel() {
    var box = el("div", { class: "cnnbook-panel" });
    box.appendChild(el("div", { class: "cnnbook-caption" }, "Photo (" + N + " " + TIMES + " " + N +
      " pixels)"));
    var stage = el("div", { class: "cnnbook-rf-stage", "data-role": "photo-stage" });
    stage.style.width = N * SCALE + "px";
    stage.style.height = N * SCALE + "px";
    var canvas = el("canvas", { width: String(N), height: String(N), "data-role": "photo",
      role: "img", "aria-label": "The input photo" });
    var ctx = canvas.getContext("2d");
    var image = ctx.createImageData(N, N);
    for (var p = 0; p < N * N; p += 1) {
      image.data[4 * p] = photo[3 * p];
      image.data[4 * p + 1] = photo[3 * p + 1];
      image.data[4 * p + 2] = photo[3 * p + 2];
      image.data[4 * p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    view.photoCanvas = canvas;
    view.erfCanvas = el("canvas", { width: String(N), height: String(N), "data-role": "erf-map",
      "aria-hidden": "true" });
    view.box = el("div", { class: "cnnbook-rf-box", "data-role": "rf-box", "aria-hidden": "true" });
    view.square = el("div", { class: "cnnbook-rf-erfsquare", "data-role": "erf-square",
      "aria-hidden": "true" });
    view.dot = el("div", { class: "cnnbook-rf-dot", "aria-hidden": "true" });
    [canvas, view.erfCanvas, view.box, view.square, view.dot].forEach(function (node) {
      stage.appendChild(node);
    });
    box.appendChild(stage);
    view.photoStage = stage;
    return box;
  }

  function buildOutputPanel() {
    var box = el("div", { class: "cnnbook-panel", "data-role": "output-panel" });
    view.outCaption = el("div", { class: "cnnbook-caption" });
    box.appendChild(view.outCaption);
    var canvas = el("canvas", {
      width: String(N * SCALE), height: String(N * SCALE), tabindex: "0",
      "data-role": "output-map", role: "application", "aria-roledescription": "output map",
    });
    canvas.style.width = N * SCALE + "px";
    canvas.style.height = N * SCALE + "px";
    canvas.addEventListener("mousemove", function (event) {
      var unit = unitAt(event);
      if (unit && (!state.hover || unit[0] !== state.hover[0] || unit[1] !== state.hover[1])) {
        state.hover = unit;
        renderUnit();
      }
    });
    canvas.addEventListener("mouseleave", function () {
      state.hover = null;
      renderUnit();
    });
    canvas.addEventListener("click", function (event) {
      var unit = unitAt(event);
      if (unit) {
        state.unit = unit;
        renderUnit();
      }
    });
    canvas.addEventListener("keydown", onKey);
    box.appendChild(canvas);
    box.appendChild(el("div", { class: "cnnbook-rf-hint" },
      "Hover or click a unit; arrow keys move the selection."));
    view.outCanvas = canvas;
    return box;
  }

  function unitAt(event) {
    if (info.out < 1) {
      return null;
    }
    var rect = view.outCanvas.getBoundingClientRect();
    var row = Math.floor(((event.clientY - rect.top) / rect.height) * info.out);
    var col = Math.floor(((event.clientX - rect.left) / rect.width) * info.out);
    if (row < 0 || col < 0 || row >= info.out || col >= info.out) {
      return null;
    }
    return [row, col];
  }

  function onKey(event) {
    var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (info.out < 1) {
      return;
    }
    if (event.key === "Home") {
      state.unit = centreUnit();
    } else if (moves[event.key]) {
      var m = moves[event.key];
      state.unit = [
        Math.min(Math.max(state.unit[0] + m[0], 0), info.out - 1),
        Math.min(Math.max(state.unit[1] + m[1], 0), info.out - 1),
      ];
    } else {
      return;
    }
    event.preventDefault();
    state.hover = null;
    renderUnit();
  }

  function buildInfoPanel() {
    var box = el("div", { class: "cnnbook-panel cnnbook-rf-info" });
    view.rfStats = el("p", { class: "cnnbook-rf-stats", "data-role": "rf-stats" });
    view.erfStats = el("p", { class: "cnnbook-rf-stats", "data-role": "erf-stats" });
    view.table = el("table", { class: "cnnbook-rf-table", "data-role": "layer-table" });
    box.appendChild(view.rfStats);
    box.appendChild(view.erfStats);
    box.appendChild(view.table);
    return box;
  }

  // ---------------------------------------------------------------- drawing

  function drawOutput(shown) {
    var canvas = view.outCanvas;
    var ctx = canvas.getContext("2d");
    var D = canvas.width;
    ctx.clearRect(0, 0, D, D);
    ctx.fillStyle = themeColour(root, "--cnnbook-bg", "#ffffff"); // the panel's own colour
    ctx.fillRect(0, 0, D, D);
    ctx.globalAlpha = 0.35; // the scene faintly behind the units, for orientation
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(view.photoCanvas, 0, 0, D, D);
    ctx.globalAlpha = 1;
    var cell = D / info.out;
    if (cell >= 5) {
      ctx.strokeStyle = themeColour(root, "--cnnbook-grid-line", "rgba(40, 40, 48, 0.45)");
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (var i = 0; i <= info.out; i += 1) {
        var at = Math.min(Math.round(i * cell) + 0.5, D - 0.5);
        ctx.moveTo(at, 0);
        ctx.lineTo(at, D);
        ctx.moveTo(0, at);
        ctx.lineTo(D, at);
      }
      ctx.stroke();
    }
    var sel = state.unit;
    ctx.fillStyle = cell > 24 ? "rgba(253, 231, 37, 0.45)" : "rgba(253, 231, 37, 0.9)";
    ctx.fillRect(sel[1] * cell, sel[0] * cell, cell, cell);
    ctx.lineWidth = Math.max(2, Math.min(3, cell / 3));
    ctx.strokeStyle = "#440154";
    ctx.strokeRect(sel[1] * cell, sel[0] * cell, cell, cell);
    if (shown !== sel) {
      ctx.setLineDash([3, 2]);
      ctx.strokeRect(shown[1] * cell, shown[0] * cell, cell, cell);
      ctx.setLineDash([]);
    }
  }

  // The measured field of the centre unit, drawn while that unit is the one shown.
  function drawErf(shown) {
    var ctx = view.erfCanvas.getContext("2d");
    ctx.clearRect(0, 0, N, N);
    var erf = info.preset && info.out > 0 ? info.preset.erf : null;
    var show = Boolean(erf) && state.showErf && Boolean(shown) &&
      shown[0] === erf.unit[0] && shown[1] === erf.unit[1];
    root.setAttribute("data-erf-shown", String(show));
    view.square.hidden = !show;
    if (!show) {
      return;
    }
    var values = unpack(erf.map);
    var image = ctx.createImageData(erf.width, erf.height);
    for (var p = 0; p < values.length; p += 1) {
      image.data[4 * p] = 0; // Okabe-Ito sky blue, opaque where the gradient is largest
      image.data[4 * p + 1] = 190;
      image.data[4 * p + 2] = 255;
      image.data[4 * p + 3] = Math.round(0.9 * values[p]);
    }
    ctx.putImageData(image, erf.left, erf.top);
    // the square holding the core fraction of the gradient, around the field's centre
    var side = erf.core_side;
    view.square.style.left = pct(erf.centre[1] + 0.5 - side / 2);
    view.square.style.top = pct(erf.centre[0] + 0.5 - side / 2);
    view.square.style.width = pct(side);
    view.square.style.height = pct(side);
    view.square.setAttribute("data-side", String(side));
  }

  function renderUnit() {
    if (info.out < 1) {
      return;
    }
    var shown = state.hover || state.unit;
    var f = field(shown);
    var height = f.bottom - f.top + 1;
    var width = f.right - f.left + 1;
    view.box.style.top = pct(f.top);
    view.box.style.left = pct(f.left);
    view.box.style.height = pct(height);
    view.box.style.width = pct(width);
    view.box.setAttribute("data-top", String(f.top));
    view.box.setAttribute("data-left", String(f.left));
    view.box.setAttribute("data-height", String(height));
    view.box.setAttribute("data-width", String(width));
    var cy = info.start + shown[0] * info.jump;
    var cx = info.start + shown[1] * info.jump;
    view.dot.style.top = pct(cy + 0.5);
    view.dot.style.left = pct(cx + 0.5);
    root.setAttribute("data-unit-row", String(shown[0]));
    root.setAttribute("data-unit-col", String(shown[1]));
    drawOutput(shown);
    drawErf(shown);
    var clipped = height !== info.rf || width !== info.rf;
    var text =
      "Unit (" + shown[0] + ", " + shown[1] + ") of the " + info.out + " " + TIMES + " " +
      info.out + " output map depends on photo rows " + f.top + NDASH + f.bottom +
      " and columns " + f.left + NDASH + f.right + ": ";
    text += clipped
      ? "its " + info.rf + " " + TIMES + " " + info.rf + " field, clipped by the photo's border to " +
        height + " " + TIMES + " " + width + " pixels."
      : info.rf + " " + TIMES + " " + info.rf + " pixels.";
    view.status.textContent = text;
    view.outCanvas.setAttribute(
      "aria-label",
      "Output map, " + info.out + " by " + info.out + " units; selected unit row " + state.unit[0] +
      ", column " + state.unit[1] + ". Arrow keys move the selection."
    );
  }

  function renderTable() {
    view.table.textContent = "";
    var head = el("tr");
    ["Layer", "Output", "Jump", "RF"].forEach(function (h) {
      head.appendChild(el("th", { scope: "col" }, h));
    });
    var thead = el("thead");
    thead.appendChild(head);
    view.table.appendChild(thead);
    var tbody = el("tbody");
    var broken = false;
    info.prefixes.forEach(function (p, i) {
      var row = el("tr");
      var out = table.out[p.index];
      var name = i === 0 ? "photo" : i + ". " + label(p.key);
      row.appendChild(el("th", { scope: "row" }, name));
      if (out > 0) {
        row.appendChild(el("td", null, out + " " + TIMES + " " + out));
        row.appendChild(el("td", null, String(table.jump[p.index])));
        row.appendChild(el("td", null, String(table.rf[p.index])));
      } else {
        var cell = el("td", { colspan: "3" }, broken ? "" : "does not fit");
        row.appendChild(cell);
        row.classList.add("cnnbook-rf-broken");
        broken = true;
      }
      tbody.appendChild(row);
    });
    view.table.appendChild(tbody);
  }

  function explainInvalid() {
    for (var i = 1; i < info.prefixes.length; i += 1) {
      if (table.out[info.prefixes[i].index] === 0) {
        var before = table.out[info.prefixes[i - 1].index];
        return (
          "Layer " + i + " (" + label(info.prefixes[i].key) + ") receives a " + before + " " +
          TIMES + " " + before + " map, too small for its window: this stack has no output. " +
          "Remove a downsampling layer."
        );
      }
    }
    return "This stack has no output.";
  }

  function update() {
    info = describe();
    var valid = info.out > 0;
    view.preset.value = info.preset ? String(data.presets.indexOf(info.preset)) : "custom";
    root.setAttribute("data-stack", info.keys.join(","));
    root.setAttribute("data-valid", String(valid));
    root.setAttribute("data-out-size", valid ? String(info.out) : "");
    root.setAttribute("data-rf", String(info.rf));
    root.setAttribute("data-jump", String(info.jump));
    root.setAttribute("data-start", fmt(info.start));
    renderTable();
    view.outputPanel.hidden = !valid;
    view.box.hidden = !valid;
    view.dot.hidden = !valid;
    view.error.hidden = valid;
    view.error.textContent = valid ? "" : explainInvalid();
    view.rfStats.textContent = "";
    if (!valid) {
      view.erfStats.textContent = "";
      view.status.textContent = "No output map to pick a unit from.";
      drawErf(null);
      return;
    }
    view.outCaption.textContent =
      "Output map (" + info.out + " " + TIMES + " " + info.out + " units)";
    view.rfStats.appendChild(document.createTextNode("Theoretical receptive field: "));
    view.rfStats.appendChild(
      el("strong", { class: "cnnbook-highlight" }, info.rf + " " + TIMES + " " + info.rf + " px")
    );
    view.rfStats.appendChild(document.createTextNode(
      "; neighbouring units are " + info.jump + " px apart (jump); unit (0, 0) is centred on " +
      "pixel " + fmt(info.start) + "."
    ));
    var erf = info.preset ? info.preset.erf : null;
    if (erf) {
      view.erfStats.textContent =
        "Effective receptive field of the centre unit (" + erf.unit[0] + ", " + erf.unit[1] +
        "), in blue: " + Math.round(100 * data.erf.core_mass) + "% of the gradient lies in " +
        "the central " + erf.core_side + " " + TIMES + " " + erf.core_side + " px square " +
        "(dashed; shown while the centre unit is selected), " +
        Math.round(100 * data.erf.mass) + "% in the central " + erf.side + " " +
        TIMES + " " + erf.side + "; the theoretical field is " + info.rf + " " + TIMES + " " + info.rf +
        " px. Gradient magnitude of the unit with respect to the photo for random weights " +
        "(each conv " + data.erf.channels + " channels + ReLU), mean over " + data.erf.seeds +
        " seeds.";
    } else {
      view.erfStats.textContent =
        "The effective receptive field is measured for the presets only; pick one in the " +
        "Preset menu to see it. The theoretical field above is exact for every stack.";
    }
    state.unit = centreUnit();
    state.hover = null;
    renderUnit();
  }

  // ---------------------------------------------------------------- mount

  var body = widgetBody(root, data.title);
  body.appendChild(buildControls());
  body.appendChild(buildSlots());
  var panels = el("div", { class: "cnnbook-panels" });
  panels.appendChild(buildPhotoPanel());
  view.outputPanel = buildOutputPanel();
  panels.appendChild(view.outputPanel);
  panels.appendChild(buildInfoPanel());
  body.appendChild(panels);
  view.error = errorLine();
  body.appendChild(view.error);
  view.status = statusLine();
  body.appendChild(view.status);
  root.appendChild(body);

  setSlots(data.layers);
  update();
  onThemeChange(root, renderUnit); // the output map's canvas takes the panel's colours
}
