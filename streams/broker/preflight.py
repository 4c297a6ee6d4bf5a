"""One connection to Kafka, opened as every client will open it, to say plainly why it fails.

aiokafka's clients log the cause of a failed bootstrap and then raise only "Unable to
bootstrap from [...]"; a wrong password, a wrong mechanism and a broker that is down all
look alike. ``check_connection`` opens one connection per bootstrap address (TLS and SASL
included), asks for metadata, and raises an error that names the cause and what to do.
The password is never part of a message.
"""

import asyncio
import ssl

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError, IllegalSaslStateError, KafkaError, SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from streams.broker.kafka_io import client_options
from streams.errors import AuthenticationFailed, BrokerUnavailable
from streams.settings import DistillSettings

REFUSED = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError, IllegalSaslStateError)


async def check_connection(settings: DistillSettings, timeout: float = 10.0) -> None:
    """Return once one bootstrap address serves metadata; else raise ``BrokerUnavailable``."""
    options = client_options(settings)
    hosts = collect_hosts(options.pop("bootstrap_servers"), randomize=False)
    failures = []
    for host, port, _ in hosts:
        conn = None
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, client_id="distill-preflight", request_timeout_ms=int(timeout * 1000), **options),
                timeout,
            )
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
            return
        except REFUSED as exc:
            raise AuthenticationFailed(_scrub(
                f"Kafka at {host}:{port} refused to authenticate user {settings.sasl_username!r} with "
                f"{settings.security_protocol} {settings.sasl_mechanism}: authentication failed ({exc}).\n"
                "Operator action: check DISTILL_SASL_USERNAME, DISTILL_SASL_PASSWORD and DISTILL_SASL_MECHANISM "
                "against the broker's SCRAM users.", settings,
            )) from None
        except ssl.SSLError as exc:
            failures.append(f"{host}:{port}: TLS handshake failed ({exc.reason or exc}); check DISTILL_SSL_CAFILE")
        except (OSError, KafkaError, asyncio.TimeoutError) as exc:
            failures.append(f"{host}:{port}: {exc or type(exc).__name__}")
        finally:
            if conn is not None:
                conn.close()
    raise BrokerUnavailable(_scrub(
        f"cannot reach Kafka at {settings.bootstrap} over {settings.security_protocol}:\n  "
        + "\n  ".join(failures)
        + "\nOperator action: check that the broker runs (`distill kafka status`), that DISTILL_BOOTSTRAP names "
        "its listener, and that DISTILL_SECURITY_PROTOCOL matches that listener (PLAINTEXT, SSL, SASL_PLAINTEXT "
        "or SASL_SSL).", settings,
    ))


def _scrub(text: str, settings: DistillSettings) -> str:
    """Defence in depth: whatever a broker or library put in a message, the password leaves."""
    password = settings.sasl_password.get_secret_value()
    return text.replace(password, "***") if password else text
