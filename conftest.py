"""Root conftest: registers the plugin that stores the notebooks nbval executes in the
book's jupyter-cache (tools/nbval_cache.py; it explains why and how)."""

pytest_plugins = ["tools.nbval_cache"]
