"""Reports: the merchant's summaries, listings and exports (`service.py`) and their commands
(`telegram.py`)."""
