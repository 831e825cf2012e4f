// Tell the ipywidgets HTML manager where its own files (icon fonts) live: next to this
// script, in _static/vendor/html-manager/. Without it, the manager asks for them
// relative to each page and gets 404s. Loaded before require.js (see _config.yml).
window.__jupyter_widgets_assets_path__ = new URL("html-manager/", document.currentScript.src).href;
