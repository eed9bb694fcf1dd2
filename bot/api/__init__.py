"""The REST API's shared plumbing; each feature keeps its own endpoints (`bot/orders/api.py`, `bot/requests/api.py`, `bot/refunds/api.py`)."""
