// Upsampling explorer: draws numbers that Python computed (see upsampling.py) and steps
// through them. No convolution arithmetic happens here: the outputs, the overlap counts
// and the running sums after every stamp all come from `data`. Wrapped by _html.py in a
// function, after base.js (el, stepper and the other shared helpers), so nothing here is
// global. Called as mountUpsampling(root, data) with root the figure's <div>.

function mountUpsampling(root, data) {
  "use strict";
  var PLAY_INTERVAL_MS = 800;
  var state = { k: data.kernel_size, s: data.stride, index: 0, timer: null };
  var view = {};
  var player = null;
  var covers = []; // covers[r][c]: indices of the stamps that reach output cell (r, c)

  // ---------------------------------------------------------------- formatting

  // At most `decimals` digits after the point, trailing zeros dropped, typographic minus.
  function fmt(x) {
    return shortNumber(x, data.decimals);
  }

  function config() {
    return data.configs["k" + state.k + "s" + state.s];
  }

  function lastIndex() {
    return config().stamps.length - 1;
  }

  // Position of a count on the colour ramp of upsampling.css (the same seven colours as
  // static_upsampling.COUNT_COLOURS); 0, a hole, is hatched grey.
  function countClass(count, largest) {
    if (count <= 0) {
      return "cnnbook-up-gap";
    }
    var step = largest <= 1 ? 0 : Math.round(((count - 1) / (largest - 1)) * 6);
    return "cnnbook-up-c" + step;
  }

  // ---------------------------------------------------------------- grids

  function cellWidth(labels) {
    var longest = 1;
    labels.forEach(function (s) {
      longest = Math.max(longest, s.length);
    });
    return Math.max(1.9, 0.62 * longest + 0.8);
  }

  function flat(matrix) {
    var out = [];
    matrix.forEach(function (row) {
      row.forEach(function (v) {
        out.push(fmt(v));
      });
    });
    return out;
  }

  // Fill panel.grid with rows x cols text cells (row-major); returns cells[r][c].
  function fillGrid(panel, rows, cols, labels) {
    var grid = panel.grid;
    grid.textContent = "";
    grid.style.gridTemplateColumns = "repeat(" + cols + ", " + cellWidth(labels).toFixed(2) + "em)";
    grid.style.gridTemplateRows = "repeat(" + rows + ", 1.9em)";
    grid.classList.toggle("cnnbook-up-dense", cols > 10 || rows > 10);
    grid.setAttribute("data-rows", String(rows));
    grid.setAttribute("data-cols", String(cols));
    var cells = [];
    for (var r = 0; r < rows; r += 1) {
      var row = [];
      for (var c = 0; c < cols; c += 1) {
        var cell = el("div", { class: "cnnbook-up-cell" });
        cell.style.gridRow = String(r + 1);
        cell.style.gridColumn = String(c + 1);
        grid.appendChild(cell);
        row.push(cell);
      }
      cells.push(row);
    }
    return cells;
  }

  function showMatrix(cells, matrix) {
    matrix.forEach(function (row, r) {
      row.forEach(function (v, c) {
        cells[r][c].textContent = fmt(v);
      });
    });
  }

  function showCounts(cells, counts) {
    var largest = 0;
    counts.forEach(function (row) {
      row.forEach(function (v) {
        largest = Math.max(largest, v);
      });
    });
    counts.forEach(function (row, r) {
      row.forEach(function (v, c) {
        cells[r][c].textContent = String(v);
        cells[r][c].className = "cnnbook-up-cell " + countClass(v, largest);
      });
    });
    return largest;
  }

  // An outline over rows [top, top + h) and columns [left, left + w) of a grid.
  function outline(grid, top, left, h, w) {
    var box = el("div", { class: "cnnbook-up-window", "aria-hidden": "true" });
    box.style.gridRow = top + 1 + " / span " + h;
    box.style.gridColumn = left + 1 + " / span " + w;
    grid.appendChild(box);
    return box;
  }

  // ---------------------------------------------------------------- layout per choice

  function rebuild() {
    var cfg = config();
    var H = data.image.length;
    var W = data.image[0].length;
    var kernel = data.kernels[String(state.k)];
    var oh = cfg.out.length;
    var ow = cfg.out[0].length;

    view.inputCells = fillGrid(view.input, H, W, flat(data.image));
    showMatrix(view.inputCells, data.image);
    view.kernelCells = fillGrid(view.kernel, state.k, state.k, flat(kernel));
    showMatrix(view.kernelCells, kernel);
    view.kernel.caption.textContent = "Kernel (" + state.k + " " + TIMES + " " + state.k + ")";
    var stampLabels = [];
    cfg.stamps.forEach(function (st) {
      stampLabels = stampLabels.concat(flat(st.values));
    });
    view.stampCells = fillGrid(view.stamp, state.k, state.k, stampLabels);

    view.outCells = fillGrid(view.out, oh, ow, flat(cfg.out));
    view.outWindow = outline(view.out.grid, 0, 0, state.k, state.k);
    view.out.caption.textContent = "Output (" + oh + " " + TIMES + " " + ow + ")";
    view.countCells = fillGrid(view.counts, oh, ow, ["00"]);
    view.countWindow = outline(view.counts.grid, 0, 0, state.k, state.k);

    covers = cfg.out.map(function (row) {
      return row.map(function () {
        return [];
      });
    });
    cfg.stamps.forEach(function (st, n) {
      for (var a = 0; a < state.k; a += 1) {
        for (var b = 0; b < state.k; b += 1) {
          covers[st.at[0] + a][st.at[1] + b].push(n);
        }
      }
    });

    var rs = cfg.resize;
    var uh = rs.upsampled.length;
    var uw = rs.upsampled[0].length;
    view.upCells = fillGrid(view.upsampled, uh, uw, flat(rs.upsampled));
    showMatrix(view.upCells, rs.upsampled);
    view.upsampled.caption.textContent =
      "Nearest " + TIMES + state.s + " (" + uh + " " + TIMES + " " + uw + ")";
    view.rcCells = fillGrid(view.rcOut, uh, uw, flat(rs.out));
    showMatrix(view.rcCells, rs.out);
    view.rcOut.caption.textContent =
      "Then " + state.k + " " + TIMES + " " + state.k + " conv (" + uh + " " + TIMES + " " + uw + ")";
    view.rcCountCells = fillGrid(view.rcCounts, uh, uw, ["00"]);
    var rcLargest = showCounts(view.rcCountCells, rs.counts);
    view.rcCounts.caption.textContent = "Kernel taps on the map (" + rcLargest + " inside)";

    view.formula.innerHTML =
      "<div>transposed: <var>H</var><sub>out</sub> = (<var>H</var> \u2212 1)<var>s</var> + " +
      "<var>k</var> = (" + H + " \u2212 1)\u00B7" + state.s + " + " + state.k + " = <strong>" +
      oh + "</strong></div><div>resize + conv: <var>H</var><sub>out</sub> = <var>H</var>" +
      "<var>s</var> = " + H + "\u00B7" + state.s + " = <strong>" + uh + "</strong></div>";
    view.kSelect.value = String(state.k);
    view.sSelect.value = String(state.s);
    root.setAttribute("data-kernel-size", String(state.k));
    root.setAttribute("data-stride", String(state.s));
    view.out.grid.setAttribute("aria-label", "Transposed convolution output, " + oh + " by " + ow);
    view.rcOut.grid.setAttribute("aria-label", "Resize then convolve output: " + flat(rs.out).join(", "));
    view.rcCounts.grid.setAttribute("aria-label", "Taps per pixel: " + flat(rs.counts).join(", "));
  }

  // ---------------------------------------------------------------- per-stamp update

  function render() {
    var cfg = config();
    var n = state.index;
    var st = cfg.stamps[n];
    var last = lastIndex();
    var done = n === last;
    var largest = 0;
    cfg.counts.forEach(function (row) {
      row.forEach(function (v) {
        largest = Math.max(largest, v);
      });
    });

    view.inputCells.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        var order = r * data.image[0].length + c;
        cell.className = "cnnbook-up-cell" + (order === n ? " cnnbook-up-current" : "") +
          (order < n ? " cnnbook-up-used" : "");
      });
    });
    st.values.forEach(function (row, a) {
      row.forEach(function (v, b) {
        view.stampCells[a][b].textContent = fmt(v);
      });
    });
    view.stamp.caption.textContent =
      "Stamp = x[" + st.src[0] + ", " + st.src[1] + "] " + TIMES + " kernel";

    // a cell shows the running sum left by the last stamp so far that reached it
    covers.forEach(function (row, r) {
      row.forEach(function (list, c) {
        var q = -1;
        list.forEach(function (m) {
          if (m <= n) {
            q = m;
          }
        });
        var outCell = view.outCells[r][c];
        var countCell = view.countCells[r][c];
        if (done) {
          outCell.textContent = fmt(cfg.out[r][c]);
          countCell.textContent = String(cfg.counts[r][c]);
          countCell.className = "cnnbook-up-cell " + countClass(cfg.counts[r][c], largest);
        } else if (q < 0) {
          outCell.textContent = "";
          countCell.textContent = "";
          countCell.className = "cnnbook-up-cell cnnbook-up-empty";
        } else {
          var a = r - cfg.stamps[q].at[0];
          var b = c - cfg.stamps[q].at[1];
          var count = cfg.stamps[q].after_counts[a][b];
          outCell.textContent = fmt(cfg.stamps[q].after[a][b]);
          countCell.textContent = String(count);
          countCell.className = "cnnbook-up-cell " + countClass(count, largest);
        }
        outCell.classList.toggle("cnnbook-up-fresh", list.indexOf(n) >= 0 && !done);
      });
    });
    [view.outWindow, view.countWindow].forEach(function (box) {
      box.hidden = done;
      box.style.gridRow = st.at[0] + 1 + " / span " + state.k;
      box.style.gridColumn = st.at[1] + 1 + " / span " + state.k;
    });

    root.setAttribute("data-stamp", String(n));
    root.setAttribute("data-src-row", String(st.src[0]));
    root.setAttribute("data-src-col", String(st.src[1]));
    root.setAttribute("data-at-row", String(st.at[0]));
    root.setAttribute("data-at-col", String(st.at[1]));
    root.setAttribute("data-complete", String(done));
    view.progress.textContent = "stamp " + (n + 1) + " of " + (last + 1);
    view.buttons.back.disabled = n === 0;
    view.buttons.step.disabled = done;

    var text;
    if (!done) {
      text = "Stamp " + (n + 1) + ": x[" + st.src[0] + ", " + st.src[1] + "] = " +
        fmt(data.image[st.src[0]][st.src[1]]) + " times the kernel, added at (row " + st.at[0] +
        ", col " + st.at[1] + "). Blank cells have no stamp yet.";
    } else if (cfg.pattern === "holes") {
      text = "All stamps added. The kernel (" + state.k + ") is smaller than the stride (" +
        state.s + "): " + cfg.holes + " output pixels get no stamp at all (count 0).";
    } else if (cfg.pattern === "checkerboard") {
      text = "All stamps added. " + state.k + " is not a multiple of the stride " + state.s +
        ": neighbouring pixels get different numbers of stamps, a checkerboard.";
    } else {
      text = "All stamps added. " + state.k + " is a multiple of the stride " + state.s +
        ": away from the border every pixel gets the same number of stamps.";
    }
    view.status.textContent = text + " Resize + conv reads " + state.k + " " + TIMES + " " +
      state.k + " = " + cfg.resize.taps + " pixels for every output away from the border.";
    view.counts.grid.setAttribute(
      "aria-label",
      "Stamps per output pixel: " + flat(cfg.counts).join(", ")
    );
  }

  function onSelect() {
    player.stop();
    state.k = Number(view.kSelect.value);
    state.s = Number(view.sSelect.value);
    rebuild();
    state.index = lastIndex();
    render();
  }

  // ---------------------------------------------------------------- mount

  var body = widgetBody(root, data.title);
  var bar = el("div", { class: "cnnbook-controls" });
  view.kSelect = labelledSelect(bar, "kernel-size", "Kernel size", data.kernel_sizes.map(function (k) {
    return [String(k), String(k)];
  })).select;
  view.sSelect = labelledSelect(bar, "stride", "Stride", data.strides.map(function (s) {
    return [String(s), String(s)];
  })).select;
  player = stepper(root, bar, state, lastIndex, render, PLAY_INTERVAL_MS);
  view.buttons = player.buttons;
  view.progress = el("span", { class: "cnnbook-progress" });
  bar.appendChild(view.progress);
  body.appendChild(bar);

  function section(title, panels) {
    var box = el("div", { class: "cnnbook-up-section" });
    box.appendChild(el("div", { class: "cnnbook-up-heading" }, title));
    var row = el("div", { class: "cnnbook-panels" });
    panels.forEach(function (p) {
      row.appendChild(p.box);
    });
    box.appendChild(row);
    body.appendChild(box);
  }

  view.input = gridPanel("input-grid");
  view.input.caption.textContent = "Input (" + data.image.length + " " + TIMES + " " +
    data.image[0].length + ")";
  view.kernel = gridPanel("kernel-grid");
  view.stamp = gridPanel("stamp-grid");
  view.out = gridPanel("output-grid");
  view.counts = gridPanel("counts-grid");
  view.counts.caption.textContent = "Stamps per pixel";
  view.upsampled = gridPanel("upsampled-grid");
  view.rcOut = gridPanel("resize-output-grid");
  view.rcCounts = gridPanel("resize-counts-grid");
  section("Transposed convolution: every input pixel stamps a scaled kernel", [
    view.input, view.kernel, view.stamp, view.out, view.counts,
  ]);
  section("Resize, then convolve", [view.upsampled, view.rcOut, view.rcCounts]);
  view.formula = el("div", { class: "cnnbook-formula" });
  body.appendChild(view.formula);
  view.status = statusLine();
  body.appendChild(view.status);
  root.appendChild(body);

  rebuild();
  state.index = lastIndex(); // start with the finished sum; Reset or Play to step
  render();
  view.kSelect.addEventListener("change", onSelect);
  view.sSelect.addEventListener("change", onSelect);
}
