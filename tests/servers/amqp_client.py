"""An AMQP 0-9-1 client for tests/amqp.rs, independent of Sluice's own (lapin): pika, the
RabbitMQ team's Python client, installed by scripts/setup-amqp-client.

    amqp_client.py URL declare-queue NAME [MAX_LENGTH]
                                            with MAX_LENGTH: a queue holding that many
                                            messages that refuses more (the server nacks
                                            their publishes: x-overflow reject-publish)
    amqp_client.py URL declare-exchange NAME TYPE
    amqp_client.py URL bind QUEUE EXCHANGE ROUTING_KEY
    amqp_client.py URL publish QUEUE        stdin: JSON lines {"body": base64, "headers": {..}}
    amqp_client.py URL count QUEUE          prints the ready messages of QUEUE
    amqp_client.py URL drain QUEUE          prints each ready message as a JSON line
                                            {"routing_key", "body" (base64), "headers",
                                             "content_type", "delivery_mode"}, acknowledged

Publishing uses publisher confirms, so a message is on the queue when the command ends.
"""
import base64
import json
import sys

import pika


def main():
    url, command, *args = sys.argv[1:]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    if command == "declare-queue":
        arguments = None
        if len(args) > 1:
            arguments = {"x-max-length": int(args[1]), "x-overflow": "reject-publish"}
        channel.queue_declare(queue=args[0], durable=True, arguments=arguments)
    elif command == "declare-exchange":
        channel.exchange_declare(exchange=args[0], exchange_type=args[1], durable=True)
    elif command == "bind":
        channel.queue_bind(queue=args[0], exchange=args[1], routing_key=args[2])
    elif command == "publish":
        channel.confirm_delivery()
        for line in sys.stdin:
            m = json.loads(line)
            properties = pika.BasicProperties(
                delivery_mode=2,
                headers=m.get("headers") or None,
                message_id=m.get("message_id"),
            )
            channel.basic_publish("", args[0], base64.b64decode(m["body"]), properties, mandatory=True)
    elif command == "count":
        print(channel.queue_declare(queue=args[0], passive=True).method.message_count)
    elif command == "drain":
        while True:
            method, properties, body = channel.basic_get(args[0], auto_ack=False)
            if method is None:
                break
            headers = {
                k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                for k, v in (properties.headers or {}).items()
            }
            print(
                json.dumps(
                    {
                        "routing_key": method.routing_key,
                        "body": base64.b64encode(body).decode(),
                        "headers": headers,
                        "content_type": properties.content_type,
                        "delivery_mode": properties.delivery_mode,
                    }
                )
            )
            channel.basic_ack(method.delivery_tag)
    else:
        sys.exit(f"unknown command {command}")
    connection.close()


if __name__ == "__main__":
    main()
