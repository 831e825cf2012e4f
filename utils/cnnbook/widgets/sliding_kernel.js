// Sliding-kernel figure: draws numbers that Python computed and moves through them.
// No convolution arithmetic happens here; every value comes from `data` (see
// sliding_kernel.py). Wrapped by _html.py in a function, after base.js (el, stepper and
// the other shared helpers), so nothing here is global.
// Called as mountSlidingKernel(root, data) with root the figure's <div>.

function mountSlidingKernel(root, data) {
  "use strict";
  var PLAY_INTERVAL_MS = 700;
  var state = { stride: data.stride, padding: data.padding, index: 0, timer: null };
  var view = {}; // DOM nodes that later updates touch
  var player = null; // the Back / Step / Play / Reset buttons, see stepper() in base.js

  // ---------------------------------------------------------------- formatting

  // Exactly `decimals` digits; "-0.00" is shown as "0.00".
  function fmt(x) {
    var s = Number(x).toFixed(data.decimals);
    return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
  }

  // Grid cells: same rounding, trailing zeros dropped, typographic minus.
  function fmtCell(x) {
    return shortNumber(x, data.decimals);
  }

  function config() {
    return data.configs["s" + state.stride + "p" + state.padding];
  }

  // ---------------------------------------------------------------- static layout

  function buildControls() {
    var bar = el("div", { class: "cnnbook-controls" });
    player = stepper(root, bar, state, lastIndex, render, PLAY_INTERVAL_MS);
    view.buttons = player.buttons;
    view.stride = buildSelect(bar, "stride", "Stride", data.strides, function () {
      return true;
    });
    view.padding = buildSelect(bar, "padding", "Padding", data.paddings, function (p) {
      return ("s" + state.stride + "p" + p) in data.configs;
    });
    view.progress = el("span", { class: "cnnbook-progress" });
    bar.appendChild(view.progress);
    return bar;
  }

  // A menu of `values`; those for which usable(v) is false are shown greyed out.
  function buildSelect(bar, name, text, values, usable) {
    var options = values.map(function (v) {
      return usable(v) ? [String(v), String(v)] : [String(v), v + " (kernel does not fit)", true];
    });
    var select = labelledSelect(bar, name, text, options).select;
    select.value = String(state[name]);
    return select;
  }

  // Column width in em from the longest label, so 7 x 7 photo values and 5 x 5 integers
  // both fit without wrapping.
  function cellWidth(labels, minimum) {
    var longest = 0;
    labels.forEach(function (s) {
      longest = Math.max(longest, s.length);
    });
    return Math.max(minimum, 0.62 * longest + 0.9);
  }

  function sizeGrid(grid, rows, cols, width) {
    grid.style.gridTemplateColumns = "repeat(" + cols + ", " + width.toFixed(2) + "em)";
    grid.style.gridTemplateRows = "repeat(" + rows + ", 2.1em)";
    grid.classList.toggle("cnnbook-sk-dense", cols > 11 || rows > 11);
    grid.setAttribute("data-rows", String(rows));
    grid.setAttribute("data-cols", String(cols));
  }

  // One text cell at an explicit grid position (explicit placement lets the window
  // outline overlap cells without pushing them around).
  function gridCell(grid, r, c, text, cls) {
    var cell = el("div", { class: "cnnbook-sk-cell" + (cls ? " " + cls : "") }, text);
    cell.style.gridRow = String(r + 1);
    cell.style.gridColumn = String(c + 1);
    grid.appendChild(cell);
    return cell;
  }

  function flatLabels(matrix) {
    var labels = [];
    matrix.forEach(function (row) {
      row.forEach(function (v) {
        labels.push(fmtCell(v));
      });
    });
    return labels;
  }

  function buildKernel() {
    var grid = view.kernel.grid;
    sizeGrid(grid, data.k_h, data.k_w, cellWidth(flatLabels(data.kernel), 2.1));
    data.kernel.forEach(function (row, r) {
      row.forEach(function (v, c) {
        gridCell(grid, r, c, fmtCell(v), "cnnbook-sk-weight");
      });
    });
    view.kernel.caption.textContent = "Kernel (" + data.k_h + " " + TIMES + " " + data.k_w + ")";
    grid.setAttribute(
      "aria-label",
      "Kernel, " + data.k_h + " by " + data.k_w + ": " + flatLabels(data.kernel).join(", ")
    );
  }

  // ---------------------------------------------------------------- per-configuration layout

  function buildInput(cfg) {
    var grid = view.input.grid;
    var rows = cfg.padded.length;
    var cols = cfg.padded[0].length;
    var p = cfg.padding;
    grid.textContent = "";
    sizeGrid(grid, rows, cols, cellWidth(flatLabels(cfg.padded), 2.1));
    view.inputCells = cfg.padded.map(function (row, r) {
      return row.map(function (v, c) {
        var isPad = r < p || c < p || r >= rows - p || c >= cols - p;
        return gridCell(grid, r, c, fmtCell(v), isPad ? "cnnbook-sk-pad" : "");
      });
    });
    if (p > 0) {
      // dashed frame around the original image inside the zero ring
      var frame = el("div", { class: "cnnbook-sk-imageframe", "aria-hidden": "true" });
      frame.style.gridRow = p + 1 + " / span " + data.H;
      frame.style.gridColumn = p + 1 + " / span " + data.W;
      grid.appendChild(frame);
    }
    view.window = el("div", { class: "cnnbook-sk-window", "aria-hidden": "true" });
    grid.appendChild(view.window);
    view.input.caption.textContent =
      p > 0 ? "Input, zero-padded (p = " + p + ", hatched)" : "Input (no padding)";
  }

  function buildProducts() {
    var grid = view.products.grid;
    grid.textContent = "";
    // widest "input x weight" label (drawn at 0.8 size) and widest product over every
    // window of this configuration, so cells keep their size while the kernel moves
    var cfg = config();
    var factors = [];
    var values = [];
    cfg.positions.forEach(function (pos) {
      pos.products.forEach(function (row, a) {
        row.forEach(function (v, b) {
          var x = cfg.padded[pos.window[0] + a][pos.window[1] + b];
          factors.push(fmtCell(x) + TIMES + fmtCell(data.kernel[a][b]));
          values.push(fmtCell(v));
        });
      });
    });
    var width = Math.max(0.8 * cellWidth(factors, 3.2), cellWidth(values, 3.2));
    sizeGrid(grid, data.k_h, data.k_w, width);
    grid.style.gridTemplateRows = "repeat(" + data.k_h + ", 3.1em)";
    view.productCells = data.kernel.map(function (row, r) {
      return row.map(function (_, c) {
        var cell = gridCell(grid, r, c, null, "cnnbook-sk-product");
        var factors = el("span", { class: "cnnbook-sk-factors" });
        var value = el("span", { class: "cnnbook-sk-value" });
        cell.appendChild(factors);
        cell.appendChild(value);
        return { factors: factors, value: value };
      });
    });
  }

  function buildOutput(cfg) {
    var grid = view.output.grid;
    var rows = cfg.output.length;
    var cols = cfg.output[0].length;
    grid.textContent = "";
    sizeGrid(grid, rows, cols, cellWidth(flatLabels(cfg.output), 2.1));
    view.outputCells = cfg.output.map(function (row, r) {
      return row.map(function (_, c) {
        return gridCell(grid, r, c, "", "cnnbook-sk-out");
      });
    });
    view.output.caption.textContent = "Output (" + rows + " " + TIMES + " " + cols + ")";
  }

  function buildFormula(cfg) {
    var rows = cfg.output.length;
    var cols = cfg.output[0].length;
    var lines = [
      ["H", data.H, "k<sub>h</sub>", data.k_h, rows],
      ["W", data.W, "k<sub>w</sub>", data.k_w, cols],
    ];
    view.formula.innerHTML = lines
      .map(function (l) {
        return (
          "<div><var>" + l[0] + "</var><sub>out</sub> = floor((<var>" + l[0] +
          "</var> + 2<var>p</var> \u2212 <var>" + l[2] + "</var>) / <var>s</var>) + 1 = " +
          "floor((" + l[1] + " + 2\u00B7" + cfg.padding + " \u2212 " + l[3] + ") / " +
          cfg.stride + ") + 1 = <strong>" + l[4] + "</strong></div>"
        );
      })
      .join("");
  }

  function rebuild() {
    var cfg = config();
    buildInput(cfg);
    buildProducts();
    buildOutput(cfg);
    buildFormula(cfg);
    view.stride.value = String(state.stride);
    view.padding.value = String(state.padding);
    root.setAttribute("data-stride", String(state.stride));
    root.setAttribute("data-padding", String(state.padding));
  }

  // ---------------------------------------------------------------- per-position update

  function render() {
    var cfg = config();
    var pos = cfg.positions[state.index];
    var top = pos.window[0];
    var left = pos.window[1];
    var last = cfg.positions.length - 1;

    cfg.padded.forEach(function (row, r) {
      row.forEach(function (_, c) {
        var inside = r >= top && r < top + data.k_h && c >= left && c < left + data.k_w;
        view.inputCells[r][c].classList.toggle("cnnbook-sk-inwindow", inside);
      });
    });
    view.window.style.gridRow = top + 1 + " / span " + data.k_h;
    view.window.style.gridColumn = left + 1 + " / span " + data.k_w;

    pos.products.forEach(function (row, a) {
      row.forEach(function (v, b) {
        var cell = view.productCells[a][b];
        cell.factors.textContent =
          fmtCell(cfg.padded[top + a][left + b]) + TIMES + fmtCell(data.kernel[a][b]);
        cell.value.textContent = fmtCell(v);
      });
    });

    cfg.positions.forEach(function (p, k) {
      var cell = view.outputCells[p.out[0]][p.out[1]];
      cell.classList.toggle("cnnbook-sk-done", k < state.index);
      cell.classList.toggle("cnnbook-sk-current", k === state.index);
      cell.textContent = k <= state.index ? fmtCell(cfg.output[p.out[0]][p.out[1]]) : "";
    });

    var value = cfg.output[pos.out[0]][pos.out[1]];
    view.sum.textContent = fmt(pos.sum);
    view.valueName.textContent = "output[" + pos.out[0] + ", " + pos.out[1] + "]";
    view.value.textContent = fmt(value);

    root.setAttribute("data-window-row", String(top));
    root.setAttribute("data-window-col", String(left));
    root.setAttribute("data-out-row", String(pos.out[0]));
    root.setAttribute("data-out-col", String(pos.out[1]));
    root.setAttribute("data-position", String(state.index));

    view.progress.textContent = "position " + (state.index + 1) + " of " + (last + 1);
    view.buttons.back.disabled = state.index === 0;
    view.buttons.step.disabled = state.index === last;

    var text =
      "Position (row " + pos.out[0] + ", col " + pos.out[1] + "): sum of products = " +
      fmt(pos.sum);
    if (data.bias !== 0) {
      text += ", plus bias " + fmt(data.bias) + " = " + fmt(value);
    }
    view.status.textContent =
      text + ". Window top-left at (row " + top + ", col " + left + ") of the " +
      (cfg.padding > 0 ? "padded " : "") + "input.";

    view.input.grid.setAttribute(
      "aria-label",
      "Input grid, " + cfg.padded.length + " by " + cfg.padded[0].length +
      (cfg.padding > 0 ? " including a zero border of width " + cfg.padding : "") +
      "; highlighted window starts at row " + top + ", column " + left
    );
    view.products.grid.setAttribute(
      "aria-label",
      "Element-wise products: " + flatLabels(pos.products).join(", ")
    );
    view.output.grid.setAttribute(
      "aria-label",
      "Output grid, " + cfg.output.length + " by " + cfg.output[0].length + "; " +
      (state.index + 1) + " values computed"
    );
  }

  // ---------------------------------------------------------------- navigation

  function lastIndex() {
    return config().positions.length - 1;
  }

  function onSelect() {
    player.stop();
    state.stride = Number(view.stride.value);
    state.padding = Number(view.padding.value);
    state.index = 0;
    rebuild();
    render();
  }

  // ---------------------------------------------------------------- mount

  var body = widgetBody(root, data.title);
  body.appendChild(buildControls());

  var panels = el("div", { class: "cnnbook-panels" });
  view.input = gridPanel("input-grid");
  view.kernel = gridPanel("kernel-grid");
  view.products = gridPanel("products-grid");
  view.products.caption.textContent = "Products (window \u2299 kernel)";
  view.output = gridPanel("output-grid");
  [view.input, view.kernel, view.products, view.output].forEach(function (p) {
    panels.appendChild(p.box);
  });
  body.appendChild(panels);

  var sums = el("div", { class: "cnnbook-sk-sum" });
  sums.appendChild(el("span", null, "sum of products = "));
  view.sum = el("span", { "data-role": "sum" });
  sums.appendChild(view.sum);
  if (data.bias !== 0) {
    sums.appendChild(el("span", null, " + bias " + fmt(data.bias)));
  }
  sums.appendChild(el("br"));
  view.valueName = el("span", { class: "cnnbook-sk-valuename" });
  sums.appendChild(view.valueName);
  sums.appendChild(el("span", null, " = "));
  view.value = el("strong", { class: "cnnbook-highlight", "data-role": "current-value" });
  sums.appendChild(view.value);
  view.products.box.appendChild(sums);

  view.formula = el("div", { class: "cnnbook-formula" });
  body.appendChild(view.formula);
  view.status = statusLine();
  body.appendChild(view.status);
  root.appendChild(body);

  buildKernel();
  rebuild();
  render();

  view.stride.addEventListener("change", onSelect);
  view.padding.addEventListener("change", onSelect);
}
