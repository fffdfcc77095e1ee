"""jobmaster-dashboard: a web view of jobmaster queues, read through jobmaster's public API."""

from jobmaster_dashboard.app import create_app
from jobmaster_dashboard.auth import FROM_ENV, AuthConfig, AuthError

__all__ = ["FROM_ENV", "AuthConfig", "AuthError", "create_app"]
__version__ = "0.1.0"
