"""The back office: the operator console and the agency workspace, role-scoped.

Operators see every agency's flow (breakers, queues, polls), what is stuck or late, dead letters
(resend safely), any case (timeline, evidence chain, refer) and unreadable items. Agency staff
see only their own agency's lines, follow them and update them (a status in their agency's own
codes, or "not competent", which the hub then refers). Accounts: `loket users add`.
"""

from admin.views import bp

__all__ = ["bp"]
