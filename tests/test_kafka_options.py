"""Kafka connection options for managed brokers (MSK: TLS, SASL/SCRAM), as aiokafka gets
them. (The suite's real broker is plaintext; these pin the mapping from settings.)"""

from __future__ import annotations

import ssl

from moneta.config import Settings
from moneta.events.sinks.kafka import connection_options


def test_plaintext_by_default() -> None:
    options = connection_options(Settings(kafka_bootstrap_servers="b:9092"))
    assert options == {
        "bootstrap_servers": "b:9092",
        "client_id": "moneta-relay",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_scram_over_tls() -> None:
    options = connection_options(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="relay",
            kafka_sasl_password="pw",
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("relay", "pw")


def test_tls_without_sasl() -> None:
    options = connection_options(Settings(kafka_security_protocol="SSL"))
    assert "sasl_mechanism" not in options
    assert options["ssl_context"].check_hostname
