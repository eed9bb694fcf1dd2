"""Payment requests: a merchant's link or counter sign that a customer pays; the service, the chat handlers, the REST API and the QR codes."""
