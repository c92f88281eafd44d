"""The one error a bad configuration produces: where it came from, which key, and why."""


class ConfigError(Exception):
    """A value in the config file or environment that the gateway cannot start with."""

    def __init__(self, source: str, key: str, why: str) -> None:
        self.source = source
        self.key = key
        self.why = why
        super().__init__(f"{source}: {key}: {why}")
