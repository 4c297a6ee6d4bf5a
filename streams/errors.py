"""Errors that reach a person. Each says what was wrong and, where needed, what to do.

    DistillError
     ├── TopicLayoutError      topics exist with a layout that breaks the contract
     ├── TopicsMissing         the topics a command reads are not there (nothing ran with the prefix)
     ├── BrokerUnavailable     the Kafka broker cannot be reached
     │    └── AuthenticationFailed   it answered, but refused the SASL credentials
     ├── WaitTimeout           ``distill wait`` gave up before the worker caught up
     ├── ExportShapeError      a topic record has a field the export's file schema lacks
     ├── EvalSetError          ``distill evalset``: a set that cannot be read, or is not there
     ├── SecretRulesError      a secret rules file (DISTILL_SECRET_RULES) has a rule that cannot be used
     └── FaustIncompatible     the installed Faust is not the one the patches were written for
"""


class DistillError(Exception):
    """Base of every error this product raises on purpose."""


class TopicLayoutError(DistillError):
    """Existing topics have partition counts that would break the join's co-partitioning."""


class TopicsMissing(DistillError):
    """The topics a command reads do not exist: no worker or ingest has used this topic prefix."""


class BrokerUnavailable(DistillError):
    """The Kafka broker at DISTILL_BOOTSTRAP did not answer."""


class AuthenticationFailed(BrokerUnavailable):
    """The broker refused the SASL user, password or mechanism."""


class WaitTimeout(DistillError):
    """The worker did not catch up with its input within the time allowed."""


class ExportShapeError(DistillError):
    """A record on an output topic has a field that the schema of its exported file lacks."""

    def __init__(self, where: str, fields: list[str]) -> None:
        self.where, self.fields = where, fields
        super().__init__(
            f"{where}: field(s) {', '.join(fields)} not in the export schema of this file (streams/commands/export_schemas.py). "
            "Operator action: export with the distill version that wrote the topic, "
            "or add the field to the schema (and the card shows it)."
        )


class EvalSetError(DistillError):
    """An evaluation set that cannot be added (unreadable file, unknown field, repeated ids, ...)
    or removed (no such set); nothing was published."""


class SecretRulesError(DistillError):
    """A secret rules file has a rule, key or regex the scanner cannot use; the worker does not start."""

    def __init__(self, source: str, problem: str, rule_id: str | None = None) -> None:
        self.source, self.problem, self.rule_id = source, problem, rule_id
        where = f"{source}, rule {rule_id!r}" if rule_id else source
        super().__init__(
            f"secret rules {where}: {problem}. "
            "Operator action: fix the file (gitleaks' TOML format, Go regexes) or unset DISTILL_SECRET_RULES, "
            "then start the worker again."
        )


class FaustIncompatible(DistillError):
    """The installed faust-streaming, or an internal a patch replaces, is not what the patches
    of ``streams/faust_fixes/faust_compat.py`` were written for; the worker does not start."""
