"""selfbootstrap: a Kubernetes operator that ships a change to a Deployment and undoes it on its own."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("selfbootstrap-operator")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
