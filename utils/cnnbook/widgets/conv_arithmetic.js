// Convolution-arithmetic figure: looks output sizes up in tables Python computed (see
// conv_arithmetic.py), draws the grids and steps the kernel through its positions. The
// only arithmetic here is drawing geometry (where a tap lands, how many cells a grid
// has); whether there is an output, and how big it is, always comes from `data.sizes`.
// Wrapped by _html.py in a function, after base.js (el, stepper and the other shared
// helpers), so nothing here is global.
// Called as mountConvArithmetic(root, data) with root the figure's <div>.

function mountConvArithmetic(root, data) {
  "use strict";
  var PLAY_INTERVAL_MS = 600;
  var GRID_PX = 264; // a grid's side aims at this many pixels
  var CONTROLS = [
    ["input", "Input W"],
    ["kernel", "Kernel k"],
    ["stride", "Stride s"],
    ["padding", "Padding p"],
    ["dilation", "Dilation d"],
  ];
  var state = { index: 0, timer: null };
  Object.keys(data.initial).forEach(function (name) {
    state[name] = data.initial[name];
  });
  var view = {};
  var geo = null; // geometry of the current configuration, see layout()
  var player = null; // the Back / Step / Play / Reset buttons, see stepper() in base.js

  // ---------------------------------------------------------------- helpers

  function range(n) {
    var out = [];
    for (var i = 0; i < n; i += 1) {
      out.push(i);
    }
    return out;
  }

  function mode() {
    return state.transposed ? "transposed" : "conv";
  }

  // Output size or reason code of the current configuration, looked up, never computed.
  function lookup() {
    var index = 0;
    data.order[mode()].forEach(function (name) {
      var r = data.ranges[name];
      index = index * (r[1] - r[0] + 1) + (state[name] - r[0]);
    });
    var code = data.sizes[mode()].charCodeAt(index) - data.code_offset;
    return code >= 1 ? { size: code, reason: null } : { size: null, reason: -code };
  }

  // Rows (or columns) reached by taps start + a*d, a < k, for every start in `starts`.
  function reached(count, starts, k, d) {
    var hit = range(count).map(function () {
      return false;
    });
    starts.forEach(function (start) {
      for (var a = 0; a < k; a += 1) {
        if (start + a * d < count) {
          hit[start + a * d] = true;
        }
      }
    });
    return hit;
  }

  function taps(start, k, d) {
    return range(k).map(function (a) {
      return start + a * d;
    });
  }

  // ---------------------------------------------------------------- controls

  // A menu of every value data.ranges allows for `name`; returns its label.
  function buildSelect(bar, name, text) {
    var options = [];
    var r = data.ranges[name];
    for (var v = r[0]; v <= r[1]; v += 1) {
      options.push([String(v), String(v)]);
    }
    var made = labelledSelect(bar, name, text, options);
    made.select.value = String(state[name]);
    made.select.addEventListener("change", onControl);
    view.controls[name] = made.select;
    return made.label;
  }

  function buildControls() {
    var bar = el("div", { class: "cnnbook-controls" });
    view.controls = {};
    CONTROLS.forEach(function (c) {
      buildSelect(bar, c[0], c[1]);
    });
    view.controls.transposed = labelledCheckbox(
      bar, "transposed", "Transposed", state.transposed, onControl
    );
    view.opLabel = buildSelect(bar, "output_padding", "output_padding");
    return bar;
  }

  function buildStepper() {
    var bar = el("div", { class: "cnnbook-controls" });
    player = stepper(root, bar, state, lastIndex, render, PLAY_INTERVAL_MS);
    view.buttons = player.buttons;
    view.progress = el("span", { class: "cnnbook-progress" });
    bar.appendChild(view.progress);
    return bar;
  }

  function onControl() {
    player.stop();
    CONTROLS.concat([["output_padding"]]).forEach(function (c) {
      state[c[0]] = Number(view.controls[c[0]].value);
    });
    state.transposed = view.controls.transposed.checked;
    state.index = 0;
    rebuild();
    render();
  }

  // ---------------------------------------------------------------- grids

  // An empty rows x cols grid of cells; returns the cells as a matrix.
  function fillGrid(grid, rows, cols) {
    var px = Math.max(6, Math.min(26, Math.floor(GRID_PX / Math.max(rows, cols))));
    grid.textContent = "";
    grid.style.gridTemplateColumns = "repeat(" + cols + ", " + px + "px)";
    grid.style.gridTemplateRows = "repeat(" + rows + ", " + px + "px)";
    grid.setAttribute("data-rows", String(rows));
    grid.setAttribute("data-cols", String(cols));
    grid.classList.toggle("cnnbook-ca-fine", px < 10);
    return range(rows).map(function (r) {
      return range(cols).map(function (c) {
        var cell = el("div", { class: "cnnbook-ca-cell" });
        cell.style.gridRow = String(r + 1);
        cell.style.gridColumn = String(c + 1);
        grid.appendChild(cell);
        return cell;
      });
    });
  }

  // A frame drawn over rows/cols [top, top + size) (explicit placement lets it overlap).
  function frame(grid, cls, top, left, size) {
    var box = el("div", { class: "cnnbook-ca-frame " + cls, "aria-hidden": "true" });
    box.style.gridRow = top + 1 + " / span " + size;
    box.style.gridColumn = left + 1 + " / span " + size;
    grid.appendChild(box);
    return box;
  }

  function mark(cells, rowsWhere, colsWhere, cls) {
    cells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        cell.classList.toggle(cls, rowsWhere(r) && colsWhere(c));
      });
    });
  }

  // ---------------------------------------------------------------- layout per configuration

  function layout() {
    var W = state.input;
    var k = state.kernel;
    var s = state.stride;
    var p = state.padding;
    var d = state.dilation;
    var found = lookup();
    var g = {
      W: W, k: k, s: s, p: p, d: d, op: state.output_padding,
      eff: d * (k - 1) + 1,
      size: found.size,
      reason: found.reason,
      valid: found.size !== null,
    };
    if (!state.transposed) {
      g.padded = W + 2 * p;
      g.positions = g.valid ? g.size * g.size : 0;
    } else {
      g.extent = (W - 1) * s + g.eff; // rows the scattered kernels cover, before cropping
      g.positions = g.valid ? W * W : 0;
      if (g.valid) {
        g.canvas = Math.max(g.extent, p + g.size);
      }
    }
    return g;
  }

  function buildConvInput() {
    var n = Math.max(geo.padded, geo.eff); // room for a kernel that sticks out
    var cells = fillGrid(view.input.grid, n, n);
    var usedRows = geo.valid ? reached(n, taps(0, geo.size, geo.s), geo.k, geo.d) : null;
    cells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        if (r >= geo.padded || c >= geo.padded) {
          cell.classList.add("cnnbook-ca-outside");
        } else if (r < geo.p || c < geo.p || r >= geo.padded - geo.p || c >= geo.padded - geo.p) {
          cell.classList.add("cnnbook-ca-pad");
        }
        if (usedRows && r < geo.padded && c < geo.padded && !(usedRows[r] && usedRows[c])) {
          cell.classList.add("cnnbook-ca-unused");
        }
      });
    });
    if (geo.p > 0) {
      frame(view.input.grid, "cnnbook-ca-imageframe", geo.p, geo.p, geo.W);
    }
    view.footprint = frame(view.input.grid, "cnnbook-ca-footprint", 0, 0, geo.eff);
    view.footprint.classList.toggle("cnnbook-ca-toobig", !geo.valid);
    view.inputCells = cells;
    view.input.caption.textContent =
      geo.p > 0
        ? "Input " + geo.W + " " + TIMES + " " + geo.W + ", padded to " + geo.padded + " " +
          TIMES + " " + geo.padded + " (p = " + geo.p + ", hatched)"
        : "Input " + geo.W + " " + TIMES + " " + geo.W + " (no padding)";
  }

  function buildConvOutput() {
    view.outputCells = fillGrid(view.output.grid, geo.size, geo.size);
    view.output.caption.textContent = "Output " + geo.size + " " + TIMES + " " + geo.size;
  }

  function buildTransposedInput() {
    view.inputCells = fillGrid(view.input.grid, geo.W, geo.W);
    view.input.caption.textContent = "Input " + geo.W + " " + TIMES + " " + geo.W;
  }

  function buildTransposedOutput() {
    var n = geo.canvas;
    var cells = fillGrid(view.output.grid, n, n);
    var hit = reached(n, taps(0, geo.W, geo.s), geo.k, geo.d);
    var keep = function (r) {
      return r >= geo.p && r < geo.p + geo.size;
    };
    cells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        if (!keep(r) || !keep(c)) {
          cell.classList.add("cnnbook-ca-cropped");
        } else if (r >= geo.extent - geo.p || c >= geo.extent - geo.p) {
          // kept only thanks to output_padding (past the result: zeros)
          cell.classList.add("cnnbook-ca-oppad");
        } else if (!hit[r] || !hit[c]) {
          cell.classList.add("cnnbook-ca-unused");
        }
      });
    });
    frame(view.output.grid, "cnnbook-ca-keptframe", geo.p, geo.p, geo.size);
    view.footprint = frame(view.output.grid, "cnnbook-ca-footprint", 0, 0, geo.eff);
    view.outputCells = cells;
    view.output.grid.setAttribute("data-kept", String(geo.size));
    var cropped = geo.canvas !== geo.size;
    view.output.caption.textContent = cropped
      ? "Result " + geo.canvas + " " + TIMES + " " + geo.canvas + "; output = framed " +
        geo.size + " " + TIMES + " " + geo.size
      : "Output " + geo.size + " " + TIMES + " " + geo.size;
  }

  function fillTemplate(text) {
    var values = {
      eff: geo.eff, padded: geo.padded, extent: geo.extent, padding: geo.p,
      stride: geo.s, dilation: geo.d, output_padding: geo.op,
    };
    return text.replace(/\{(\w+)\}/g, function (all, name) {
      return name in values ? String(values[name]) : all;
    });
  }

  function buildFormula() {
    var g = geo;
    var line1;
    var line2;
    if (!state.transposed) {
      line1 =
        "<var>W</var><sub>out</sub> = \u230A(<var>W</var> " + MINUS + " <var>d</var>(<var>k</var> " +
        MINUS + " 1) " + MINUS + " 1 + 2<var>p</var>) / <var>s</var>\u230B + 1";
      line2 =
        "= \u230A(" + g.W + " " + MINUS + " " + g.d + "\u00B7(" + g.k + " " + MINUS + " 1) " +
        MINUS + " 1 + 2\u00B7" + g.p + ") / " + g.s + "\u230B + 1";
    } else {
      line1 =
        "<var>W</var><sub>out</sub> = (<var>W</var> " + MINUS + " 1)<var>s</var> " + MINUS +
        " 2<var>p</var> + <var>d</var>(<var>k</var> " + MINUS +
        " 1) + <var>output_padding</var> + 1";
      line2 =
        "= (" + g.W + " " + MINUS + " 1)\u00B7" + g.s + " " + MINUS + " 2\u00B7" + g.p + " + " +
        g.d + "\u00B7(" + g.k + " " + MINUS + " 1) + " + g.op + " + 1";
    }
    line2 += g.valid ? " = <strong>" + g.size + "</strong>" : ": <strong>no output</strong>";
    view.formula.innerHTML = "<div>" + line1 + "</div><div>" + line2 + "</div>";
  }

  function buildLegend() {
    var items = state.transposed
      ? [
          ["cnnbook-ca-tap", "where the current input value lands (kernel taps)"],
          ["cnnbook-ca-written", "already written"],
          ["cnnbook-ca-unused", "no input reaches it (zero)"],
          ["cnnbook-ca-cropped", "cropped by padding"],
          ["cnnbook-ca-oppad", "added by output_padding"],
        ]
      : [
          ["cnnbook-ca-tap", "kernel taps (gaps: dilation)"],
          ["cnnbook-ca-pad", "zero padding"],
          ["cnnbook-ca-unused", "never read by any position"],
          ["cnnbook-ca-done", "outputs computed"],
        ];
    view.legend.textContent = "";
    items.forEach(function (item) {
      var entry = el("span", { class: "cnnbook-ca-key" });
      entry.appendChild(el("span", { class: "cnnbook-ca-swatch " + item[0], "aria-hidden": "true" }));
      entry.appendChild(el("span", null, item[1]));
      view.legend.appendChild(entry);
    });
  }

  function rebuild() {
    geo = layout();
    view.opLabel.hidden = !state.transposed;
    if (state.transposed) {
      buildTransposedInput();
    } else {
      buildConvInput();
    }
    view.output.box.hidden = !geo.valid;
    if (geo.valid) {
      if (state.transposed) {
        buildTransposedOutput();
      } else {
        buildConvOutput();
      }
    } else {
      view.output.grid.textContent = "";
      view.outputCells = [];
    }
    buildFormula();
    buildLegend();
    var sizeText = geo.valid ? geo.size + " " + TIMES + " " + geo.size : "none";
    view.size.textContent = sizeText;
    view.error.hidden = geo.valid;
    view.error.textContent = geo.valid ? "" : fillTemplate(data.reasons[geo.reason]);
    root.setAttribute("data-mode", mode());
    root.setAttribute("data-valid", String(geo.valid));
    root.setAttribute("data-output-size", geo.valid ? String(geo.size) : "");
    root.setAttribute("data-reason", geo.valid ? "" : String(geo.reason));
    Object.keys(view.controls).forEach(function (name) {
      var control = view.controls[name];
      if (control.type === "checkbox") {
        control.checked = state.transposed;
      } else {
        control.value = String(state[name]);
      }
    });
  }

  // ---------------------------------------------------------------- per-position update

  function list(values) {
    return values.join(", ");
  }

  function renderConv() {
    var i = Math.floor(state.index / geo.size);
    var j = state.index % geo.size;
    var rows = taps(i * geo.s, geo.k, geo.d);
    var cols = taps(j * geo.s, geo.k, geo.d);
    var inRows = function (r) {
      return rows.indexOf(r) >= 0;
    };
    var inCols = function (c) {
      return cols.indexOf(c) >= 0;
    };
    mark(view.inputCells, inRows, inCols, "cnnbook-ca-tap");
    view.footprint.style.gridRow = i * geo.s + 1 + " / span " + geo.eff;
    view.footprint.style.gridColumn = j * geo.s + 1 + " / span " + geo.eff;
    view.outputCells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        var k = r * geo.size + c;
        cell.classList.toggle("cnnbook-ca-done", k < state.index);
        cell.classList.toggle("cnnbook-ca-current", k === state.index);
      });
    });
    root.setAttribute("data-out-row", String(i));
    root.setAttribute("data-out-col", String(j));
    view.status.textContent =
      "Output (" + i + ", " + j + "): kernel taps at rows " + list(rows) + " and columns " +
      list(cols) + " of the " + (geo.p > 0 ? "padded " : "") + "input.";
    view.input.grid.setAttribute(
      "aria-label",
      "Input grid " + geo.padded + " by " + geo.padded + " including padding " + geo.p +
      "; kernel taps at rows " + list(rows) + ", columns " + list(cols)
    );
    view.output.grid.setAttribute(
      "aria-label",
      "Output grid " + geo.size + " by " + geo.size + "; current cell row " + i + ", column " + j
    );
  }

  // Which result cells the inputs before the current one have written to.
  function writtenSoFar() {
    var written = view.outputCells.map(function (row) {
      return row.map(function () {
        return false;
      });
    });
    for (var q = 0; q < state.index; q += 1) {
      var qr = taps(Math.floor(q / geo.W) * geo.s, geo.k, geo.d);
      var qc = taps((q % geo.W) * geo.s, geo.k, geo.d);
      qr.forEach(function (r) {
        qc.forEach(function (c) {
          written[r][c] = true;
        });
      });
    }
    return written;
  }

  function renderTransposed() {
    var i = Math.floor(state.index / geo.W);
    var j = state.index % geo.W;
    view.inputCells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        cell.classList.toggle("cnnbook-ca-done", r * geo.W + c < state.index);
        cell.classList.toggle("cnnbook-ca-current", r === i && c === j);
      });
    });
    var rows = taps(i * geo.s, geo.k, geo.d);
    var cols = taps(j * geo.s, geo.k, geo.d);
    var written = writtenSoFar();
    view.outputCells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        cell.classList.toggle("cnnbook-ca-written", written[r][c]);
      });
    });
    mark(view.outputCells, function (r) {
      return rows.indexOf(r) >= 0;
    }, function (c) {
      return cols.indexOf(c) >= 0;
    }, "cnnbook-ca-tap");
    view.footprint.style.gridRow = i * geo.s + 1 + " / span " + geo.eff;
    view.footprint.style.gridColumn = j * geo.s + 1 + " / span " + geo.eff;
    root.setAttribute("data-in-row", String(i));
    root.setAttribute("data-in-col", String(j));
    view.status.textContent =
      "Input (" + i + ", " + j + ") times the kernel is added to result rows " + list(rows) +
      " and columns " + list(cols) +
      (geo.p > 0 ? " (before padding crops " + geo.p + " from each side)." : ".");
    view.input.grid.setAttribute(
      "aria-label",
      "Input grid " + geo.W + " by " + geo.W + "; current cell row " + i + ", column " + j
    );
    view.output.grid.setAttribute(
      "aria-label",
      "Result grid " + geo.canvas + " by " + geo.canvas + "; kept output " + geo.size + " by " +
      geo.size + " starting at row and column " + geo.p
    );
  }

  function render() {
    var last = geo.positions - 1;
    root.setAttribute("data-position", String(state.index));
    ["data-out-row", "data-out-col", "data-in-row", "data-in-col"].forEach(function (a) {
      root.removeAttribute(a);
    });
    if (!geo.valid) {
      view.status.textContent = "No output, so the kernel has no positions to step through.";
      view.input.grid.setAttribute(
        "aria-label",
        "Input grid " + view.inputCells.length + " by " + view.inputCells.length + "; no output"
      );
    } else if (state.transposed) {
      renderTransposed();
    } else {
      renderConv();
    }
    view.progress.textContent =
      geo.positions > 0
        ? (state.transposed ? "input " : "position ") + (state.index + 1) + " of " + geo.positions
        : "no positions";
    view.buttons.back.disabled = state.index === 0;
    view.buttons.step.disabled = state.index >= last;
    view.buttons.play.disabled = last <= 0;
    view.buttons.reset.disabled = geo.positions === 0;
  }

  // ---------------------------------------------------------------- navigation

  function lastIndex() {
    return geo.positions - 1;
  }

  // ---------------------------------------------------------------- mount

  var body = widgetBody(root, data.title);
  body.appendChild(buildControls());
  body.appendChild(buildStepper());

  var panels = el("div", { class: "cnnbook-panels" });
  view.input = gridPanel("input-grid");
  view.output = gridPanel("output-grid");
  view.output.box.setAttribute("data-role", "output-panel");
  panels.appendChild(view.input.box);
  panels.appendChild(view.output.box);
  body.appendChild(panels);

  var result = el("div", { class: "cnnbook-ca-result" });
  result.appendChild(el("span", null, "Output size: "));
  view.size = el("strong", { class: "cnnbook-highlight", "data-role": "output-size" });
  result.appendChild(view.size);
  body.appendChild(result);
  view.formula = el("div", { class: "cnnbook-formula", "data-role": "formula" });
  body.appendChild(view.formula);
  view.error = errorLine();
  body.appendChild(view.error);
  view.legend = el("div", { class: "cnnbook-ca-legend" });
  body.appendChild(view.legend);
  view.status = statusLine();
  body.appendChild(view.status);
  root.appendChild(body);

  rebuild();
  render();
}
