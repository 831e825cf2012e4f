// Helpers every kernel-free widget shares. _html.render_widget places this file inside
// each figure's function wrapper, just before the widget's own script, so the widget's
// mount function sees these names but the page never does (no globals), and every
// figure stays one self-contained string. Class names here are styled by base.css.

var TIMES = "\u00D7";
var MINUS = "\u2212";
var STEP_BUTTONS = [
  ["back", "\u25C0", "Back"],
  ["step", "\u25B6", "Step"],
  ["play", "\u25B6\u25B6", "Play"],
  ["reset", "\u21BA", "Reset"],
];

// A new element: el("span", { class: "x" }, "text"); attrs and text may be left out.
function el(tag, attrs, text) {
  var node = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
  }
  if (text !== undefined && text !== null) {
    node.textContent = text;
  }
  return node;
}

// The figure's body, holding its title. The script runs, so the "needs JavaScript" note
// goes. The caller appends the body to root once it has filled it.
function widgetBody(root, title) {
  var noJs = root.querySelector('[data-role="no-js"]');
  if (noJs) {
    noJs.parentNode.removeChild(noJs);
  }
  var body = el("div", { class: "cnnbook-body" });
  body.appendChild(el("div", { class: "cnnbook-title" }, title));
  return body;
}

// A labelled menu <select data-control=name> appended to bar. options: [value, text]
// or [value, text, true] for an option shown but not selectable. Returns {label, select}.
function labelledSelect(bar, name, text, options) {
  var label = el("label", { class: "cnnbook-select" });
  label.appendChild(el("span", null, text));
  var select = el("select", { "data-control": name });
  options.forEach(function (o) {
    var option = el("option", { value: o[0] }, o[1]);
    option.disabled = Boolean(o[2]);
    select.appendChild(option);
  });
  label.appendChild(select);
  bar.appendChild(label);
  return { label: label, select: select };
}

// A labelled checkbox <input data-control=name> appended to bar; onChange runs on change.
function labelledCheckbox(bar, name, text, checked, onChange) {
  var label = el("label", { class: "cnnbook-select" });
  var box = el("input", { type: "checkbox", "data-control": name });
  box.checked = checked;
  box.addEventListener("change", onChange);
  label.appendChild(box);
  label.appendChild(el("span", null, text));
  bar.appendChild(label);
  return box;
}

// A captioned grid: {box, caption, grid}; the grid's data-role names it for the tests.
function gridPanel(role) {
  var box = el("div", { class: "cnnbook-panel" });
  var caption = el("div", { class: "cnnbook-caption" });
  var grid = el("div", { class: "cnnbook-grid", "data-role": role, role: "img" });
  box.appendChild(caption);
  box.appendChild(grid);
  return { box: box, caption: caption, grid: grid };
}

// The sentence under a figure that says what it shows; screen readers announce changes.
function statusLine() {
  return el("p", { class: "cnnbook-status", "aria-live": "polite" });
}

// Why a configuration has no output; the widget hides it while there is output.
function errorLine() {
  return el("p", { class: "cnnbook-error", "data-role": "error", role: "alert" });
}

// Back / Step / Play / Reset buttons, appended to bar, for a figure that steps through
// positions 0 .. lastIndex(). state.index is the current position and state.timer the
// Play interval (null while paused); render() redraws after every move. Play at the last
// position starts over; the timer stops at the end or once the figure leaves the page.
// Returns {buttons, stop}: call stop() before the figure changes under the player.
function stepper(root, bar, state, lastIndex, render, intervalMs) {
  var buttons = {};

  function showPlaying(playing) {
    buttons.play.querySelector(".cnnbook-label").textContent = playing ? "Pause" : "Play";
    buttons.play.querySelector(".cnnbook-icon").textContent = playing
      ? "\u275A\u275A"
      : "\u25B6\u25B6";
    buttons.play.setAttribute("aria-pressed", String(playing));
  }

  function stop() {
    if (state.timer !== null) {
      clearInterval(state.timer);
      state.timer = null;
    }
    showPlaying(false);
  }

  function tick() {
    if (!root.isConnected) {
      stop(); // the output was cleared: do not keep a timer alive for nothing
      return;
    }
    if (state.index < lastIndex()) {
      state.index += 1;
      render();
    }
    if (state.index >= lastIndex()) {
      stop();
    }
  }

  function onAction(action) {
    if (action === "play") {
      if (state.timer !== null) {
        stop();
        return;
      }
      if (state.index >= lastIndex()) {
        state.index = 0;
        render();
      }
      state.timer = setInterval(tick, intervalMs);
      showPlaying(true);
      return;
    }
    stop();
    if (action === "step" && state.index < lastIndex()) {
      state.index += 1;
    } else if (action === "back" && state.index > 0) {
      state.index -= 1;
    } else if (action === "reset") {
      state.index = 0;
    }
    render();
  }

  STEP_BUTTONS.forEach(function (b) {
    var button = el("button", { type: "button", "data-action": b[0] });
    button.appendChild(el("span", { "aria-hidden": "true", class: "cnnbook-icon" }, b[1]));
    button.appendChild(el("span", { class: "cnnbook-label" }, b[2]));
    button.addEventListener("click", function () {
      onAction(b[0]);
    });
    bar.appendChild(button);
    buttons[b[0]] = button;
  });
  buttons.play.setAttribute("aria-pressed", "false");
  return { buttons: buttons, stop: stop };
}

// {dtype, b64} from _html.pack_uint -> Uint8Array or Uint16Array (little-endian).
function unpack(packed) {
  var bin = atob(packed.b64);
  var bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i += 1) {
    bytes[i] = bin.charCodeAt(i);
  }
  if (packed.dtype === "uint8") {
    return bytes;
  }
  var out = new Uint16Array(bytes.length / 2);
  for (var j = 0; j < out.length; j += 1) {
    out[j] = bytes[2 * j] | (bytes[2 * j + 1] << 8);
  }
  return out;
}

// x rounded to `decimals` digits, trailing zeros dropped, "-0" as "0", typographic minus:
// the short form grid cells show.
function shortNumber(x, decimals) {
  var s = Number(x).toFixed(decimals);
  if (s.indexOf(".") >= 0) {
    s = s.replace(/0+$/, "").replace(/\.$/, "");
  }
  if (s === "-0") {
    s = "0";
  }
  return s.replace("-", MINUS);
}

// The value of a colour property of base.css (say "--cnnbook-text") as it applies to
// `root` now, for canvas drawings of chrome; `fallback` where the property is unset.
// Read at draw time, so a redraw after a theme switch follows the theme.
function themeColour(root, name, fallback) {
  var value = window.getComputedStyle(root).getPropertyValue(name).trim();
  return value || fallback;
}

// Call `redraw` whenever the page switches between light and dark: the book's theme sets
// data-theme on <html>, JupyterLab data-jp-theme-light on <body> (see base.css). Stops
// watching once `root` has left the page.
function onThemeChange(root, redraw) {
  if (typeof MutationObserver !== "function") {
    return;
  }
  var observer = new MutationObserver(function () {
    if (!root.isConnected) {
      observer.disconnect();
      return;
    }
    redraw();
  });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  if (document.body) {
    observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  }
}
