"""AWS's own device SDK (``awsiotsdk``), used as AWS's fleet-provisioning sample uses it:
the identity client V2 over MQTT 5 or MQTT 3.1.1 (clean session 0), mutual TLS from files.
Nothing is changed but the endpoint, the port and the CA file."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import iotidentity, mqtt5_client_builder, mqtt_connection_builder

TIMEOUT = 30


def _options() -> mqtt_request_response.ClientOptions:
    return mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=2,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=TIMEOUT,
    )


@contextmanager
def identity_v5(
    port: int, cert: Path, key: Path, ca: Path, client_id: str = "fleet-device"
) -> Iterator[iotidentity.IotIdentityClientV2]:
    """The identity client V2 on an MQTT 5 client; ConnectionError when the connection
    fails (the listener refused the certificate, or the handshake failed)."""
    connected: concurrent.futures.Future[None] = concurrent.futures.Future()
    stopped: concurrent.futures.Future[None] = concurrent.futures.Future()

    def success(_: Any) -> None:
        if not connected.done():
            connected.set_result(None)

    def failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        if not connected.done():
            connected.set_exception(ConnectionError(str(data.exception)))

    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(ca),
        client_id=client_id,
        on_lifecycle_connection_success=success,
        on_lifecycle_connection_failure=failure,
        on_lifecycle_stopped=lambda _: stopped.set_result(None),
    )
    client.start()
    try:
        connected.result(TIMEOUT)
        yield iotidentity.IotIdentityClientV2(client, _options())
    finally:
        client.stop()
        stopped.result(TIMEOUT)


@contextmanager
def identity_v311(
    port: int, cert: Path, key: Path, ca: Path, client_id: str = "fleet-device-311"
) -> Iterator[iotidentity.IotIdentityClientV2]:
    """The identity client V2 on the older MQTT 3.1.1 connection, clean session 0."""
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(ca),
        client_id=client_id,
        clean_session=False,
        keep_alive_secs=30,
    )
    try:
        connection.connect().result(TIMEOUT)
    except Exception as err:
        raise ConnectionError(str(err)) from err
    try:
        yield iotidentity.IotIdentityClientV2(connection, _options())
    finally:
        connection.disconnect().result(TIMEOUT)


def create_keys(client: iotidentity.IotIdentityClientV2) -> Any:
    return client.create_keys_and_certificate(iotidentity.CreateKeysAndCertificateRequest()).result(
        TIMEOUT
    )


def create_from_csr(client: iotidentity.IotIdentityClientV2, csr: str) -> Any:
    return client.create_certificate_from_csr(
        iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr)
    ).result(TIMEOUT)


def register(
    client: iotidentity.IotIdentityClientV2, template: str, token: str, **parameters: str
) -> Any:
    return client.register_thing(
        iotidentity.RegisterThingRequest(
            template_name=template, certificate_ownership_token=token, parameters=parameters
        )
    ).result(TIMEOUT)


def rejected(future_call: Any) -> iotidentity.V2ErrorResponse:
    """The error payload of a refused request (AssertionError if it was accepted)."""
    from awsiot import V2ServiceException

    try:
        future_call()
    except V2ServiceException as err:
        failure = err
    else:
        raise AssertionError("the request was accepted")
    if failure.modeled_error is None:
        raise AssertionError(f"no error payload: {failure}")
    return failure.modeled_error


__all__ = ["create_from_csr", "create_keys", "identity_v5", "identity_v311", "mqtt", "register"]


def provision_v1(connection: mqtt.Connection, template: str, **parameters: str) -> tuple[Any, Any]:
    """AWS's older fleet-provisioning sample, on the V1 identity client: subscribe to the
    accepted and rejected topics of both operations (QoS 1, each SUBACK awaited), publish
    CreateKeysAndCertificate, then RegisterThing with its token; the two answers (an
    ``ErrorResponse`` where rejected)."""
    client = iotidentity.IotIdentityClient(connection)
    answers: dict[str, concurrent.futures.Future[Any]] = {
        "keys": concurrent.futures.Future(),
        "thing": concurrent.futures.Future(),
    }

    def to(name: str) -> Any:
        def answered(response: Any) -> None:
            if not answers[name].done():
                answers[name].set_result(response)

        return answered

    qos = mqtt.QoS.AT_LEAST_ONCE
    keys = iotidentity.CreateKeysAndCertificateSubscriptionRequest()
    thing = iotidentity.RegisterThingSubscriptionRequest(template_name=template)
    for subscribed, _ in (
        client.subscribe_to_create_keys_and_certificate_accepted(keys, qos, to("keys")),
        client.subscribe_to_create_keys_and_certificate_rejected(keys, qos, to("keys")),
        client.subscribe_to_register_thing_accepted(thing, qos, to("thing")),
        client.subscribe_to_register_thing_rejected(thing, qos, to("thing")),
    ):
        subscribed.result(TIMEOUT)
    client.publish_create_keys_and_certificate(
        iotidentity.CreateKeysAndCertificateRequest(), qos
    ).result(TIMEOUT)
    made = answers["keys"].result(TIMEOUT)
    client.publish_register_thing(
        iotidentity.RegisterThingRequest(
            template_name=template,
            certificate_ownership_token=getattr(made, "certificate_ownership_token", ""),
            parameters=parameters,
        ),
        qos,
    ).result(TIMEOUT)
    return made, answers["thing"].result(TIMEOUT)


@contextmanager
def connection_v311(
    port: int, cert: Path, key: Path, ca: Path, client_id: str = "fleet-device-v1"
) -> Iterator[mqtt.Connection]:
    """AWS's MQTT 3.1.1 connection (clean session 0), as the older samples build it."""
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(ca),
        client_id=client_id,
        clean_session=False,
        keep_alive_secs=30,
    )
    connection.connect().result(TIMEOUT)
    try:
        yield connection
    finally:
        connection.disconnect().result(TIMEOUT)
