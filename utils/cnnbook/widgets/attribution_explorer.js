// Attribution explorer: draws what attribution_explorer.py computed. For each photo,
// layer and top class Python stored the Grad-CAM map (uint8, the map times 255) and, for
// each photo and layer, a few channels' activations (uint8 between their own minimum and
// maximum). This script only looks them up and colours them with the colormap table
// Python sent (inferno); every number it shows is a string or value from the data.
// Wrapped by _html.py in a function, after base.js (el and the other shared helpers), so
// nothing here is global. Called as mountAttributionExplorer(root, data).

function mountAttributionExplorer(root, data) {
  "use strict";
  var M = data.map_size; // side of a stored Grad-CAM map
  var lut = unpack(data.cmap.rgb); // (256, 3) RGB
  var state = { photo: 0, layer: 0, rank: 0, mode: "cam" };
  var view = {};
  var decoded = {}; // packed base64 string -> its Uint8Array, decoded once

  function codes(packed) {
    if (!decoded[packed.b64]) {
      decoded[packed.b64] = unpack(packed);
    }
    return decoded[packed.b64];
  }

  // Paint uint8 codes (height x width, row-major) on a canvas of that size via the table.
  function paint(canvas, values, height, width) {
    canvas.width = width;
    canvas.height = height;
    var ctx = canvas.getContext("2d");
    var image = ctx.createImageData(width, height);
    for (var i = 0; i < height * width; i += 1) {
      var v = values[i];
      image.data[4 * i] = lut[3 * v];
      image.data[4 * i + 1] = lut[3 * v + 1];
      image.data[4 * i + 2] = lut[3 * v + 2];
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function photo() {
    return data.photos[state.photo];
  }

  function layerLabel(layer) {
    var s = layer.shape; // [K, h, w]
    return layer.name + " (" + s[1] + TIMES + s[2] + ", " + s[0] + " channels)";
  }

  // ---------------------------------------------------------------- controls

  function classOptions() {
    return photo().classes.map(function (c, r) {
      return [String(r), r + 1 + ". " + c.name + " (" + c.text + ")"];
    });
  }

  function fillClassSelect() {
    var select = view.classSelect;
    while (select.firstChild) {
      select.removeChild(select.firstChild);
    }
    classOptions().forEach(function (o) {
      select.appendChild(el("option", { value: o[0] }, o[1]));
    });
    select.value = String(state.rank);
  }

  function buildControls() {
    var bar = el("div", { class: "cnnbook-controls" });
    var photos = data.photos.map(function (p, i) {
      return [String(i), p.name];
    });
    view.photoSelect = labelledSelect(bar, "photo", "Photo", photos).select;
    view.photoSelect.addEventListener("change", function () {
      state.photo = Number(view.photoSelect.value);
      state.rank = Math.min(state.rank, photo().classes.length - 1);
      fillClassSelect();
      render();
    });
    var layers = data.layers.map(function (layer, i) {
      return [String(i), layerLabel(layer)];
    });
    view.layerSelect = labelledSelect(bar, "layer", "Layer", layers).select;
    view.layerSelect.addEventListener("change", function () {
      state.layer = Number(view.layerSelect.value);
      render();
    });
    view.classSelect = labelledSelect(bar, "class", "Class", classOptions()).select;
    view.classSelect.addEventListener("change", function () {
      state.rank = Number(view.classSelect.value);
      render();
    });
    var modes = el("div", { class: "cnnbook-ae-modes", role: "group", "aria-label": "Show" });
    view.modeButtons = {};
    [
      ["cam", "Grad-CAM over the photo"],
      ["features", "Feature maps"],
    ].forEach(function (m) {
      var button = el("button", { type: "button", "data-action": "mode-" + m[0] }, m[1]);
      button.addEventListener("click", function () {
        state.mode = m[0];
        render();
      });
      modes.appendChild(button);
      view.modeButtons[m[0]] = button;
    });
    bar.appendChild(modes);
    return bar;
  }

  // ---------------------------------------------------------------- picture

  function buildPicture() {
    var panels = el("div", { class: "cnnbook-panels cnnbook-ae-panels" });
    var stage = el("div", { class: "cnnbook-ae-stage", "data-role": "stage" });
    stage.style.width = data.display + "px";
    stage.style.height = data.display + "px";
    view.photo = el("img", { "data-role": "photo", alt: "" });
    view.heat = el("canvas", { "data-role": "heat", role: "img" });
    stage.appendChild(view.photo);
    stage.appendChild(view.heat);
    view.stage = stage;
    panels.appendChild(stage);

    view.features = el("div", { class: "cnnbook-ae-features", "data-role": "features" });
    panels.appendChild(view.features);

    var legend = el("div", { class: "cnnbook-ae-legend" });
    view.legendLow = el("span", { "data-role": "legend-low" });
    var bar = el("canvas", { "data-role": "colorbar", "aria-hidden": "true" });
    var ramp = new Uint8Array(256);
    for (var i = 0; i < 256; i += 1) {
      ramp[i] = i;
    }
    paint(bar, ramp, 1, 256);
    view.legendHigh = el("span", { "data-role": "legend-high" });
    legend.appendChild(view.legendLow);
    legend.appendChild(bar);
    legend.appendChild(view.legendHigh);
    return { panels: panels, legend: legend };
  }

  function renderCam(p, layer) {
    var packed = p.cams[state.layer][state.rank];
    paint(view.heat, codes(packed), M, M);
    var c = p.classes[state.rank];
    view.heat.setAttribute(
      "aria-label",
      "Grad-CAM map of class " + c.name + " at " + layer.name + " over the photo " + p.name
    );
    view.legendLow.textContent = "0";
    view.legendHigh.textContent = "the map's maximum";
    view.status.textContent =
      "Grad-CAM of \u201c" + c.name + "\u201d at " + layer.name + ": its " +
      layer.shape[1] + TIMES + layer.shape[2] + " map, upsampled to the " +
      data.input_size + TIMES + data.input_size + " input and divided by its maximum " +
      "(shown at " + M + TIMES + M + "). Bright: where the evidence for this class is.";
  }

  function renderFeatures(p, layer) {
    var f = p.features[state.layer];
    while (view.features.firstChild) {
      view.features.removeChild(view.features.firstChild);
    }
    f.channels.forEach(function (ch) {
      var box = el("figure", { class: "cnnbook-ae-channel", "data-channel": String(ch.index) });
      var canvas = el("canvas", { "data-role": "channel", role: "img" });
      canvas.setAttribute("aria-label", "activation of channel " + ch.index + " of " + layer.name);
      paint(canvas, codes(ch.map), f.height, f.width);
      box.appendChild(canvas);
      var caption = el("figcaption", null, "channel " + ch.index);
      caption.appendChild(el("br"));
      caption.appendChild(el("span", { "data-role": "range" }, ch.text));
      box.appendChild(caption);
      view.features.appendChild(box);
    });
    view.legendLow.textContent = "channel's minimum";
    view.legendHigh.textContent = "maximum";
    view.status.textContent =
      "The " + f.channels.length + " most active of the " + layer.shape[0] +
      " channels of " + layer.name + " on this photo (largest mean activation), " +
      f.height + TIMES + f.width + " each, every one coloured from its own minimum to its " +
      "maximum (the numbers under it). They do not depend on the class.";
  }

  function render() {
    var p = photo();
    var layer = data.layers[state.layer];
    var c = p.classes[state.rank];
    view.photoSelect.value = String(state.photo);
    view.layerSelect.value = String(state.layer);
    view.classSelect.value = String(state.rank);
    if (view.photo.getAttribute("data-name") !== p.name) {
      view.photo.setAttribute("data-name", p.name);
      view.photo.setAttribute("alt", "the photo " + p.name + " as the model sees it");
      view.photo.src = p.uri;
    }
    var cam = state.mode === "cam";
    view.modeButtons.cam.setAttribute("aria-pressed", String(cam));
    view.modeButtons.features.setAttribute("aria-pressed", String(!cam));
    view.heat.hidden = !cam;
    view.stage.classList.toggle("cnnbook-ae-gray", cam);
    view.features.hidden = cam;
    view.className.textContent = c.name;
    view.classIndex.textContent = String(c.index);
    view.probability.textContent = c.text;
    root.setAttribute("data-photo", p.name);
    root.setAttribute("data-layer", layer.name);
    root.setAttribute("data-class", String(c.index));
    root.setAttribute("data-rank", String(state.rank));
    root.setAttribute("data-mode", state.mode);
    if (cam) {
      renderCam(p, layer);
    } else {
      renderFeatures(p, layer);
    }
  }

  // ---------------------------------------------------------------- mount

  var body = widgetBody(root, data.title);
  body.appendChild(buildControls());
  var info = el("p", { class: "cnnbook-ae-class", "data-role": "class-info" });
  info.appendChild(document.createTextNode("Class "));
  view.className = el("strong", { "data-role": "class-name" });
  info.appendChild(view.className);
  info.appendChild(document.createTextNode(" (index "));
  view.classIndex = el("span", { "data-role": "class-index" });
  info.appendChild(view.classIndex);
  info.appendChild(document.createTextNode("), predicted probability "));
  view.probability = el("strong", { "data-role": "probability" });
  info.appendChild(view.probability);
  body.appendChild(info);
  var picture = buildPicture();
  body.appendChild(picture.panels);
  body.appendChild(picture.legend);
  view.status = statusLine();
  body.appendChild(view.status);
  root.appendChild(body);
  render();
}
