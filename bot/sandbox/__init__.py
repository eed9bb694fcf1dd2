"""Stand-ins for iPay and Telegram: the no-money, no-network way to run and test the bot."""
