"""The Telegram edge every feature shares: who pressed what (`access.py`), help and errors
(`info.py`), /language, stray messages, repeated updates and the per-chat rate limit."""
