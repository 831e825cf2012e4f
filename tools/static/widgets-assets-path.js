// Tell the ipywidgets HTML manager where its own files (icon fonts) live: next to this
// script, in _static/vendor/html-manager/. The manager derives that folder from the
// require.js module path of "@jupyter-widgets/html-manager/dist/...", which by default
// resolves relative to each page, so the fonts 404. Upstream: embedded widgets lose
// their Font Awesome icons, jupyter-widgets/ipywidgets#1650 and #3658 (both open);
// window.__jupyter_widgets_assets_path__ is the override ipywidgets#1652 added for it,
// still read by @jupyter-widgets/html-manager 1.0.15. Loaded between require.js and
// the manager (see _config.yml).
(function () {
  var base = new URL("html-manager/", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = base;
  if (window.requirejs) {
    window.requirejs.config({
      paths: {
        "@jupyter-widgets/html-manager/dist": base.replace(/\/$/, ""),
        // html-manager 1.0.x builds the URLs of its own stylesheet's fonts from this
        // module's require.js path before it reads __jupyter_widgets_assets_path__.
        // The module is defined inside embed-amd.js, so require.js never fetches it.
        "@jupyter-widgets/html-manager": base + "embed-amd",
      },
    });
  }
})();
