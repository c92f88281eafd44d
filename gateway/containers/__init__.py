"""The container manager: apps from manifests, their addons, how they run, and the routes.

- ``manifest``: CloudronManifest.json validated (``Manifest``, ``ManifestError``).
- ``addons`` + ``provisioner``: per-app credentials and data (``AddonProvisioner``).
- ``environment``: the ``CLOUDRON_*`` variables an app gets (shared by CLI and service).
- ``installer``: install / configure / restart / uninstall rules (``AppInstaller``).
- ``backends``: ``DockerBackend`` (Engine API) and ``LocalProcessBackend``.
- ``supervisor``, ``health``, ``routing``, ``service``: what ``gateway serve`` runs.
"""

from gateway.containers.errors import (
    BackendError,
    ContainerError,
    InstallError,
    ManifestError,
    SsoFixed,
)

__all__ = ["BackendError", "ContainerError", "InstallError", "ManifestError", "SsoFixed"]
