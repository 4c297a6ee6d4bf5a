"""No log line of the worker carries a secret (SPEC 10).

Faust, aiokafka and this project log exceptions and values that may quote input (a record
that broke a rule, a key, a traceback's locals in a message). Every log record is made through
a factory that passes its message, and its traceback text, through the secret scanner: whatever
handler or formatter writes it later sees only placeholders. Only records that are made cost
anything (levels below the logger's are never built), and a clean line costs one scan.
"""

import logging


def install(scanner) -> None:
    """Redact every log record made from now on; ``scanner``: ``streams.rules.secrets.SecretScanner``."""
    make = logging.getLogRecordFactory()

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message, found = scanner.redact(record.getMessage())
        if found:
            record.msg, record.args = message, ()
        if record.exc_info and not record.exc_text:
            # Formatted here, once: a formatter uses exc_text when it is set.
            record.exc_text = scanner.redact(logging.Formatter().formatException(record.exc_info))[0]
        return record

    logging.setLogRecordFactory(redacted_record)
