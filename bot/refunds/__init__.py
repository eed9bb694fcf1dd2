"""Refunds: giving a payment back from the chat (or the REST API), with an admin's approval.

`service` moves refunds through their states (the store's conditional steps make the call to
iPay happen once); `telegram` is the edge (/refund, its buttons, the admins' cards);
`sentences` says it all; `buttons` are the callback data other parts put on their messages.
"""
