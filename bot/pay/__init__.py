"""The /pay conversation: its handlers (`telegram.py`), its drafts (`drafts.py`) and the reading of
what people type (`inputs.py`)."""
