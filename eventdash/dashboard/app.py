"""Flask + Flask-SocketIO app factory for gunicorn: ``eventdash.dashboard.app:create_app()``.

Run with one worker (``-w 1``) of class eventlet (default) or gevent; the async mode follows
whichever library has monkey-patched the process.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import orjson
from flask import Flask, Response, abort, render_template, request, send_from_directory
from flask_socketio import SocketIO, emit, join_room, leave_room
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from ..config import ConfigError, Settings
from ..logging_setup import configure_logging
from ..observability.metrics import DashboardMetrics
from ..stats.export import UnknownWindow, series_csv, top_csv, window_document
from ..stats.slice import InvalidFilter, parse_filter
from .auth import protect
from .event_tail import TAIL_ROOM
from .fanout import install as install_broadcaster
from .live import FULL_ROOM, LiveStats
from .native import detect_async_mode

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
VENDOR_FILES = {
    "socket.io.min.js": "socket.io-client/dist/socket.io.min.js",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}
# connect-src 'self' also covers ws:// and wss:// to this same host and port (CSP Level 3, as browsers do now).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
# Clients only listen: what they send is the Socket.IO connect packet, pongs and the upgrade probe (a few
# bytes each). A larger HTTP body or WebSocket frame is refused instead of buffered (python-engineio's default
# is 1 MB).
MAX_CLIENT_MESSAGE_BYTES = 4096


def web_root_of(settings: Settings) -> Path:
    """Where the page's files are: EVENTDASH_WEB_ROOT (an installed package, e.g. the image), else this project."""
    root = Path(settings.web_root) if settings.web_root else ROOT
    if not (root / "templates" / "index.html").is_file():
        raise ConfigError(f"EVENTDASH_WEB_ROOT={str(root)!r} is invalid: it has no templates/index.html "
                          "(set it to the folder holding templates/, static/ and node_modules/)")
    return root


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def create_app(settings: Settings | None = None, *, start_background: bool = True) -> Flask:
    try:  # gunicorn shows a traceback for anything raised here: a bad setting is one line and exit 2
        if settings is None:
            settings = Settings.from_env()
            configure_logging(settings.log_level, settings.log_format, program="dashboard")
        web_root = web_root_of(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    app = Flask("eventdash", template_folder=str(web_root / "templates"), static_folder=str(web_root / "static"))
    vendor_dir = web_root / "node_modules"
    async_mode = detect_async_mode()
    socketio = SocketIO(app, async_mode=async_mode, cors_allowed_origins=list(settings.cors_origins) or None,
                        max_http_buffer_size=MAX_CLIENT_MESSAGE_BYTES, logger=False, engineio_logger=False)
    try:  # after SocketIO(app), so that the Socket.IO handshake is behind it too
        app.wsgi_app = protect(app.wsgi_app, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    metrics = DashboardMetrics()
    live = LiveStats(settings, socketio, metrics, install_broadcaster(socketio, async_mode))
    app.extensions["eventdash"] = live

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html", currency=settings.currency)

    @app.get("/api/stats")
    def api_stats() -> Response:
        label = request.args.get("window")
        try:
            where = parse_filter(request.args.get("category"), request.args.get("product"))
            if where is not None:
                return _json(live.slice_document(label or "5m", where))
            if label is None:
                return _json(live.view())
            return _json(window_document(*live.window_inputs(label)))
        except (UnknownWindow, InvalidFilter) as exc:
            return _json({"error": str(exc), "status": 400}, 400)

    def _csv_response(make, label: str | None, name: str) -> Response:
        label = "5m" if label is None else label
        try:
            text = make(*live.window_inputs(label))
        except UnknownWindow as exc:
            return _json({"error": str(exc), "status": 400}, 400)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return Response(text, mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="eventdash-{name}-{label}-{stamp}.csv"'})

    @app.get("/api/alerts")
    def api_alerts() -> Response:
        return _json(live.alerts.log.view(time.time_ns() // 1_000_000))

    @app.get("/api/deadletters")
    def api_dead_letters() -> Response:
        return _json(live.dead_letters.view())

    @app.get("/api/series.csv")
    def api_series_csv() -> Response:
        return _csv_response(series_csv, request.args.get("window"), "series")

    @app.get("/api/top.csv")
    def api_top_csv() -> Response:
        return _csv_response(top_csv, request.args.get("window"), "top-products")

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        ready, reason = live.readiness()
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        live.view(series_seconds=0)  # refreshes the gauges derived from the view
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.get("/vendor/<name>")
    def vendor(name: str) -> Response:
        relative = VENDOR_FILES.get(name)
        if relative is None:
            abort(404)
        return send_from_directory(vendor_dir, relative, max_age=3600)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # JSON on every path, not Werkzeug's HTML page; its headers (e.g. Allow on a 405) are kept.
        response = exc.get_response()
        response.set_data(orjson.dumps({"error": exc.name.lower(), "status": exc.code}))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        logger.exception("unhandled error on %s", request.path)
        return _json({"error": "internal server error", "status": 500}, 500)

    @socketio.on("connect")
    def on_connect(auth=None) -> None:
        metrics.clients.inc()
        emit("stats", live.view())  # the full state at once, not a blank page until the next change
        if isinstance(auth, dict) and auth.get("delta") is True:
            live.awaiting_base.add(request.sid)  # a base document with `seq` at the next broadcast, then deltas
        else:
            join_room(FULL_ROOM)

    @socketio.on("resync")
    def on_resync(*_ignored) -> None:
        live.resync(request.sid)

    @socketio.on("tail")
    def on_tail(request_=None) -> None:
        """``{"open": true}`` joins the live event tail's room, anything else leaves it."""
        if isinstance(request_, dict) and request_.get("open") is True:
            join_room(TAIL_ROOM)
        else:
            leave_room(TAIL_ROOM)

    @socketio.on("disconnect")
    def on_disconnect(reason=None) -> None:
        metrics.clients.dec()
        live.awaiting_base.discard(request.sid)

    if start_background:
        live.start()
    logger.info("dashboard ready (async mode %s, broadcasts <= %g/s)", async_mode, settings.broadcast_per_second)
    return app
