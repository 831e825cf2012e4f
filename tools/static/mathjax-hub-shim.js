// ipywidgets' HTML manager typesets widget labels through the MathJax 2 API
// (MathJax.Hub.Queue), but the book loads MathJax 3, which has no Hub: every
// described control (a Dropdown with a label) threw "reading 'Queue'". Upstream:
// jupyter-widgets/ipywidgets#3829 (MathJax 3 support in the widgets' typeset), still
// open; @jupyter-widgets/html-manager 1.0.15 still calls MathJax.Hub.Queue. Drop this
// file once the vendored manager no longer does (grep its embed-amd.js for "Hub.Queue").
// This gives MathJax 3 a one-method Hub that typesets the element the MathJax 3 way.
// MathJax replaces window.MathJax when its (deferred) script runs, so the Hub is
// installed again at DOMContentLoaded and at load, before the manager renders widgets.
(function () {
  function queue(job) {
    var mj = window.MathJax;
    var element = Array.isArray(job) ? job[2] : undefined;
    if (!mj || !mj.startup || !mj.startup.promise) return; // not loaded yet: nothing to do
    mj.startup.promise
      .then(function () {
        return mj.typesetPromise(element ? [element] : undefined);
      })
      .catch(function (err) {
        console.warn("MathJax could not typeset a widget label:", err);
      });
  }
  function install() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) mj.Hub = { Queue: queue };
  }
  install();
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
