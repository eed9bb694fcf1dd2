"""The REST API's shared plumbing (`common.py`) and its OpenAPI document; each feature keeps its
own endpoints: `bot/orders/api.py`, `bot/requests/api.py`, `bot/refunds/api.py`."""
