"""Where a record came from: file, line, signature and time of recording."""

from schemas._base import InputModel

SCHEMA_VERSION = 1


class Provenance(InputModel):
    """Provenance of an input record or a sample.

    Fields may be absent or empty on input: that is the ``missing_provenance`` gate's
    business (SPEC 4.2), not a schema violation.
    """

    source_file: str = ""
    line_offset: int = 0
    sig_hash: str = ""
    recorded_at: str = ""

    def contract_fields(self) -> "Provenance":
        """A copy without unknown extra fields: those never travel into samples."""
        return Provenance(
            source_file=self.source_file,
            line_offset=self.line_offset,
            sig_hash=self.sig_hash,
            recorded_at=self.recorded_at,
        )

    @property
    def is_complete(self) -> bool:
        return bool(self.source_file and self.sig_hash and self.recorded_at)
