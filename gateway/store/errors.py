"""What the store refuses, typed so the CLI and doors can say exactly why."""


class StoreError(Exception):
    """Base of every store refusal."""


class NotFound(StoreError):
    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"no {what} {key!r}")


class Conflict(StoreError):
    """A unique name or address is taken, or a reference points nowhere."""


class InvalidValue(StoreError):
    def __init__(self, field: str, why: str) -> None:
        self.field = field
        self.why = why
        super().__init__(f"{field}: {why}")
