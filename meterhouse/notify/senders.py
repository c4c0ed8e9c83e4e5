"""Send one message to one channel: a signed webhook POST, a Slack post, or an e-mail.

Each send is bounded (10 s) and returns an :class:`Outcome` instead of raising: the
dispatcher decides about retries. A 2xx answer (250 for SMTP) is success; redirects are
not followed (a receiver that moved must be changed, not guessed).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Final

import requests

from meterhouse.notify.channels import Channel
from meterhouse.notify.errors import NotifyError
from meterhouse.notify.messages import Alert, Message, slack_body, webhook_body
from meterhouse.notify.sealing import unseal
from meterhouse.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from meterhouse.settings import Settings

TIMEOUT_SECONDS: Final = 10.0
USER_AGENT: Final = "meterhouse-notify/1"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    code: int = 0
    error: str = ""


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    try:
        answer = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Outcome(False, 0, f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= answer.status_code < 300:
        return Outcome(True, answer.status_code)
    return Outcome(False, answer.status_code, answer.text[:300])


def _email(settings: Settings, to: str, message: Message, delivery_id: str) -> Outcome:
    if not settings.smtp_host or not settings.smtp_from:
        return Outcome(False, 0, "MH_SMTP_HOST and MH_SMTP_FROM must be set to send e-mail")
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Subject"] = message.title
    mail["Message-ID"] = make_msgid(idstring=delivery_id, domain="meterhouse")
    mail[DELIVERY_HEADER] = delivery_id
    mail.set_content(message.text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            refused = smtp.send_message(mail)
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, exc.smtp_code, str(exc.smtp_error)[:300])
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, 0, f"{type(exc).__name__}: {exc}"[:300])
    if refused:
        code, reason = next(iter(refused.values()))
        return Outcome(False, code, f"refused {', '.join(refused)}: {reason!r}"[:300])
    return Outcome(True, 250)


def send(
    settings: Settings, channel: Channel, alert: Alert, message: Message, delivery_id: str
) -> Outcome:
    key = settings.notify_secret_key.get_secret_value()
    try:
        if channel.type == "webhook":
            body = webhook_body(alert, message, delivery_id)
            secret = unseal(channel.secret_sealed, key)
            headers = {SIGNATURE_HEADER: sign(secret, body), DELIVERY_HEADER: delivery_id}
            return _post(channel.target, body, headers)
        if channel.type == "slack":
            return _post(unseal(channel.secret_sealed, key), slack_body(message), {})
        if channel.type == "email":
            return _email(settings, channel.target, message, delivery_id)
    except NotifyError as exc:
        return Outcome(False, 0, str(exc))
    return Outcome(False, 0, f"unknown channel type {channel.type}")
