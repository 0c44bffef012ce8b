"""A local Stripe for the billing tests: localstripe, plus what Faceplate needs and localstripe lacks.

localstripe (PyPI) keeps customers, plans, subscriptions and invoices and sends signed webhooks. This adds:
- Billing Meter events (POST /v1/billing/meter_events), deduplicated on `identifier` as Stripe does, and a
  listing for the tests (GET /_config/meter_events, unauthenticated like localstripe's other /_config routes);
- subscriptions with several items (localstripe accepts one; Faceplate subscribes a tenant to one metered
  price per product), metered items billed in arrears as Stripe does (nothing charged when one starts);
- state kept in the file given by --state (localstripe's is a fixed /tmp path), so a stopped and restarted fake
  (the "Stripe outage" of the tests) remembers what it was sent. localstripe rewrites its whole store after
  every POST; meter events, thousands in a load test, are appended to a log of their own instead.

Run: python server.py --port 8420 --state /tmp/stripe-fake.pickle
"""

import argparse
import contextvars
import json
import os
import pickle
import socket
import time

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import Customer, Plan, Subscription, SubscriptionItem, store

STATE_PATH = None
# identifier -> the first meter event sent with it; and how many were sent in all (resends included).
METER_EVENTS = {}
RECEIVED = [0]
_meter_log = None
# Set while a meter event is handled: localstripe's store did not change, so it is not rewritten.
_store_unchanged = contextvars.ContextVar("store_unchanged", default=False)


def _load():
    global _meter_log
    try:
        with open(STATE_PATH, "rb") as f:
            store.update(pickle.load(f))
    except FileNotFoundError:
        pass
    log_path = STATE_PATH + ".meter_events.jsonl"
    try:
        with open(log_path) as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                RECEIVED[0] += 1
                METER_EVENTS.setdefault(event["identifier"], event)
    except FileNotFoundError:
        pass
    _meter_log = open(log_path, "a")


def _dump(self=None):
    if _store_unchanged.get():
        return
    with open(STATE_PATH + ".tmp", "wb") as f:
        pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)
    # Atomic replace: a fake killed mid-write keeps its previous state.
    os.replace(STATE_PATH + ".tmp", STATE_PATH)


resources.Store.dump_to_disk = _dump

_subscription_init = Subscription.__init__


def _subscription_with_items(self, *args, items=None, **kwargs):
    extra = []
    if isinstance(items, list) and len(items) > 1:
        items, extra = items[:1], items[1:]
        for item in extra:
            if not isinstance(item, dict) or not isinstance(item.get("plan"), str):
                raise UserError(400, "Bad request")
            Plan._api_retrieve(item["plan"])  # 404 before anything is created
    _subscription_init(self, *args, items=items, **kwargs)
    for item in extra:
        self.items._list.append(
            SubscriptionItem(subscription=self.id, plan=item["plan"], metadata=item.get("metadata"))
        )


Subscription.__init__ = _subscription_with_items

_item_amount = SubscriptionItem._calculate_amount


def _amount_in_arrears(self):
    # Metered usage is billed at the end of the period: it adds nothing to the invoice that opens a
    # subscription (localstripe would charge the unit price once, and refuse a customer without a card).
    if self.plan.usage_type == "metered":
        return 0
    return _item_amount(self)


SubscriptionItem._calculate_amount = _amount_in_arrears


async def create_meter_event(request):
    data = await server.get_post_data(request) or {}
    name = data.get("event_name")
    payload = data.get("payload") or {}
    identifier = data.get("identifier") or "fake_%d" % time.time_ns()
    timestamp = int(data.get("timestamp") or time.time())
    customer = payload.get("stripe_customer_id")
    value = payload.get("value")
    if not isinstance(name, str) or not name or not isinstance(customer, str):
        raise UserError(400, "Missing event_name or payload[stripe_customer_id]")
    try:
        int(value)
    except (TypeError, ValueError):
        raise UserError(400, "payload[value] must be a whole number")
    Customer._api_retrieve(customer)  # 404 for an unknown customer
    _store_unchanged.set(True)
    event = {
        "object": "billing.meter_event",
        "created": int(time.time()),
        "event_name": name,
        "identifier": identifier,
        "livemode": False,
        "payload": {"stripe_customer_id": customer, "value": str(value)},
        "timestamp": timestamp,
    }
    # Logged before answering: what the fake accepted survives its being killed.
    _meter_log.write(json.dumps(event) + "\n")
    _meter_log.flush()
    RECEIVED[0] += 1
    return server.json_response(METER_EVENTS.setdefault(identifier, event))


def list_meter_events(request):
    return server.json_response({"data": list(METER_EVENTS.values()), "received": RECEIVED[0]})


def main():
    global STATE_PATH
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", required=True)
    args = parser.parse_args()
    STATE_PATH = args.state
    _load()

    app = server.app
    app.router.add_post("/v1/billing/meter_events", create_meter_event)
    app.router.add_get("/_config/meter_events", list_meter_events)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
