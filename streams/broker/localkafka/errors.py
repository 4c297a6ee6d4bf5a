"""What stops the local broker from being started, stopped or inspected."""

from streams.errors import DistillError


class LocalKafkaError(DistillError):
    """Anything that stops the local broker from being started, stopped or inspected."""


class ConfigError(LocalKafkaError):
    """The requested ports or credentials cannot work."""


class MissingToolError(LocalKafkaError):
    """java or mvn is absent (or java is too old)."""


class AssemblyError(LocalKafkaError):
    """Maven could not gather the broker jars."""


class FormatError(LocalKafkaError):
    """The storage format step failed."""


class PortInUseError(LocalKafkaError):
    """Another process already listens on one of our ports."""


class BrokerStartError(LocalKafkaError):
    """The broker died during startup or did not answer in time."""
