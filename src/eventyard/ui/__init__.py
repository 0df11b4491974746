"""The web console: static HTML, CSS and JavaScript modules served beside the control API.

There is no build step: ``static/`` is shipped in the package as written and served by
:func:`eventyard.ui.app.ui_routes` under ``/ui/``. The console talks only to ``/api/v1``.
"""
