"""Confluent's own serializers against our Confluent wire format.

Run by TestRegistryCrossCheck (registry_crosscheck_test.go) with a fake
schema registry served over HTTP:

    registry_crosscheck.py REGISTRY_URL SCHEMAS_DIR EVENTS_TOPIC EVENT_FILE REQUESTS_TOPIC REQUEST_FILE

It reads EVENT_FILE (a FlowEvent value the processor framed) with
confluent-kafka's AvroDeserializer, which looks the schema id up in the
registry, and prints the event's fields as one JSON line. It then writes a
SendRequest with AvroSerializer (the schema looked up under the requests
topic's subject, never registered by it) to REQUEST_FILE for the processor
to read.
"""
import datetime
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    url, schemas_dir, events_topic, event_file, requests_topic, request_file = sys.argv[1:7]
    client = SchemaRegistryClient({"url": url})

    with open(event_file, "rb") as f:
        value = f.read()
    event = AvroDeserializer(client)(value, SerializationContext(events_topic, MessageField.VALUE))
    summary = event.get("summary") or {}
    print(json.dumps({
        "event_id": event["event_id"],
        "request_id": event["request_id"],
        "type": event["type"],
        "outcome": event.get("outcome"),
        "steps_used": summary.get("steps_used"),
        "occurred_at_ms": int(event["occurred_at"].timestamp() * 1000),
    }, sort_keys=True))

    with open(f"{schemas_dir}/SendRequest.avsc") as f:
        schema = f.read()
    serializer = AvroSerializer(client, schema, conf={"auto.register.schemas": False})
    request = {
        "request_id": "py-1",
        "kind": "send",
        "recipient": "+4915112345678",
        "flow_id": None,
        "steps": [
            {"channel": "whatsapp", "from": "+4915100000000", "template": "otp",
             "template_category": "authentication", "delay_seconds": 30, "success_on": "delivered"},
            {"channel": "sms", "from": "ACME", "template": "otp_sms", "template_category": None, "delay_seconds": 60, "success_on": "delivered"},
        ],
        "params": {"code": "123456"},
        "metadata": {"origin": "python"},
        "requested_at": datetime.datetime(2026, 11, 27, 10, 0, 0, tzinfo=datetime.timezone.utc),
        "expires_at": None,
    }
    with open(request_file, "wb") as f:
        f.write(serializer(request, SerializationContext(requests_topic, MessageField.VALUE)))


if __name__ == "__main__":
    main()
