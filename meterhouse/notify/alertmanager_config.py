"""alertmanager/alertmanager.yml as shipped, with its addresses, ports and secrets filled in.

Alertmanager does not read environment variables in its configuration, so the shipped
file names the values it needs as ``${MH_…}`` placeholders and this step fills them from
meterhouse's settings (the same MH_* variables), and nothing else: the routing, receivers,
timings and templates stay exactly as shipped. Only the settings in :data:`FILLED` may be
named; a placeholder of any other name, or a required value left empty, is an error that
says which variable to set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import yaml

from meterhouse.notify.errors import NotifyError
from meterhouse.settings import Settings

_PLACEHOLDER: Final = re.compile(r"\$\{(MH_[A-Z0-9_]+)\}")
# Setting -> may it be empty. Addresses, ports and secrets only.
FILLED: Final = {
    "alerts_receiver_url": False,
    "alerts_webhook_token": False,
    "operator_email": False,
    "smtp_host": False,
    "smtp_port": False,
    "smtp_from": False,
    "smtp_starttls": False,
    "smtp_username": True,
    "smtp_password": True,
}


def _value(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _yaml_escape(text: str) -> str:
    """Safe inside a double-quoted YAML string (the shipped file quotes every text value)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(template: str, settings: Settings) -> str:
    def fill(match: re.Match[str]) -> str:
        variable = match.group(1)
        name = variable[3:].lower()
        if name not in FILLED:
            raise NotifyError(
                f"{variable} may not be filled into alertmanager.yml (only "
                f"{', '.join('MH_' + n.upper() for n in FILLED)})"
            )
        value = _value(settings, name)
        if not value and not FILLED[name]:
            raise NotifyError(f"set {variable}: alertmanager.yml needs it")
        return _yaml_escape(value)

    rendered = _PLACEHOLDER.sub(fill, template)
    try:
        yaml.safe_load(rendered)
    except yaml.YAMLError as exc:
        raise NotifyError(f"the filled-in alertmanager.yml is not valid YAML: {exc}") from exc
    return rendered


def render_file(path: Path, settings: Settings) -> str:
    try:
        template = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyError(f"cannot read {path}: {exc.strerror}") from exc
    return render(template, settings)
