"""The audit trail's hash chain: each event's hash is an HMAC (key: AUDIT_CHAIN_KEY, by default
SECRET_KEY) of its content and of the previous event's hash. Whoever can write to the database
but does not hold the key cannot edit, insert or delete an event without breaking the chain.

The content hashed is every stored column except the id and the hash itself, with empty values
left out, so a column added later leaves the hashes of older events valid.
"""

import datetime
import hashlib
import hmac
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

NOT_HASHED = {"id", "hash"}


def json_value(value):
    """A value as it will read back from a JSON column (tuples become lists, dates strings...).
    NUL characters are dropped: PostgreSQL's jsonb cannot hold them (a query parameter's name
    may carry one, and the event must still be written)."""
    return None if value is None else without_nul(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def canonical(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    return value


def event_content(event):
    fields = {}
    for field in event._meta.concrete_fields:
        value = getattr(event, field.attname)
        if field.attname not in NOT_HASHED and value not in (None, ""):
            fields[field.attname] = canonical(value)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


def chain_hash(event):
    key = settings.AUDIT_CHAIN_KEY.encode()
    return hmac.new(key, event_content(event).encode(), hashlib.sha256).hexdigest()


def chain_problems(events, head):
    """What is wrong with the chain: `events` in id order, `head` the recorded end (or None)."""
    problems = []
    previous = None
    for event in events:
        if event.hash != chain_hash(event):
            problems.append(f"event {event.pk}: its content does not match its hash (edited, or inserted)")
        if event.prev_hash != (previous.hash if previous else ""):
            where = f"after event {previous.pk}" if previous else "at the start"
            problems.append(
                f"event {event.pk}: not chained to the event before it (events deleted or inserted {where})"
            )
        previous = event
    end = (previous.pk, previous.hash) if previous else (0, "")
    if head is not None and (head.last_event_id, head.last_hash) != end:
        problems.append(
            f"the chain ends at event {end[0]} but its recorded head is event {head.last_event_id}: "
            "events were deleted from the end"
        )
    return problems
