"""The operator console: a few server-rendered pages at `/console` of `mesbridge run`.

    passwords   the users' passwords as salted scrypt hashes (`mesbridge console hash-password`)
    settings    who may log in and how sessions are signed, from MESBRIDGE_CONSOLE_* variables
    sessions    the signed session cookie, and the CSRF tokens bound to it
    throttle    failed logins counted per user and per client address
    overview    what the overview shows, read from what the service keeps
    pages       the Jinja templates, URLs and cookies under a proxy's prefix, the problem page
    views       the routes: login, overview, events and traces, dead letters

It is off unless console users are configured; then `engine.service.app` mounts its routes before the
webhooks' catch-all. No JavaScript: every page is plain HTML forms and links.
"""

from engine.console.pages import PREFIX
from engine.console.settings import ConsoleSettings
from engine.console.views import console_routes

__all__ = ["PREFIX", "ConsoleSettings", "console_routes"]
