"""The teaching app's local web server: a small Starlette (ASGI) app run by uvicorn.

Everything is served from this machine: the page, its script, and plotly.js from the
installed ``plotly`` package (no CDN). A Content-Security-Policy header lets the page load
and send nothing anywhere else, and on a loopback address only requests naming a loopback
host are answered (no DNS rebinding). Needs ``pip install 'b12pk[app]'``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ..about import DISCLAIMER, __version__
from ..errors import B12pkError, InputError, OutputError, ResourceError
from ..limits import MAX_APP_REGIMENS, MAX_APP_REQUEST_BYTES

#: What the page may load and where it may connect: this server only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


class AppUnavailableError(B12pkError):
    """The [app] extra (starlette, uvicorn, plotly) is not installed."""


def _require() -> None:
    missing = []
    for module in ("starlette", "uvicorn", "plotly"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise AppUnavailableError(
            f"b12pk app needs {', '.join(missing)}: pip install 'b12pk[app]' (from a clone: "
            "pip install '.[app]')")


def plotly_js() -> Path:
    """plotly.min.js from the installed plotly package (served at /static/plotly.min.js)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise AppUnavailableError(f"plotly.js not found in the plotly package at {path}")
    return path


def _static(name: str) -> bytes:
    return resources.files("b12pk.app").joinpath("static", name).read_bytes()


def meta() -> dict[str, Any]:
    """What the page needs once: presets, lessons, example regimens, the disclaimer."""
    from ..analysis.compare import default_regimens
    from ..model.parameters import Patient, preset_descriptions, serum_bands_pmol_per_l
    from ..plot.figures import band_fill, curve_style
    from .lessons import lessons

    examples = list(dict.fromkeys([r.regimen.to_text() for r in default_regimens()]
                                  + [t for lesson in lessons() for t in lesson.regimens]))
    return {"version": __version__, "disclaimer": DISCLAIMER,
            "styles": [_plotly_style(curve_style(i)) for i in range(MAX_APP_REGIMENS)],
            "band_fills": {name: _rgba(*band_fill(name))
                           for name, _low, _high in serum_bands_pmol_per_l()},
            "presets": [_preset(Patient.preset(name), text)
                        for name, text in preset_descriptions().items()],
            "lessons": [lesson.as_dict() for lesson in lessons()],
            "examples": examples}


def _plotly_style(st: Mapping[str, Any], width: float = 1.8) -> dict[str, str]:
    """A matplotlib curve style as Plotly's line colour and dash (dash lengths in px: in
    matplotlib they are multiples of the line width)."""
    ls = st["linestyle"]
    if ls in ("-", "solid"):
        dash = "solid"
    else:
        _offset, seq = ls
        dash = ",".join(f"{x * width:g}px" for x in seq)
    return {"color": st["color"], "dash": dash}


def _rgba(colour: str, alpha: float) -> str:
    """A hex colour and an opacity as CSS ``rgba(...)``."""
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha:g})"


def _preset(p: Any, text: str) -> dict[str, Any]:
    """A preset as the page's patient form shows it (its own settings filled in)."""
    return {"name": p.name, "description": text,
            "baseline_serum_pmol_per_l": p.baseline_serum_pmol_per_l,
            "egfr_ml_min": p.egfr_ml_min, "ileal_resection_cm": p.ileal_resection_cm,
            "intrinsic_factor": p.intrinsic_factor}


def create_app(*, loopback: bool = True) -> Any:
    """The ASGI application.

    Parameters
    ----------
    loopback : bool
        Answer only requests whose Host is a loopback name (127.0.0.1, localhost, ::1).
    """
    _require()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from .compute import curves_csv, figure_bytes, view

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    page = _static("index.html").decode("utf-8").replace("{{DISCLAIMER}}", DISCLAIMER)
    files = {name: (_static(name), mime) for name, mime in _STATIC.items()}
    files["plotly.min.js"] = (plotly_js().read_bytes(), "text/javascript")
    info = meta()

    async def body(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":  # a plain form post from another site is refused
            raise InputError("the request must be JSON (Content-Type: application/json)")
        try:
            size = int(request.headers.get("content-length") or 0)
        except ValueError:
            raise InputError("bad Content-Length") from None
        too_large = ResourceError(f"request larger than {MAX_APP_REQUEST_BYTES:,} bytes")
        if size > MAX_APP_REQUEST_BYTES:
            raise too_large
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_APP_REQUEST_BYTES:
                raise too_large
        try:
            return json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InputError("the request is not JSON") from None

    def error(exc: B12pkError) -> JSONResponse:
        status = 413 if isinstance(exc, ResourceError) else 400
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    async def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, headers=headers)
        return Response(found[0], media_type=found[1], headers=headers)

    async def api_meta(request: Request) -> Response:
        return JSONResponse(info, headers=headers)

    async def api_view(request: Request) -> Response:
        try:
            data = await body(request)
        except B12pkError as exc:
            return error(exc)
        return JSONResponse(await run_in_threadpool(view, data), headers=headers)

    async def download(request: Request) -> Response:
        kind = request.path_params["kind"]
        kinds = {"curves.csv": "text/csv; charset=utf-8", "figure.png": "image/png",
                 "figure.svg": "image/svg+xml"}
        if kind not in kinds:
            return Response("not found", status_code=404, headers=headers)
        try:
            data = await body(request)
            v = await run_in_threadpool(view, data)
            if kind == "curves.csv":
                content: Any = curves_csv(v)
            else:
                content = await run_in_threadpool(figure_bytes, v, kind.split(".")[1])
        except B12pkError as exc:
            return error(exc)
        disp = {"Content-Disposition": f'attachment; filename="b12pk-{kind}"'}
        return Response(content, media_type=kinds[kind], headers={**headers, **disp})

    routes = [Route("/", index), Route("/static/{name}", static),
              Route("/api/meta", api_meta), Route("/api/view", api_view, methods=["POST"]),
              Route("/download/{kind}", download, methods=["POST"])]
    middleware = ([Middleware(TrustedHostMiddleware,
                              allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])]
                  if loopback else [])
    return Starlette(routes=routes, middleware=middleware)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free port chosen by the system).

    Raises
    ------
    InputError
        A port outside 0-65535.
    OutputError
        The address cannot be used (port in use, unknown host, no permission).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be a whole number in 0-65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutputError(f"cannot serve on host {host!r}: {exc}") from None
    family, _t, _p, _c, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        what = "is in use" if exc.errno in (48, 98, 10048) else f"cannot be used ({exc.strerror})"
        raise OutputError(f"port {port} on {host} {what}; choose another with --port, or "
                          "leave --port out for a free one") from None
    return sock


def _warm_up() -> None:
    """Compile the engine's kernels before the first request needs them."""
    from .compute import view

    try:
        view({"patient": {"preset": "pernicious-anaemia"}, "days": 30,
              "regimens": ["1000 mcg cyanocobalamin oral daily",
                           "1000 mcg hydroxocobalamin IM monthly"]})
    except Exception:  # noqa: BLE001 - a failed warm-up shows again on the first request
        pass


def _server(host: str, port: int) -> tuple[Any, socket.socket, str]:
    import uvicorn

    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    app = create_app(loopback=is_loopback(host))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config), sock, url


def start_in_thread(host: str = "127.0.0.1", port: int = 0) -> tuple[str, Any]:
    """Serve the app from a background thread (tests, screenshots).

    Returns
    -------
    (url, stop)
        The page's URL, and a function that stops the server and waits for it.
    """
    _require()
    server, sock, url = _server(host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise OutputError(f"the app's server did not start on {url}")
        threading.Event().wait(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return url, stop


def serve(host: str = "127.0.0.1", port: int = 0, *, open_browser: bool = True) -> None:
    """Serve the app until interrupted (Ctrl-C).

    Parameters
    ----------
    host : str
        Address to listen on; a non-loopback address makes the page reachable from the
        network (the command line warns).
    port : int
        0: a free port.
    open_browser : bool
        Open the page in the default browser once the server listens.
    """
    _require()
    server, sock, url = _server(host, port)
    threading.Thread(target=_warm_up, daemon=True).start()

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        sys.stderr.write(f"b12pk app: serving on {url} (Ctrl-C to stop). {DISCLAIMER}\n")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
