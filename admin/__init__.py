"""The back office: the operator console and the agency workspace, role-scoped.

Operators see every agency's flow (breakers, queues, polls), what is stuck or late, dead letters
(resend safely), any case (timeline, evidence chain, refer) and unreadable items. Agency staff
see only their own agency's lines, follow them and update them (a status in their agency's own
codes, or "not competent", which the hub then refers). Accounts: `loket users add`; each may
reset its password by a mailed one-time link and add a TOTP second factor (admin/views.py). The
pages are in nl, fr, de and en, through the front desk's Flask-Babel catalogs.

The pages call only `hub.operations` and `hub.queries`. The app factory provides the CSRF
extension and applies its rate limiter to `SIGNIN_ENDPOINT` (see admin/views.py).
"""

from admin import console, signals, workspace  # noqa: F401 - their routes join the blueprint
from admin.views import RESET_REQUEST_ENDPOINT, SIGNIN_ENDPOINT, bp, signin_failed, signin_limit

__all__ = ["RESET_REQUEST_ENDPOINT", "SIGNIN_ENDPOINT", "bp", "signin_failed", "signin_limit"]
