"""The ``gateway`` command: operators' and scripts' way in (nothing imports this package)."""
