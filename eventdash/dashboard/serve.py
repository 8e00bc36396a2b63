"""``python -m eventdash.dashboard.serve ARGS``: gunicorn's command line, minus eventlet's import banner.

eventlet prints a nine-line deprecation notice when gunicorn's eventlet worker imports it;
gunicorn's own one-line warning about the same says it all. Everything else is gunicorn's.
"""
from __future__ import annotations

import warnings


def main() -> None:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from gunicorn.app.wsgiapp import run

    run(prog="eventdash dashboard")


if __name__ == "__main__":
    main()
