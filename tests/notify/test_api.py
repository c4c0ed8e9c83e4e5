"""The receiver endpoint and the channel API, in process on a real store and real sockets.

Alertmanager's webhook body goes in; signed POSTs come out at a local HTTP receiver; every
attempt lands in the notifications table, failures are retried and, past the limit,
given up and shown.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from meterhouse.access import keys
from meterhouse.notify import channels as ch
from meterhouse.notify.deliveries import Delivery, Dispatcher, record
from meterhouse.notify.messages import Alert
from meterhouse.notify.senders import Outcome
from meterhouse.notify.signing import verify
from meterhouse.store.base import Store
from tests.alerting.stack import WebhookReceiver, wait_until
from tests.notify.conftest import ADMIN_TOKEN, ALERTS_TOKEN, SECRET_KEY, App, settings
from tests.support.asgi import Answer, call

HOOK = "/api/v1/alerts/webhook"


def notification(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "meterhouse", "alerts": list(alerts)}
    ).encode()


def alert(account: str = "acme", name: str = "MeterhouseBudget80PercentUsed", **extra: Any) -> Any:
    labels = {"alertname": name, "severity": "warning", **({"account": account} if account else {})}
    return {
        "status": extra.get("status", "firing"),
        "labels": labels,
        "annotations": {"summary": f"{account} has used 85% of its account budget"},
        "startsAt": "2026-12-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{account}-{name}",
    }


def post(app: App, path: str, body: bytes, token: str) -> Answer:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return call(app.app, "POST", path, headers=headers, body=body)


def webhook_channel(store: Store, hooks: WebhookReceiver, account: str, path: str) -> Any:
    return ch.add_channel(
        store, account, "webhook", hooks.url + path, secret_key=SECRET_KEY, actor="test"
    )


def log(store: Store, channel_id: str) -> list[tuple[int, str, int]]:
    rows = store.query(
        "SELECT attempt, outcome, response_code FROM notifications "
        "WHERE channel_id = {c:String} ORDER BY attempt",
        {"c": channel_id},
    ).rows
    return [(int(a), str(o), int(c)) for a, o, c in rows]


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        ("wrong", notification(alert()), 401),
        ("", notification(alert()), 401),
        (ALERTS_TOKEN, b"not json", 400),
        (ALERTS_TOKEN, b'{"version": "3", "alerts": []}', 400),
        (ALERTS_TOKEN, notification({"labels": "x"}), 400),
        (ALERTS_TOKEN, notification({**alert(), "status": "sleeping"}), 400),
        (ALERTS_TOKEN, b"[" + b" " * (3 * 1024 * 1024) + b"]", 413),
    ],
)
def test_receiver_refuses_bad_tokens_and_bodies(
    service: App, token: str, body: bytes, status: int
) -> None:
    assert post(service, HOOK, body, token).status == status


def test_each_alert_reaches_its_accounts_channels_signed(
    service: App, world: Store, hooks: WebhookReceiver
) -> None:
    acme, acme_secret = webhook_channel(world, hooks, "acme", "/acme")
    webhook_channel(world, hooks, "globex", "/globex")
    operators, _ = webhook_channel(world, hooks, ch.OPERATORS, "/ops")
    body = notification(alert("acme"), alert("", "MeterhouseServiceDown"))
    answer = post(service, HOOK, body, ALERTS_TOKEN)
    assert answer.status == 200 and answer.json() == {"alerts": 2, "deliveries": 2}

    got = wait_until(lambda: hooks.at("/acme"), 10, "acme's delivery")[0]
    wait_until(lambda: hooks.at("/ops"), 10, "the operators' delivery")
    assert verify(acme_secret, got.headers["Meterhouse-Signature"], got.body)
    assert got.json()["account"] == "acme"
    assert got.json()["links"]["dashboard"].endswith("/d/meterhouse-overview?var-account=acme")
    assert hooks.at("/ops")[0].json()["alert"] == "MeterhouseServiceDown"
    time.sleep(0.5)
    assert hooks.at("/globex") == [], "globex heard of acme's alert"
    wait_until(lambda: log(world, acme.channel_id), 5, "the log row")
    assert log(world, acme.channel_id) == [(1, "sent", 200)]
    del operators

    # Alertmanager re-sending the same alert state (a group update) sends nothing again;
    # the resolved notice is a new delivery.
    again = post(service, HOOK, notification(alert("acme")), ALERTS_TOKEN)
    assert again.json() == {"alerts": 1, "deliveries": 0}
    resolved = post(service, HOOK, notification(alert("acme", status="resolved")), ALERTS_TOKEN)
    assert resolved.json() == {"alerts": 1, "deliveries": 1}
    wait_until(lambda: len(hooks.at("/acme")) == 2, 10, "the resolved notice")
    assert hooks.at("/acme")[1].json()["type"] == "alert.resolved"


def test_a_failing_channel_is_retried_then_given_up_and_shown_dead(
    service: App, world: Store, hooks: WebhookReceiver
) -> None:
    flaky, _ = webhook_channel(world, hooks, "acme", "/flaky")
    dead, _ = webhook_channel(world, hooks, "acme", "/dead")
    hooks.failures.update({"/flaky": 2, "/dead": 99})
    assert post(service, HOOK, notification(alert()), ALERTS_TOKEN).status == 200

    wait_until(lambda: len(log(world, flaky.channel_id)) == 3, 15, "three attempts")
    assert log(world, flaky.channel_id) == [
        (1, "retrying", 500),
        (2, "retrying", 500),
        (3, "sent", 200),
    ]
    ids = {r.headers["Meterhouse-Delivery-Id"] for r in hooks.at("/flaky")}
    assert len(ids) == 1
    wait_until(lambda: len(log(world, dead.channel_id)) == 3, 15, "the dead channel's attempts")
    time.sleep(1)
    assert log(world, dead.channel_id) == [
        (1, "retrying", 500),
        (2, "retrying", 500),
        (3, "dead", 500),
    ]

    answer = call(
        service.app,
        "GET",
        "/api/v1/accounts/acme/notification-channels",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    health = {c["channel_id"]: c["health"] for c in answer.json()["channels"]}
    assert health == {flaky.channel_id: "ok", dead.channel_id: "dead"}


def read_key(store: Store, account: str, user: str) -> str:
    _, token = keys.create_key(
        store, purpose="read", source="", account_id=account, user_id=user, actor="test"
    )
    return token


def test_channel_api_is_for_the_accounts_owners_and_admins(
    service: App, world: Store, hooks: WebhookReceiver
) -> None:
    path = "/api/v1/accounts/acme/notification-channels"
    body = json.dumps({"type": "webhook", "target": hooks.url + "/api"}).encode()
    assert post(service, path, body, read_key(world, "acme", "mia")).status == 403
    assert post(service, path, body, read_key(world, "globex", "gus")).status == 404
    assert post(service, path, b"[1]", ADMIN_TOKEN).status == 400
    bad = json.dumps({"type": "webhook", "target": "file:///etc/passwd"}).encode()
    assert post(service, path, bad, ADMIN_TOKEN).status == 400

    owner = read_key(world, "acme", "olivia")
    created = post(service, path, body, owner)
    assert created.status == 201
    channel, secret = created.json()["channel"], created.json()["secret"]
    assert secret.startswith("whsec_")
    listed = call(service.app, "GET", path, headers={"Authorization": f"Bearer {owner}"})
    assert secret not in listed.text and listed.json()["channels"][0]["health"] == "untried"

    tested = post(service, f"{path}/{channel['channel_id']}/test", b"", owner)
    assert tested.json()["ok"] is True
    received = hooks.at("/api")[0]
    assert verify(secret, received.headers["Meterhouse-Signature"], received.body)
    assert received.json()["alert"] == "MeterhouseNotificationTest"

    removed = call(
        service.app,
        "DELETE",
        f"{path}/{channel['channel_id']}",
        headers={"Authorization": f"Bearer {owner}"},
    )
    assert removed.status == 200 and ch.list_channels(world, "acme") == []
    actor = world.query(
        "SELECT actor FROM audit_log WHERE action = 'notification_channel.delete'"
    ).scalar()
    assert actor.startswith("user:acme/olivia via key:")

    log_answer = call(
        service.app,
        "GET",
        "/api/v1/accounts/acme/notifications?limit=5",
        headers={"Authorization": f"Bearer {owner}"},
    )
    assert [r["alert"] for r in log_answer.json()["notifications"]] == [
        "MeterhouseNotificationTest"
    ]


def test_operators_channels_need_an_admin(service: App, world: Store) -> None:
    path = "/api/v1/accounts/_operators/notification-channels"
    listed = call(service.app, "GET", path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert listed.status == 200
    owner = read_key(world, "acme", "olivia")
    assert (
        call(service.app, "GET", path, headers={"Authorization": f"Bearer {owner}"}).status == 403
    )


def test_retries_waiting_at_a_restart_are_resumed(world: Store, hooks: WebhookReceiver) -> None:
    channel, secret = webhook_channel(world, hooks, "acme", "/resumed")
    delivery = Delivery(channel, Alert.from_json(alert()))
    # What a service that stopped between two attempts left behind.
    record(world, delivery, Outcome(False, 503, "unavailable"), "retrying")
    dispatcher = Dispatcher(world, settings())
    dispatcher.start()
    try:
        assert dispatcher.resume() == 1
        got = wait_until(lambda: hooks.at("/resumed"), 10, "the resumed delivery")[0]
    finally:
        dispatcher.stop()
    assert got.headers["Meterhouse-Delivery-Id"] == delivery.id
    assert verify(secret, got.headers["Meterhouse-Signature"], got.body)
    wait_until(lambda: len(log(world, channel.channel_id)) == 2, 5, "the second attempt")
    assert log(world, channel.channel_id) == [(1, "retrying", 503), (2, "sent", 200)]


def test_slack_compatible_channels_get_text_and_grafana_posts_are_understood(
    service: App, world: Store, hooks: WebhookReceiver
) -> None:
    channel, _ = ch.add_channel(
        world, "acme", "slack", hooks.url + "/slack", secret_key=SECRET_KEY, actor="test"
    )
    assert hooks.url not in channel.target, "the Slack URL is a secret"
    # Grafana's webhook contact point posts version 1 with the same alerts.
    grafana = json.loads(notification(alert()))
    grafana["version"] = "1"
    answer = post(service, HOOK, json.dumps(grafana).encode(), ALERTS_TOKEN)
    assert answer.json() == {"alerts": 1, "deliveries": 1}
    got = wait_until(lambda: hooks.at("/slack"), 10, "the Slack post")[0]
    text = got.json()["text"]
    assert set(got.json()) == {"text"}
    assert text.startswith("*[meterhouse FIRING warning] account acme: ")
    assert "Account: acme" in text and "var-account=acme" in text
