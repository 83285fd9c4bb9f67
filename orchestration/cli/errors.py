"""Configuration errors as one line, never a traceback: `cmr` is a Typer app whose call turns a missing or
invalid setting (cmr.config.ConfigError, or pydantic's ValidationError when Settings are built from CMR_*
variables) into `error: ...` on stderr naming the variable, exit code 2. Every other exception is left alone."""

from __future__ import annotations

import sys
from typing import Any

import typer

EXIT_CONFIG = 2


def _security_hint(said: str) -> str:
    """What to do about a missing key or certificate on one machine (docs/security.md), less what `said` says."""
    folder = "data/security"
    try:
        from cmr.config import get_settings

        folder = str(get_settings().data_dir / "security")
    except ValueError:  # the settings themselves are invalid: the default folder
        pass
    use = f"`set -a; . {folder}/client.env; set +a` in this shell (or `cmr up` for the whole stack)"
    if "init-dev" in said:
        return f"after `cmr security init-dev`: {use}"
    return (f"on this machine: `cmr security init-dev`, then {use}; CMR_AUTH_MODE=off CMR_TLS=false only on a "
            "closed test machine")


def _settings_error(exc: BaseException) -> str | None:
    """One line for a Settings ValidationError (each bad variable, its value, the problem, what it is for)."""
    pydantic = sys.modules.get("pydantic")  # loaded if Settings were built: nothing to import otherwise
    config = sys.modules.get("cmr.config")
    if pydantic is None or config is None or not isinstance(exc, pydantic.ValidationError):
        return None
    if exc.title != config.Settings.__name__:
        return None
    fields = config.Settings.model_fields
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        what = fields[name].description if name in fields and fields[name].description else ""
        value = f"={err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
        parts.append(f"CMR_{name.upper()}{value}: {err['msg']}" + (f" ({what})" if what else ""))
    return "; ".join(parts) + "; every setting: cmr/config.py"


def config_error_line(exc: BaseException) -> str | None:
    """`error: ...` for a configuration error, None for any other exception."""
    config = sys.modules.get("cmr.config")
    if config is not None and isinstance(exc, config.ConfigError):
        text = " ".join(str(exc).split())
        hint = f"; {_security_hint(text)}" if "CMR_AUTH" in text or "CMR_TLS" in text else ""
        return f"error: {text}{hint}"
    line = _settings_error(exc)
    return None if line is None else f"error: {' '.join(line.split())}"


class CmrTyper(typer.Typer):
    """typer.Typer whose call (the `cmr` console script) prints configuration errors as one line."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only configuration errors are handled; the rest re-raised
            line = config_error_line(exc)
            if line is None:
                raise
            print(line, file=sys.stderr)
            sys.exit(EXIT_CONFIG)
