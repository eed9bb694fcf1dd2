"""Orders: the payment service (`service.py`), the status sweep (`poller.py`), the outbox and its
delivery (`notices.py`, `notifier.py`), the chat's /status and order buttons (`status.py`,
`telegram.py`), reconciliation with the provider (`reconcile.py`) and the payments REST API
(`api.py`)."""
