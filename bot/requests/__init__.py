"""Payment requests, a merchant's link or counter sign that customers pay: the service
(`service.py`), the chat handlers (`telegram.py`), the REST API (`api.py`) and the QR codes
(`qr.py`)."""
